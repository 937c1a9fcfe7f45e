import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

// Each folder of src/ may import only from folders of a lower rank (and itself); the CLIs at
// src/*.ts sit on top. The README's layout table shows the same order.
const RANK: Record<string, number> = { kernels: 0, engine: 1, io: 1, models: 2, data: 3, cli: 4, nast: 5, '.': 6 };

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

test('src/ has no upward imports: kernels < engine, io < models < data < cli < nast < the CLIs', () => {
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

test.run();
