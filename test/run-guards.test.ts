import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeShards } from '../src/data/shards-node.js';
import { compareResume, metricsUpTo } from '../src/nast/resume-check.js';
import { LOCK_NAME } from '../src/cli/run-lock-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'train.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');

async function dataset(tag = ''): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'run-guards-'));
  mkdirSync(join(dir, 'images'));
  const records: unknown[] = [];
  for (const [i, img] of ['rgb-37x53.png', 'rgb-17x13.png', 'gray-53x41.png'].entries()) {
    copyFileSync(join(ROOT, 'test', 'fixtures', 'image', img), join(dir, 'images', img));
    records.push({ kind: 'claim-set', image: `images/${img}`, answer: 0, claims: [{ text: `There is edema ${i}${tag}.` }, { text: 'There is no edema.' }] });
    records.push({ kind: 'negated-caption', image: `images/${img}`, caption: 'There is edema but no effusion.' });
  }
  await writeShards(dir, records, { recordsPerShard: 5 });
  return dir;
}

/** A cte.json over the fixture's two text layers; alpha is the min-max of `layer`, as traced. */
function cteFile(dir: string, layer = [0.5, 0.9]): string {
  const file = join(dir, `cte-${layer.join('-')}.json`);
  const [lo, hi] = [Math.min(...layer), Math.max(...layer)];
  const alpha = layer.map((x) => (x - lo) / (hi - lo));
  writeFileSync(file, JSON.stringify({ version: 2, layers: 2, positions: 'differ', beta: 1, pairs: [], skipped: [], cte_mean: [[0.1], ...layer.map((x) => [x])], cte_embeddings: 0.1, cte_layer: layer, alpha }));
  return file;
}

const base = (data: string, out: string) => ['--model', MODEL, '--tokenizer', VOCAB, '--data', data, '--batch-size', '3', '--quiet', '--out', out];
const run = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8' });

test('resume rules: identity changes are errors naming the flags, rates are notes, old checkpoints compare what they have', () => {
  const was = { recipe: 'nast', seed: 0, lr: 1e-3, rank: 8, model: 'sha256:a', model_path: '/m1', data: 'sha256:d', scales: 'cte.json sha256:c, beta 1' };
  const given = (k: string) => k === 'lr';
  const same = compareResume(was, { ...was, model_path: '/moved' }, given, 'CK');
  assert.equal(same, { errors: [], notes: [] }, 'a moved model folder is the same model');
  const v = compareResume(was, { ...was, lr: 2e-3, scales: 'uniform', model: 'sha256:b', model_path: '/m2', rank: 4 }, given, 'CK');
  assert.equal(v.notes, ['--resume: --lr is now 0.002 (the checkpoint\'s run had 0.001)']);
  assert.is(v.errors.length, 2, 'rank not given: the checkpoint decides it');
  assert.match(v.errors.join('\n'), /the base model changed: now \/m2 \(sha256:b\), the checkpoint's run had \/m1 \(sha256:a\) \(CK\).*--model \/ --config/);
  assert.match(v.errors.join('\n'), /the per-layer scales changed: now \(uniform\)/);
  assert.equal(compareResume({ seed: 0 }, { seed: 0, model: 'x' }, given, 'CK').errors, [], 'keys an older checkpoint lacks are not compared');
});

test('metrics.jsonl is cut back to the checkpoint\'s step (a cut-short last line dropped)', () => {
  const text = '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n{"step":2,"train_claim_accuracy":0.5}\n{"step":3,"loss":1}\n{"step":4,"lo';
  assert.is(metricsUpTo(text, 2), '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n{"step":2,"train_claim_accuracy":0.5}\n');
  assert.is(metricsUpTo(text, 0), '');
});

test('--resume refuses other scales, data or model; a fresh run into a run folder needs --overwrite; resumed metrics hold each step once', async () => {
  const data = await dataset();
  const other = await dataset(' other');
  const cte = cteFile(data);
  const out = join(data, 'run');
  const first = run([...base(data, out), '--cte', cte, '--steps', '4', '--log-every', '1', '--stop-after', '2']);
  assert.is(first.status, 0, first.stderr);
  const resume = (args: string[]) => run([...base(data, out), '--steps', '4', '--log-every', '1', '--resume', ...args]);
  let r = resume(['--uniform']);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /--resume: the per-layer scales changed: now \(uniform\), the checkpoint's run had \(cte\.json sha256:[0-9a-f]{16}, beta 1\)/);
  r = resume(['--cte', cteFile(data, [0.2, 0.7])]);
  assert.match(r.stderr, /per-layer scales changed: now \(cte\.json sha256:\w+, beta 1\)/);
  r = resume(['--cte', cte, '--beta', '2']);
  assert.match(r.stderr, /beta 2\), the checkpoint's run had \(cte\.json sha256:\w+, beta 1\)/);
  r = run([...base(other, out), '--cte', cte, '--steps', '4', '--resume']);
  assert.match(r.stderr, /the training data changed: now \S+ \(sha256:\w+\), the checkpoint's run had/);
  r = resume(['--cte', cte, '--model', join(ROOT, 'test', 'fixtures', 'clip', 'tiny-openai-f16.safetensors'), '--config', join(MODEL, 'config.json')]);
  assert.match(r.stderr, /the base model changed: now \S+ \(sha256:\w+\), the checkpoint's run had/);
  // A fresh run into the folder: refused, nothing touched.
  r = run([...base(data, out), '--cte', cte, '--steps', '2']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /already holds a run \(metrics\.jsonl, checkpoint\): continue it with --resume, replace it with --overwrite/);
  assert.match(run([...base(data, out), '--cte', cte, '--resume', '--overwrite']).stderr, /give one/);
  // As a run killed after logging steps 3 and 4 would have left it.
  appendFileSync(join(out, 'metrics.jsonl'), '{"step":3,"loss":9}\n{"step":4,"loss":9}\n');
  r = resume(['--cte', cte]);
  assert.is(r.status, 0, r.stderr);
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'loss' in m).map((m) => m.step);
  assert.equal(steps, [1, 2, 3, 4]);
  assert.not.ok(readFileSync(join(out, 'metrics.jsonl'), 'utf8').includes('"loss":9'));
  // --overwrite replaces the run's outputs and nothing else.
  writeFileSync(join(out, 'notes.txt'), 'mine');
  r = run([...base(data, out), '--uniform', '--steps', '1', '--overwrite']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /--overwrite: replacing the previous run's metrics\.jsonl, report\.json, adapter, checkpoint/);
  assert.is(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
  assert.is(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).mode, 'uniform');
  assert.not.ok(existsSync(join(out, LOCK_NAME)), 'the lock goes with the run');
});

test('one run per output folder: a second train.js into a busy --out is refused; a stale lock is taken over', async () => {
  const data = await dataset();
  const out = join(data, 'busy');
  const child = spawn('node', [CLI, ...base(data, out).filter((a) => a !== '--quiet'), '--uniform', '--steps', '100000', '--log-every', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const closed = new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`no step within 120 s: ${stderr}`)), 120_000);
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/loss \d/.test(stderr)) { clearTimeout(timer); done(); }
    });
    void closed.then(() => { clearTimeout(timer); fail(new Error(`exited early: ${stderr}`)); });
  });
  const second = run([...base(data, out), '--uniform', '--steps', '2', '--overwrite']);
  assert.is(second.status, 1, second.stderr);
  assert.match(second.stderr, /is in use by train\.js \(pid \d+, since [0-9T:.-]+Z\); one run per output: wait for it/);
  child.kill('SIGTERM');
  assert.is(await closed, 143, stderr);
  assert.ok(existsSync(join(out, 'checkpoint', 'current')), 'the first run saved its checkpoint');
  assert.not.ok(existsSync(join(out, LOCK_NAME)));
  // A lock left by a process that is gone (pid of a finished child).
  const gone = spawnSync('true');
  writeFileSync(join(out, LOCK_NAME), JSON.stringify({ tool: 'train.js', pid: gone.pid, start: null, since: '2026-01-01T00:00:00.000Z' }));
  const r = run([...base(data, out), '--uniform', '--resume', '--steps', '3']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /taking over a stale lock of train\.js \(pid \d+, since 2026-01-01T00:00:00\.000Z\), whose process is gone/);
});

test('data.js build, pretrain.js, trace.js and eval.js refuse an output another live run holds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'run-guards-locks-'));
  // A lock held by this (live) test process.
  const held = JSON.stringify({ tool: 'someone', pid: process.pid, start: null, since: '2026-01-01T00:00:00.000Z' });
  const cli = (name: string) => join(ROOT, 'build', 'src', `${name}.js`);
  writeFileSync(join(dir, '.data.lock'), held);
  let r = spawnSync('node', [cli('data'), 'build', '--from', 'world', '--world-count', '8', '--out', join(dir, 'data')], { encoding: 'utf8' });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /data is in use by someone \(pid \d+/);
  assert.not.ok(existsSync(join(dir, 'data')));
  writeFileSync(join(dir, '.model.lock'), held);
  r = spawnSync('node', [cli('pretrain'), '--out', join(dir, 'model'), '--steps', '1'], { encoding: 'utf8' });
  assert.match(r.stderr, /model is in use by someone/);
  mkdirSync(join(dir, 'trace'));
  writeFileSync(join(dir, 'trace', LOCK_NAME), held);
  writeFileSync(join(dir, 'pairs.jsonl'), '{"image":"a.png","caption":"a","foil":"b"}\n');
  r = spawnSync('node', [cli('trace'), '--model', MODEL, '--pairs', join(dir, 'pairs.jsonl'), '--out', join(dir, 'trace')], { encoding: 'utf8' });
  assert.match(r.stderr, /trace is in use by someone/);
  writeFileSync(join(dir, '.report.json.lock'), held);
  r = spawnSync('node', [cli('eval'), '--model', MODEL, '--data', dir, '--out', join(dir, 'report.json')], { encoding: 'utf8' });
  assert.match(r.stderr, /report\.json is in use by someone/);
});

test.run();
