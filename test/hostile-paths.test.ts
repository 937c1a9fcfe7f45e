import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileReadError, MAX_CONFIG_BYTES, readRegularFile, readRegularTextSync, regularFileSize } from '../src/io/read-file-node.js';
import { readBenchmarkFiles } from '../src/nast/benchmark-files-node.js';

// Paths that are not regular files: /dev/zero never ends, a FIFO blocks open() until a writer
// comes. Every run below is a child process with a timeout, so a regression fails, never hangs.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = (name: string) => join(ROOT, 'build', 'src', `${name}.js`);
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const IMAGE = join(ROOT, 'test', 'fixtures', 'image', 'rgb-37x53.png');
const TMP = mkdtempSync(join(tmpdir(), 'hostile-paths-'));
const FIFO = join(TMP, 'fifo');
const hasFifo = spawnSync('mkfifo', [FIFO]).status === 0;
const ZERO = '/dev/zero';
const hostile = hasFifo ? [ZERO, FIFO] : [ZERO];
const kindOf = (p: string) => (p === ZERO ? /a character device, not a regular file/ : /a named pipe \(FIFO\), not a regular file/);

/** A sparse file of `bytes` (no disk used) starting with `head`, in TMP unless `name` is a path. */
function sparse(name: string, bytes: number, head = new Uint8Array(0)): string {
  const p = name.startsWith('/') ? name : join(TMP, name);
  writeFileSync(p, head);
  truncateSync(p, bytes);
  return p;
}

function run(args: string[]): SpawnSyncReturns<string> {
  const r = spawnSync('node', args, { encoding: 'utf8', timeout: 60_000 });
  assert.not.ok(r.error, `${args.join(' ')}: ${r.error?.message} (hung?)`);
  return r;
}

/** The CLI's one-line error: exit 1, and the `name: ...` line matches every pattern. */
function fails(name: string, args: string[], ...patterns: RegExp[]): void {
  const r = run([CLI(name), ...args]);
  const line = r.stderr.split('\n').find((l) => l.startsWith(`${name}: `)) ?? '';
  assert.is(r.status, 1, `${args.join(' ')}: exit ${r.status}, ${r.stderr}`);
  for (const p of patterns) assert.match(line, p, `${args.join(' ')}: ${r.stderr}`);
}

test('read helper: regular files only, refused by a stat naming what the path is; size caps before reading', async () => {
  const ok = join(TMP, 'ok.json');
  writeFileSync(ok, '{"a": 1}');
  assert.is(readRegularTextSync(ok, MAX_CONFIG_BYTES, 'a JSON config'), '{"a": 1}');
  assert.throws(() => readRegularTextSync(ZERO, MAX_CONFIG_BYTES, 'a JSON config'), /^\/dev\/zero: a character device, not a regular file: only regular files are read$/);
  assert.throws(() => regularFileSize(TMP), /: a folder, not a regular file/);
  try {
    regularFileSize(join(TMP, 'none'));
    assert.unreachable();
  } catch (e) {
    assert.instance(e, FileReadError);
    assert.is((e as FileReadError).code, 'ENOENT');
    assert.match((e as Error).message, /none: cannot read \(ENOENT\)$/);
  }
  // 100 MB of nothing: refused from its size, unread (reading it would take a 100 MB buffer).
  const big = sparse('big.json', 100 * 1024 * 1024);
  assert.throws(() => readRegularTextSync(big, MAX_CONFIG_BYTES, 'a JSON config'), /big\.json: 104857600 bytes, over the 64 MiB limit for a JSON config: not read/);
  await readRegularFile(big, MAX_CONFIG_BYTES, 'a JSON config').then(() => assert.unreachable(), (e) => assert.match(e.message, /over the 64 MiB limit/));
});

test('read helper: a FIFO is refused without being opened, sync and async', () => {
  if (!hasFifo) return console.log('  (skipped: no mkfifo)');
  const helper = join(ROOT, 'build', 'src', 'io', 'read-file-node.js');
  const script = `const m = await import(${JSON.stringify(helper)});
    for (const f of [() => m.readRegularTextSync(process.argv[1], 100, 'x'), () => m.readRegularText(process.argv[1], 100, 'x'), () => m.openRegular(process.argv[1])]) {
      try { await f(); console.log('read'); } catch (e) { console.log(e.message); }
    }`;
  const r = run(['--input-type=module', '-e', script, FIFO]);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 3, r.stdout + r.stderr);
  for (const l of lines) assert.match(l, /fifo: a named pipe \(FIFO\), not a regular file/);
});

test('embed.js: --image, --config and --model given /dev/zero or a FIFO fail at once, naming the flag or file', () => {
  for (const p of hostile) {
    fails('embed', ['--model', MODEL, '--image', p], new RegExp(`--image ${p}: `), kindOf(p));
    fails('embed', ['--model', MODEL, '--text', 'x', '--config', p], new RegExp(`--config ${p}: `), kindOf(p));
    fails('embed', ['--model', p, '--text', 'x'], new RegExp(`${p}: `), kindOf(p));
  }
});

test('images: a 1.5 GB sparse .png of zeros is refused as not a PNG without being read; a PNG header on one, as too big', () => {
  const decoder = join(ROOT, 'build', 'src', 'models', 'image', 'decode-node.js');
  const ihdr = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 4, 0, 0, 0, 4, 8, 2, 0, 0, 0]);
  const cases: [string, RegExp][] = [
    [sparse('zeros.png', 1.5 * 2 ** 30), /zeros\.png: not a PNG or JPEG file/],
    [sparse('header.png', 1.5 * 2 ** 30, ihdr), /header\.png: 1610612736 bytes, more than a 4 x 4 image needs \(67109120 bytes at most\): not read/],
  ];
  // In a child, so its peak memory shows whether the file was read. Written as plain text: in the
  // full suite the child inherits FORCE_COLOR, and console.log would colour the number.
  const script = `const m = await import(${JSON.stringify(decoder)});
    try { await m.decodeImageFile(process.argv[1]); process.stdout.write('decoded\\n'); } catch (e) { process.stdout.write(e.message + '\\n'); }
    process.stdout.write(String(process.resourceUsage().maxRSS) + '\\n');`;
  for (const [path, msg] of cases) {
    const r = run(['--input-type=module', '-e', script, path]);
    const [line, rssKiB] = r.stdout.trim().split('\n');
    assert.match(line, msg);
    assert.ok(Number(rssKiB) < 400 * 1024, `peak memory ${rssKiB} KiB: the file was read`);
  }
  fails('embed', ['--model', MODEL, '--image', cases[0][0]], /zeros\.png: not a PNG or JPEG file/);
});

test('train.js --cte and trace.js --pairs given /dev/zero or a FIFO fail at once, naming the flag', () => {
  for (const p of hostile) {
    fails('train', ['--model', MODEL, '--data', TMP, '--cte', p], new RegExp(`--cte ${p}: `), kindOf(p));
    fails('trace', ['--model', MODEL, '--pairs', p], new RegExp(`--pairs ${p}: `), kindOf(p));
  }
});

test('trace.js: an image path inside the pairs file that is a FIFO or /dev/zero is refused by name', () => {
  for (const p of hostile) {
    const pairs = join(TMP, 'pairs.jsonl');
    // Caption and foil of equal token length, so the pair is traceable but for its image.
    writeFileSync(pairs, JSON.stringify({ image: p, caption: 'There is no edema.', foil: 'There is an edema.' }) + '\n');
    fails('trace', ['--model', MODEL, '--tokenizer', VOCAB, '--pairs', pairs, '--out', join(TMP, 'trace-out')], new RegExp(`${p}: `), kindOf(p));
  }
});

test('NegBench CSV: image paths that are a FIFO or /dev/zero are unusable rows, reported like missing ones', () => {
  const csv = join(TMP, 'mcq.csv');
  copyFileSync(IMAGE, join(TMP, 'a.png'));
  writeFileSync(csv, ['image_path,correct_answer,caption_0,caption_1', 'a.png,1,A cat.,No cat.', ...hostile.map((p) => `${p},1,A cat.,No cat.`)].join('\n') + '\n');
  const set = readBenchmarkFiles({ negbenchMcq: csv }, false);
  assert.equal(set.mcq?.map((r) => r.line), [2]);
  assert.equal(set.skipped.map((s) => s.reason), hostile.map((p) => `image is not a regular file: ${p}`));
  fails('eval', ['--model', MODEL, '--negbench-mcq', csv, '--strict'], /--strict: \d row\(s\) cannot be used: .*mcq\.csv:3: image is not a regular file: \/dev\/zero/);
  for (const p of hostile) fails('eval', ['--model', MODEL, '--negbench-mcq', p], new RegExp(`--negbench-mcq ${p}: `), kindOf(p));
});

test('adapter: adapter_config.json that is a FIFO, or a sparse 100 MB one, is refused unread', () => {
  const src = join(ROOT, 'test', 'fixtures', 'lora', 'peft-adapter');
  const bad: [string, RegExp][] = [[join(TMP, 'adapter-big'), /adapter_config\.json: 104857600 bytes, over the 64 MiB limit for adapter_config\.json/]];
  if (hasFifo) bad.push([join(TMP, 'adapter-fifo'), /adapter_config\.json: a named pipe \(FIFO\), not a regular file/]);
  for (const [dir, msg] of bad) {
    mkdirSync(dir);
    copyFileSync(join(src, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
    if (dir.endsWith('fifo')) assert.is(spawnSync('mkfifo', [join(dir, 'adapter_config.json')]).status, 0);
    else sparse(join(dir, 'adapter_config.json'), 100 * 1024 * 1024);
    fails('embed', ['--model', MODEL, '--tokenizer', VOCAB, '--text', 'x', '--adapter', dir], msg);
  }
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
