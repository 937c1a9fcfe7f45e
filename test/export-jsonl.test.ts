// `data.js export --format jsonl` (what interop/torch trains on), train.js --init-adapter, and
// config.json as transformers 5 reads it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { runNode } from './helpers/cli-node.js';
import { drawOrder } from '../src/nast/train-jsonl.js';
import { openDatasetSplit } from '../src/data/dataset-node.js';
import { readExamples, ExampleBatcher } from '../src/nast/train-data.js';
import { loadClipTokenizer } from '../src/models/load-node.js';
import { parseSafetensors } from '../src/models/safetensors.js';
import { hfConfigText } from '../src/models/save-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATA_CLI = join(ROOT, 'build', 'src', 'data.js');
const TRAIN_CLI = join(ROOT, 'build', 'src', 'train.js');
const MODEL = join(ROOT, 'models', 'tiny-world');
const TMP = mkdtempSync(join(tmpdir(), 'export-jsonl-'));
const DATA = join(TMP, 'data');

let built: Promise<void> | null = null;
function world(): Promise<void> {
  built ??= runNode(DATA_CLI, ['build', '--from', 'world', '--world-count', '40', '--kind', 'claims,captions', '--out', DATA]).then((r) => {
    assert.is(r.status, 0, r.stderr);
  });
  return built;
}

const readLines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);

test('jsonl export: one line per training example with train.js\'s token ids, and train.js\'s batch order', async () => {
  await world();
  const out = join(TMP, 'export');
  const r = await runNode(DATA_CLI, ['export', '--data', DATA, '--format', 'jsonl', '--split', 'train,validation', '--model', MODEL, '--out', out, '--steps', '5', '--batch-size', '6', '--seed', '4']);
  assert.is(r.status, 0, r.stderr);
  const ds = await openDatasetSplit(DATA, 'train');
  const examples = readExamples(await ds.readRecords(), 'nast', ds.dir, 'negated');
  const lines = readLines(join(out, 'train.jsonl'));
  assert.is(lines.length, examples.length);
  const tok = loadClipTokenizer(MODEL);
  lines.forEach((l, i) => {
    const e = examples[i];
    assert.equal([l.caption, l.choices, l.answer], [e.caption, e.choices, e.answer], `line ${i}`);
    assert.ok(isAbsolute(l.image) && existsSync(l.image), l.image);
    const ids = tok.tokenize([e.caption], { contextLength: 40, truncate: true });
    assert.equal(l.caption_ids, Array.from(ids.subarray(0, ids.indexOf(tok.eotId) + 1)), `line ${i} caption ids`);
    assert.is(l.choice_ids.length, e.choices.length);
    for (const row of l.choice_ids as number[][]) {
      assert.is(row[0], tok.sotId);
      assert.is(row.at(-1), tok.eotId);
    }
  });
  const batcher = new ExampleBatcher(examples, 6, { step: 0, epoch: 0, cursor: 0, seed: 4 });
  const order = readLines(join(out, 'order.jsonl'));
  assert.is(order.length, 5);
  for (const b of order) assert.equal(b.examples.map((n: number) => lines[n].image), batcher.next().map((p) => ds.resolveImage(p.example.image)), `step ${b.step}`);
  const meta = JSON.parse(readFileSync(join(out, 'export.json'), 'utf8'));
  assert.is(meta.format, 'negclip-train-jsonl');
  assert.equal([meta.context_length, meta.eot_token_id, meta.splits.train.examples], [40, tok.eotId, examples.length]);
  assert.ok(readLines(join(out, 'validation.jsonl')).length > 0);

  // Without --model: no ids. Bad flags are named.
  const plain = join(TMP, 'plain');
  assert.is((await runNode(DATA_CLI, ['export', '--data', DATA, '--format', 'jsonl', '--out', plain])).status, 0);
  assert.not.ok('caption_ids' in readLines(join(plain, 'train.jsonl'))[0]);
  const bad = async (args: string[], re: RegExp) => {
    const x = await runNode(DATA_CLI, ['export', '--data', DATA, '--out', join(TMP, 'bad'), ...args]);
    assert.is.not(x.status, 0);
    assert.match(x.stderr, re);
  };
  await bad(['--format', 'csv'], /--format: one of negbench, jsonl, got "csv"/);
  await bad(['--format', 'jsonl', '--recipe', 'clip'], /--recipe must be one of nast, negbench/);
  await bad(['--format', 'jsonl', '--split', 'validation', '--steps', '3'], /--steps writes the train split's batch order/);
  await bad(['--format', 'jsonl', '--steps', '3', '--batch-size', '1000'], /--batch-size 1000: .*fewer than the batch size/);
  await bad(['--format', 'negbench', '--model', MODEL], /--model applies to --format jsonl only/);
});

test('--steps beyond what the heap holds: order.jsonl is streamed, not built in memory (400000 batches under a 32 MiB heap)', async () => {
  await world();
  const out = join(TMP, 'long-order');
  const steps = 400_000;
  const r = spawnSync('node', ['--max-old-space-size=32', DATA_CLI, 'export', '--data', DATA, '--format', 'jsonl', '--out', out, '--steps', String(steps), '--batch-size', '4', '--seed', '1'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr.slice(0, 400));
  const text = readFileSync(join(out, 'order.jsonl'), 'utf8');
  assert.is(text.split('\n').length, steps + 1, 'one line per step and a final newline');
  const ds = await openDatasetSplit(DATA, 'train');
  const want = drawOrder(readExamples(await ds.readRecords(), 'nast', ds.dir, 'negated'), 4, 1, 3);
  assert.equal(text.split('\n', 3).map((l) => JSON.parse(l)), want, 'the same batches as drawn in memory');
  assert.equal(JSON.parse(text.slice(text.lastIndexOf('\n', text.length - 2) + 1)).step, steps);
});

test('train.js --init-adapter starts from an adapter; its shape wins over flags that disagree', async () => {
  await world();
  const first = join(TMP, 'first');
  const base = ['--model', MODEL, '--data', DATA, '--uniform', '--batch-size', '4', '--val-every', '0', '--quiet', '--lr', '1e-2'];
  let r = await runNode(TRAIN_CLI, [...base, '--steps', '2', '--rank', '4', '--alpha', '8', '--out', first]);
  assert.is(r.status, 0, r.stderr);
  const adapter = join(first, 'adapter');
  const w0 = parseSafetensors(readFileSync(join(adapter, 'adapter_model.safetensors')));
  // Zero steps is not a run; one step at learning rate ~0 must leave the weights where they started.
  const second = join(TMP, 'second');
  r = await runNode(TRAIN_CLI, [...base, '--steps', '1', '--lr', '1e-30', '--weight-decay', '0', '--init-adapter', adapter, '--out', second]);
  assert.is(r.status, 0, r.stderr);
  const w1 = parseSafetensors(readFileSync(join(second, 'adapter', 'adapter_model.safetensors')));
  assert.equal(w1.keys().sort(), w0.keys().sort());
  for (const k of w0.keys()) {
    const a = w0.read(k);
    const b = w1.read(k);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    assert.ok(d < 1e-6, `${k}: started from the adapter (max diff ${d})`);
  }
  assert.is(JSON.parse(readFileSync(join(second, 'adapter', 'adapter_config.json'), 'utf8')).r, 4);
  r = await runNode(TRAIN_CLI, [...base, '--steps', '1', '--rank', '8', '--init-adapter', adapter, '--out', join(TMP, 'x')]);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /--rank 8 differs from the adapter's 4/);
  r = await runNode(TRAIN_CLI, [...base, '--steps', '1', '--init-adapter', adapter, '--resume', '--out', first]);
  assert.match(r.stderr, /--init-adapter starts a run; --resume continues/);
  r = await runNode(TRAIN_CLI, [...base, '--steps', '1', '--init-adapter', join(TMP, 'nope'), '--out', join(TMP, 'y')]);
  assert.match(r.stderr, /nope: no such adapter folder/);
});

test('config.json keeps float fields floats (transformers 5 refuses "initializer_factor": 1)', () => {
  const text = hfConfigText({ initializer_factor: 1, logit_scale_init_value: 2.6592, text_config: { layer_norm_eps: 1e-5, hidden_size: 64, attention_dropout: 0 } });
  assert.match(text, /"initializer_factor": 1\.0,/);
  assert.match(text, /"attention_dropout": 0\.0\n/);
  assert.match(text, /"hidden_size": 64,/);
  assert.match(text, /"logit_scale_init_value": 2\.6592,/);
  assert.equal(JSON.parse(text).text_config.layer_norm_eps, 1e-5);
  assert.match(readFileSync(join(MODEL, 'config.json'), 'utf8'), /"initializer_factor": 1\.0,/, 'the shipped tiny model too');
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
