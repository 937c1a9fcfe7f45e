import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

// Each folder of src/ may import only from folders of a lower rank (and itself); the CLIs at
// src/*.ts sit on top. The README's layout table shows the same order.
const RANK: Record<string, number> = { kernels: 0, engine: 1, io: 1, models: 2, data: 3, cli: 4, world: 5, nast: 6, '.': 7 };

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const layerOf = (file: string) => {
  const top = relative(SRC, file).split('/');
  return top.length === 1 ? '.' : top[0];
};

test('src/ has no upward imports: kernels < engine, io < models < data < cli < world < nast < the CLIs', () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const from = layerOf(f);
    assert.ok(from in RANK, `${relative(SRC, f)}: folder ${from} has no rank in this test`);
    for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const to = layerOf(resolve(dirname(f), m[1]));
      if (to !== from && RANK[to] >= RANK[from]) bad.push(`${relative(SRC, f)} imports ${m[1]} (${from} -> ${to})`);
    }
  }
  assert.equal(bad, []);
});

/** Runtime imports of a file (type-only imports and re-exports of types leave no edge at run time). */
function runtimeImports(file: string): string[] {
  const out: string[] = [];
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?([^;]*?)\s+from\s+'(\.{1,2}\/[^']+)'/gms)) {
    if (m[1]) continue;
    const names = /^\{([^}]*)\}$/.exec(m[2].trim());
    if (names && names[1].split(',').map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith('type '))) continue;
    out.push(resolve(dirname(file), m[3].replace(/\.js$/, '.ts')));
  }
  return out;
}

test('no import cycles between files of src/ (runtime imports)', () => {
  const all = files(SRC);
  const graph = new Map(all.map((f) => [f, runtimeImports(f).filter((t) => t !== f)]));
  // Depth-first search with colours; a grey target closes a cycle, reported as its path.
  const colour = new Map<string, 'grey' | 'black'>();
  const cycles: string[] = [];
  const path: string[] = [];
  const visit = (f: string) => {
    colour.set(f, 'grey');
    path.push(f);
    for (const t of graph.get(f) ?? []) {
      if (!graph.has(t)) continue;
      if (colour.get(t) === 'grey') cycles.push([...path.slice(path.indexOf(t)), t].map((x) => relative(SRC, x)).join(' -> '));
      else if (!colour.has(t)) visit(t);
    }
    path.pop();
    colour.set(f, 'black');
  };
  for (const f of all) if (!colour.has(f)) visit(f);
  assert.equal(cycles, []);
});

test('the import scan keeps runtime edges and skips type-only ones', () => {
  const of = (f: string) => runtimeImports(join(SRC, ...f.split('/'))).map((x) => relative(SRC, x));
  // autograd.ts calls scope() from tensor.ts; tensor.ts names GradNode only as a type.
  assert.ok(of('engine/autograd.ts').includes(join('engine', 'tensor.ts')));
  assert.not.ok(of('engine/tensor.ts').includes(join('engine', 'autograd.ts')));
  assert.ok(of('kernels/matmul.ts').includes(join('kernels', 'matmul-regblock.ts')));
  assert.not.ok(of('kernels/matmul-regblock.ts').includes(join('kernels', 'matmul.ts')));
});

test.run();
