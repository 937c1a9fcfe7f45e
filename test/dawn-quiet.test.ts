import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
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

/** A small training set (3 images) in a fresh folder. */
async function tinyTrainingData(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'dawn-quiet-'));
  mkdirSync(join(dir, 'images'));
  const records: unknown[] = [];
  for (const [i, img] of ['rgb-37x53.png', 'rgb-17x13.png', 'gray-53x41.png'].entries()) {
    copyFileSync(join(ROOT, 'test', 'fixtures', 'image', img), join(dir, 'images', img));
    records.push({ kind: 'claim-set', image: `images/${img}`, answer: 0, claims: [{ text: `There is edema ${i}.` }, { text: 'There is no edema.' }] });
    records.push({ kind: 'negated-caption', image: `images/${img}`, caption: 'There is edema but no effusion.' });
  }
  await writeShards(dir, records, { recordsPerShard: 5 });
  return dir;
}

/** train.js as a user starts it (the filtered parent and its child), with stderr collected. */
function startTraining(dir: string, out: string) {
  const child = spawn('node', [TRAIN, '--model', MODEL, '--tokenizer', VOCAB, '--data', dir, '--uniform', '--batch-size', '3', '--steps', '100000', '--log-every', '1', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const waiters: { re: RegExp; done: () => void }[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
    for (const w of waiters.splice(0)) if (w.re.test(stderr)) w.done(); else waiters.push(w);
  });
  const closed = new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  /** Resolves once stderr matches `re`; fails if the process ends first or after two minutes. */
  const stderrMatches = (re: RegExp) => new Promise<void>((done, fail) => {
    if (re.test(stderr)) return done();
    const timer = setTimeout(() => fail(new Error(`no ${re} on stderr within 120 s: ${stderr}`)), 120_000);
    waiters.push({ re, done: () => { clearTimeout(timer); done(); } });
    void closed.then((c) => { clearTimeout(timer); if (!re.test(stderr)) fail(new Error(`exited ${c} before ${re}: ${stderr}`)); });
  });
  return { child, closed, stderrMatches, stderr: () => stderr };
}

const STEP_LOGGED = /loss \d/;

test('SIGTERM, then SIGINT while saving, then more signals right before exit: train.js stops, saves a complete checkpoint and exits 143', async () => {
  const dir = await tinyTrainingData();
  const out = join(dir, 'run');
  const run = startTraining(dir, out);
  await run.stderrMatches(STEP_LOGGED);
  run.child.kill('SIGTERM');
  await run.stderrMatches(/train: SIGTERM: finishing step \d+, then saving a checkpoint/);
  // The second signal arrives once the child is known to be stopping: it must not cut the save short.
  run.child.kill('SIGINT');
  await run.stderrMatches(/SIGINT again: still finishing the step and saving the checkpoint, please wait/);
  // The last line before exit: signals from here on reach a process whose run is over.
  await run.stderrMatches(/interrupted at step \d+ of 100000; checkpoint saved/);
  run.child.kill('SIGINT');
  run.child.kill('SIGHUP');
  const code = await run.closed;
  assert.is(code, 143, run.stderr());
  assert.ok(existsSync(join(out, 'checkpoint', readFileSync(join(out, 'checkpoint', 'current'), 'utf8').trim(), 'trainer_state.json')), 'a complete checkpoint');
  assert.not.match(run.stderr(), /artificially reduced/);
});

test('SIGHUP stops train.js like SIGTERM: checkpoint saved, exit 129', async () => {
  const dir = await tinyTrainingData();
  const out = join(dir, 'run');
  const run = startTraining(dir, out);
  await run.stderrMatches(STEP_LOGGED);
  run.child.kill('SIGHUP');
  const code = await run.closed;
  assert.is(code, 129, run.stderr());
  assert.match(run.stderr(), /train: SIGHUP: finishing step \d+/);
  assert.match(run.stderr(), /interrupted at step \d+ of 100000; checkpoint saved/);
  assert.ok(existsSync(join(out, 'checkpoint', 'current')));
});

/** The pids whose parent is `ppid` (Linux /proc). */
function childrenOf(ppid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid;
    } catch { return false; }
  });
}

test('kill -9 of train.js\'s own pid: its worker saves a checkpoint and exits instead of training on for nobody', async () => {
  if (!existsSync('/proc/self/stat')) return; // the worker is found through Linux's /proc
  const dir = await tinyTrainingData();
  const out = join(dir, 'run');
  const run = startTraining(dir, out);
  await run.stderrMatches(STEP_LOGGED);
  const [worker] = childrenOf(run.child.pid!);
  assert.ok(worker, 'the filtered child runs the training');
  run.child.kill('SIGKILL');
  await run.closed;
  // The worker is not our child, so its exit is seen through /proc (bounded: 2 minutes).
  for (let i = 0; i < 1200 && existsSync(`/proc/${worker}`) && !readFileSync(`/proc/${worker}/stat`, 'utf8').includes(') Z '); i++) await new Promise((r) => setTimeout(r, 100));
  assert.not.ok(existsSync(`/proc/${worker}`) && !readFileSync(`/proc/${worker}/stat`, 'utf8').includes(') Z '), 'the worker exited');
  const current = readFileSync(join(out, 'checkpoint', 'current'), 'utf8').trim();
  assert.ok(existsSync(join(out, 'checkpoint', current, 'trainer_state.json')), 'a complete checkpoint');
});

test.run();
