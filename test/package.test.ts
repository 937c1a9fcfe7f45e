/**
 * The package as a user gets it: `npm pack` (its prepack script builds dist/), the tarball
 * installed into a fresh project in a temporary folder, then
 *   - Node: `negclip-webgpu/node`'s nodeContext + `negclip-webgpu`'s tensor and matmul compute a
 *     product on the GPU; the shipped models are found inside the installed package;
 *   - browser: esbuild bundles `import * as m from 'negclip-webgpu'` for platform=browser with
 *     no Node built-in, no `webgpu` package and no *-node.js module (and refuses the `/node` entry);
 *   - the CLIs: `npx negclip-embed --help`, every bin through its shebang, `node dist/X.js`;
 *   - the declarations: a TypeScript user of both entries type-checks.
 * Needs the npm registry or npm's cache for the install (`--prefer-offline`) and a WebGPU adapter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = realpathSync(mkdtempSync(join(tmpdir(), 'negclip-package-')));
const PROJ = join(TMP, 'project');
const PKG = join(PROJ, 'node_modules', 'negclip-webgpu');
const BINS = ['negclip-train', 'negclip-trace', 'negclip-eval', 'negclip-embed', 'negclip-data', 'negclip-convert'];

/**
 * The environment without npm's per-run variables: under `npm test` they carry this repository's
 * prefix (npm_config_local_prefix), and an `npm install` in the temporary project would install here.
 */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'FORCE_COLOR'));

interface Run { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, env: ENV, timeout: timeoutMs, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (status, signal) => done({ status, signal, stdout, stderr }));
  });
}

function ok(r: Run, what: string): Run {
  if (r.status !== 0) {
    const why = r.signal ? `killed by ${r.signal} (timeout?)` : `exit code ${r.status}`;
    assert.unreachable(`${what}: ${why}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`);
  }
  return r;
}

test.before(async () => {
  const packDir = join(TMP, 'pack');
  mkdirSync(packDir);
  ok(await run('npm', ['pack', '--pack-destination', packDir, '--loglevel=error'], ROOT, 300_000), 'npm pack');
  const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  assert.equal(tarballs.length, 1, `one tarball in ${packDir}`);
  mkdirSync(PROJ);
  writeFileSync(join(PROJ, 'package.json'), JSON.stringify({ name: 'negclip-package-check', version: '0.0.0', private: true, type: 'module' }, null, 2));
  ok(await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(packDir, tarballs[0])], PROJ, 600_000), 'npm install of the tarball');
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test('the installed package holds dist/ (js + d.ts), the shipped models and README; no sources, tests or maps', () => {
  for (const f of [
    'dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/node.d.ts', 'README.md',
    'models/tiny-world/config.json', 'models/tiny-world/model.safetensors', 'models/tiny-world/word_tokenizer.json', 'models/tiny-world/selection.json',
    'models/tiny-world/preprocessor_config.json', 'models/openai-bpe/bpe_simple_vocab_16e6.txt.gz',
    ...BINS.map((b) => `dist/${b.slice('negclip-'.length)}.js`),
  ]) assert.ok(existsSync(join(PKG, f)), `${f} is in the package`);
  for (const d of ['src', 'test', 'build', 'bench', 'web', 'scripts', 'interop', 'dist/test', 'dist/bench']) {
    assert.not.ok(existsSync(join(PKG, d)), `${d}/ is not in the package`);
  }
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]);
  assert.equal(files(join(PKG, 'dist')).filter((f) => !/\.(js|d\.ts)$/.test(f)), [], 'dist/ ships .js and .d.ts only');
  const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')) as { private?: boolean; bin: Record<string, string> };
  assert.is(pkg.private, undefined);
  assert.equal(Object.keys(pkg.bin).sort(), [...BINS].sort());
});

test('Node: nodeContext from negclip-webgpu/node and tensor/matmul from negclip-webgpu compute on the GPU', async () => {
  writeFileSync(join(PROJ, 'gpu.mjs'), `
import { nodeContext, tinyWorldModelPath, shippedVocabPath } from 'negclip-webgpu/node';
import * as lib from 'negclip-webgpu';
const { tensor, matmul } = lib;
const ctx = await nodeContext();
const a = tensor(ctx, new Float32Array([1, 2, 3, 4]), [2, 2]);
const b = tensor(ctx, new Float32Array([5, 6, 7, 8]), [2, 2]);
const product = Array.from(await matmul(a, b).toArray());
console.log(JSON.stringify({ product, exports: Object.keys(lib).length, model: tinyWorldModelPath(), vocab: shippedVocabPath() }));
ctx.destroy();
`);
  const r = ok(await run(process.execPath, ['gpu.mjs'], PROJ, 180_000), 'node gpu.mjs');
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const out = JSON.parse(line) as { product: number[]; exports: number; model: string; vocab: string | null };
  assert.equal(out.product, [19, 22, 43, 50]);
  assert.ok(out.exports > 100, `the main entry exports the library (${out.exports} names)`);
  // The CLIs' embedded defaults are found beside the module files, not in the working directory.
  assert.is(realpathSync(out.model), realpathSync(join(PKG, 'models', 'tiny-world')));
  assert.is(out.vocab && realpathSync(out.vocab), realpathSync(join(PKG, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz')));
});

test('browser: esbuild bundles negclip-webgpu for platform=browser with no Node module; the /node entry is refused', async () => {
  const esbuild = join(ROOT, 'node_modules', '.bin', 'esbuild');
  const flags = ['--bundle', '--platform=browser', '--format=esm', '--log-level=error'];
  writeFileSync(join(PROJ, 'browser-entry.js'), "import * as m from 'negclip-webgpu';\nconsole.log(Object.keys(m).length);\n");
  ok(await run(esbuild, ['browser-entry.js', ...flags, '--outfile=bundle/browser.js', '--metafile=bundle/meta.json'], PROJ, 120_000), 'esbuild (browser)');
  const meta = JSON.parse(readFileSync(join(PROJ, 'bundle', 'meta.json'), 'utf8')) as { inputs: Record<string, unknown> };
  const inputs = Object.keys(meta.inputs);
  assert.ok(inputs.some((f) => f.startsWith('node_modules/negclip-webgpu/dist/')), 'the bundle is built from the installed dist/');
  assert.equal(inputs.filter((f) => /-node\.js$/.test(f) || f.startsWith('node:') || /(^|\/)node_modules\/webgpu\//.test(f)), [],
    'no *-node.js module, Node built-in or webgpu package in the browser bundle');
  // The bundle loads (nothing touches a GPU at import time) and exports what Node sees.
  const count = ok(await run(process.execPath, [join('bundle', 'browser.js')], PROJ, 60_000), 'node bundle/browser.js');
  assert.ok(Number(count.stdout.trim()) > 100, `bundle exports ${count.stdout.trim()}`);
  // The check is not vacuous: the Node entry does not bundle for the browser.
  writeFileSync(join(PROJ, 'node-entry.js'), "import * as m from 'negclip-webgpu/node';\nconsole.log(Object.keys(m).length);\n");
  const refused = await run(esbuild, ['node-entry.js', ...flags, '--outfile=bundle/node.js'], PROJ, 120_000);
  assert.is.not(refused.status, 0, 'esbuild refuses negclip-webgpu/node for the browser');
  assert.match(refused.stderr, /node:|built into node|webgpu/i);
});

test('the CLIs: npx negclip-embed --help, every bin through its shebang, node dist/X.js', async () => {
  const npx = ok(await run('npx', ['--no-install', 'negclip-embed', '--help'], PROJ, 120_000), 'npx negclip-embed --help');
  assert.match(npx.stdout, /^usage: .*embed/m);
  assert.match(npx.stdout, /--model/);
  const runs = await Promise.all([
    ...BINS.map((b) => run(join(PROJ, 'node_modules', '.bin', b), ['--help'], PROJ, 120_000)),
    run(process.execPath, [join(PKG, 'dist', 'embed.js'), '--help'], PROJ, 120_000),
  ]);
  [...BINS, 'node dist/embed.js'].forEach((b, i) => {
    ok(runs[i], `${b} --help`);
    assert.match(runs[i].stdout, /usage:/, `${b} --help prints its usage`);
  });
});

test('TypeScript: a user of both entries type-checks against the shipped declarations', async () => {
  writeFileSync(join(PROJ, 'check.ts'), `
import { nodeContext, loadClip, loadClipTokenizer, loadLora, saveLora, tinyWorldModelPath } from 'negclip-webgpu/node';
import { tensor, matmul, attachLora, type Tensor, type LoraSet, type ClipModel } from 'negclip-webgpu';
const ctx = await nodeContext();
const t: Tensor = matmul(tensor(ctx, new Float32Array(4), [2, 2]), tensor(ctx, new Float32Array(4), [2, 2]));
const model: ClipModel = await loadClip(ctx, tinyWorldModelPath());
const lora: LoraSet = attachLora(model, { rank: 4 });
const ids: Int32Array = loadClipTokenizer(tinyWorldModelPath()).tokenize(['a caption']);
await saveLora('adapter', lora);
void t; void ids; void loadLora;
`);
  writeFileSync(join(PROJ, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], strict: true, noEmit: true,
      types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    files: ['check.ts'],
  }, null, 2));
  const r = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], PROJ, 180_000);
  ok(r, 'tsc on a user of the package');
});

test.run();
