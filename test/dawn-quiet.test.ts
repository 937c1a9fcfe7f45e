import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { DawnLineFilter } from '../src/cli/dawn-quiet-node.js';
import { writeShards } from '../src/data/shards-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EMBED = join(ROOT, 'build', 'src', 'embed.js');
const TRAIN = join(ROOT, 'build', 'src', 'train.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const U = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
const S = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 500000 to 16 to fit dynamic offset allocation limit.\n';

function filtered(chunks: string[]): { out: string; writes: string[] } {
  const writes: string[] = [];
  const f = new DawnLineFilter((s) => writes.push(s));
  for (const c of chunks) f.push(c);
  f.end();
  return { out: writes.join(''), writes };
}

test('the filter drops exactly Dawn\'s two limit lines, however the chunks fall', () => {
  const text = `${U}${S}train: step 1\nWarning: something else\n${U}\rtrain [#   ] loss 0.5`;
  const want = 'train: step 1\nWarning: something else\n\rtrain [#   ] loss 0.5';
  assert.is(filtered([text]).out, want);
  for (let cut = 1; cut < text.length; cut += 7) assert.is(filtered([text.slice(0, cut), text.slice(cut)]).out, want, `cut at ${cut}`);
  assert.is(filtered([...text]).out, want, 'one character at a time');
  // a lookalike with other words is kept
  assert.is(filtered(['Warning: maxDynamicUniformBuffersPerPipelineLayout is fine\n']).out, 'Warning: maxDynamicUniformBuffersPerPipelineLayout is fine\n');
});

test('progress without a newline is passed on at once, not held for the line end', () => {
  const { writes } = filtered(['\rtrain [#  ] 1/3', '\rtrain [## ] 2/3']);
  assert.equal(writes, ['\rtrain [#  ] 1/3', '\rtrain [## ] 2/3']);
});

test('CLIs keep Dawn\'s lines off stderr unless --verbose; --help lists --verbose; exit codes pass through', () => {
  const run = (args: string[]) => spawnSync('node', [EMBED, '--model', MODEL, '--tokenizer', VOCAB, '--text', 'a cat', ...args], { encoding: 'utf8' });
  const quiet = run([]);
  assert.is(quiet.status, 0, quiet.stderr);
  assert.not.match(quiet.stderr, /artificially reduced/);
  assert.match(quiet.stdout, /"a cat"/);
  const verbose = run(['--verbose']);
  assert.is(verbose.status, 0, verbose.stderr);
  assert.match(verbose.stdout, /"a cat"/);
  const help = spawnSync('node', [EMBED, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /--verbose/);
  const bad = spawnSync('node', [EMBED, '--model', MODEL, '--bogus'], { encoding: 'utf8' });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown flag --bogus/);
  // a subcommand word consumed before runCli still reaches the child
  const sub = spawnSync('node', [join(ROOT, 'build', 'src', 'data.js'), 'export'], { encoding: 'utf8' });
  assert.is(sub.status, 2);
  assert.match(sub.stderr, /^data export: --data is required/);
});

test('SIGTERM then SIGINT sent to the CLI\'s own pid reach the run: train.js stops, saves a complete checkpoint despite the second signal, exits 130', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dawn-quiet-'));
  mkdirSync(join(dir, 'images'));
  const records: unknown[] = [];
  for (const [i, img] of ['rgb-37x53.png', 'rgb-17x13.png', 'gray-53x41.png'].entries()) {
    copyFileSync(join(ROOT, 'test', 'fixtures', 'image', img), join(dir, 'images', img));
    records.push({ kind: 'claim-set', image: `images/${img}`, answer: 0, claims: [{ text: `There is edema ${i}.` }, { text: 'There is no edema.' }] });
    records.push({ kind: 'negated-caption', image: `images/${img}`, caption: 'There is edema but no effusion.' });
  }
  await writeShards(dir, records, { recordsPerShard: 5 });
  const out = join(dir, 'run');
  const child = spawn('node', [TRAIN, '--model', MODEL, '--tokenizer', VOCAB, '--data', dir, '--uniform', '--batch-size', '3', '--steps', '100000', '--log-every', '1', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const metrics = join(out, 'metrics.jsonl');
  for (let i = 0; i < 600 && !(existsSync(metrics) && readFileSync(metrics, 'utf8').includes('\n')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(existsSync(metrics), `no metrics after 60 s: ${stderr}`);
  child.kill('SIGTERM');
  // A second signal 20 ms later must not cut the save short.
  await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  assert.is(code, 130, stderr);
  assert.match(stderr, /SIGINT again: still finishing the step and saving the checkpoint, please wait/);
  assert.match(stderr, /interrupted at step \d+ of 100000; checkpoint saved/);
  assert.ok(existsSync(join(out, 'checkpoint', readFileSync(join(out, 'checkpoint', 'current'), 'utf8').trim(), 'trainer_state.json')), 'a complete checkpoint');
  assert.not.match(stderr, /artificially reduced/);
});

test.run();
