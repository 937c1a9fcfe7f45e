import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { gpu } from './helpers/gpu.js';
import { concat, noGrad, tensor, type GpuContext, type Tensor } from '../src/engine/index.js';
import { loadClip } from '../src/models/load-node.js';
import { attachLora, type LoraSet } from '../src/models/lora.js';
import type { ClipModel } from '../src/models/clip.js';
import { Trainer } from '../src/nast/trainer.js';
import { ExampleBatcher, type Example } from '../src/nast/train-data.js';
import { TrainingLoop, NonFiniteLossError, type StepLog } from '../src/nast/training-loop.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'clip');
const ref = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8')) as { ids: number[][]; pixels: number[]; pixels_shape: number[] };
const T = 77;

// Texts are the names of the fixture's three token rows; the tokenizer looks them up.
const ROWS: Record<string, number[]> = { a: ref.ids[0], b: ref.ids[1], c: ref.ids[2] };
const EXAMPLES: Example[] = [
  { image: 'img0', caption: 'a', choices: ['a', 'b', 'c'], answer: 0 },
  { image: 'img0', caption: 'b', choices: ['c', 'a'], answer: 1 },
  { image: 'img1', caption: 'c', choices: ['b', 'c'], answer: 1 },
];

interface World {
  model: ClipModel;
  lora: LoraSet;
  images: Tensor;
  trainer: Trainer;
  batcher: ExampleBatcher;
  tokenized: string[];
  tokenize: (texts: readonly string[]) => Int32Array;
}

async function setup(ctx: GpuContext, lr = 1e-2, steps = 6): Promise<World> {
  const model = await loadClip(ctx, join(FIX, 'tiny-hf'));
  const lora = attachLora(model, { rank: 4, alpha: 8, seed: 3 });
  const img = noGrad(() => model.encodeImage(Float32Array.from(ref.pixels), ref.pixels_shape[0]));
  img.pooled.dispose();
  const trainer = new Trainer(model, lora, { lambda: 0.5, lr, weightDecay: 0.01, warmupSteps: 1, totalSteps: steps, layerScales: null, scaleMode: 'update' });
  const batcher = new ExampleBatcher(EXAMPLES, 2, { step: 0, epoch: 0, cursor: 0, seed: 5 });
  const tokenized: string[] = [];
  const tokenize = (texts: readonly string[]) => {
    tokenized.push(...texts);
    const out = new Int32Array(texts.length * T);
    texts.forEach((t, i) => out.set(ROWS[t], i * T));
    return out;
  };
  return { model, lora, images: img.embeds, trainer, batcher, tokenized, tokenize };
}

function release(w: World): void {
  w.images.dispose();
  w.trainer.dispose();
  w.lora.dispose();
  w.model.dispose();
}

const values = (lora: LoraSet) => Promise.all(lora.parameters().map((p) => p.toArray() as Promise<Float32Array>));

test('a run logs every logEvery steps and at the last, validates and checkpoints on schedule, tokenises each example once', async () => {
  const ctx = await gpu();
  const w = await setup(ctx, 1e-2, 5);
  const run = new TrainingLoop(w.trainer, w.batcher, w.images, w.tokenize, { steps: 5, logEvery: 2, saveEvery: 2, valEvery: 3 });
  const logs: StepLog[] = [];
  const saved: number[] = [];
  const validated: number[] = [];
  const r = await run.run({
    onLog: (l) => { logs.push(l); },
    onCheckpoint: async (s) => { saved.push(s); },
    onValidate: async (s) => { validated.push(s); },
  });
  assert.equal(logs.map((l) => l.step), [2, 4, 5]);
  for (const l of logs) assert.ok(Number.isFinite(l.loss) && l.loss > 0 && l.samplesPerSec > 0, `step ${l.step}: ${JSON.stringify(l)}`);
  assert.equal(saved, [2, 4], 'no checkpoint hook at the last step: the caller saves that');
  assert.equal(validated, [3, 5]);
  assert.equal([r.ended, r.lastSaved, r.lastLoss, w.batcher.state.step, w.trainer.stepCount], ['done', 4, logs[2].loss, 5, 5]);
  // Three examples, each tokenised once (caption and choices) however often batches reuse them.
  assert.is(w.tokenized.length, EXAMPLES.reduce((s, e) => s + 1 + e.choices.length, 0));
  release(w);
});

test('stopping after N steps and running on equals a straight run (the loop state is the batcher\'s)', async () => {
  const ctx = await gpu();
  const straight = await setup(ctx);
  await new TrainingLoop(straight.trainer, straight.batcher, straight.images, straight.tokenize, { steps: 6, logEvery: 6 }).run();
  const want = await values(straight.lora);
  release(straight);

  const parts = await setup(ctx);
  let polls = 0;
  const first = await new TrainingLoop(parts.trainer, parts.batcher, parts.images, parts.tokenize, { steps: 6, logEvery: 6 }).run({ shouldStop: () => ++polls > 2 });
  assert.equal([first.ended, parts.batcher.state.step], ['stopped', 2]);
  const second = await new TrainingLoop(parts.trainer, parts.batcher, parts.images, parts.tokenize, { steps: 6, logEvery: 6, stopAfter: 4 }).run();
  assert.equal([second.ended, parts.batcher.state.step, second.lastSaved], ['stop-after', 4, 2]);
  const third = await new TrainingLoop(parts.trainer, parts.batcher, parts.images, parts.tokenize, { steps: 6, logEvery: 6 }).run();
  assert.is(third.ended, 'done');
  const got = await values(parts.lora);
  got.forEach((g, i) => assert.equal(Array.from(g), Array.from(want[i]), `parameter ${i}`));
  release(parts);
});

test('a non-finite loss stops the run before the checkpoint of that step', async () => {
  const ctx = await gpu();
  const w = await setup(ctx, 1e30, 6);
  const saved: number[] = [];
  const run = new TrainingLoop(w.trainer, w.batcher, w.images, w.tokenize, { steps: 6, logEvery: 100, saveEvery: 1 });
  try {
    await run.run({ onCheckpoint: async (s) => { saved.push(s); } });
    assert.unreachable('expected a NonFiniteLossError');
  } catch (e) {
    assert.instance(e, NonFiniteLossError);
    const err = e as NonFiniteLossError;
    assert.match(err.message, /the loss became (NaN|-?Infinity) at step \d/);
    assert.equal(saved, Array.from({ length: err.step - 1 }, (_, i) => i + 1), 'every earlier step was saved, the failing one not');
    assert.is(run.lastSaved, err.step - 1);
  }
  release(w);
});

test('bad options name what is wrong', async () => {
  const ctx = await gpu();
  const w = await setup(ctx);
  assert.throws(() => new TrainingLoop(w.trainer, w.batcher, w.images, w.tokenize, { steps: 0 }), /steps must be a positive integer, got 0/);
  assert.throws(() => new TrainingLoop(w.trainer, w.batcher, w.images, w.tokenize, { steps: 2, accumulate: 3 }), /accumulate 3 must be a positive divisor of the batch size 2/);
  release(w);
});

test('a CLIP batch larger than the batch: each micro-batch gets its share of the items and of the caption-only pairs', async () => {
  const ctx = await gpu();
  const w = await setup(ctx);
  const dim = w.images.shape[1];
  const table = noGrad(() => concat([w.images, tensor(ctx, Float32Array.from({ length: 2 * dim }, (_, i) => Math.sin(0.3 * i)), [2, dim])], 0));
  const four: Example[] = [...EXAMPLES, { image: 'img2', caption: 'a', choices: ['a', 'b'], answer: 0 }, { image: 'img3', caption: 'b', choices: ['b', 'c'], answer: 1 }];
  const batcher = new ExampleBatcher(four, 2, { step: 0, epoch: 0, cursor: 0, seed: 5 }, 4);
  const calls: { items: number[]; extra: number[]; weight: number }[] = [];
  const real = w.trainer.accumulate.bind(w.trainer);
  w.trainer.accumulate = (t, items, weight = 1, extra = []) => {
    calls.push({ items: items.map((i) => i.image), extra: extra.map((e) => e.image), weight });
    return real(t, items, weight, extra);
  };
  assert.throws(() => new TrainingLoop(w.trainer, new ExampleBatcher(four, 2, { step: 0, epoch: 0, cursor: 0, seed: 5 }, 3), table, w.tokenize, { steps: 1, accumulate: 2 }), /must divide the CLIP batch 3/);
  const r = await new TrainingLoop(w.trainer, batcher, table, w.tokenize, { steps: 3, accumulate: 2 }).run();
  assert.is(r.ended, 'done');
  assert.ok(Number.isFinite(r.lastLoss));
  assert.is(calls.length, 6, 'two micro-batches a step');
  for (let s = 0; s < 3; s++) {
    const [m0, m1] = [calls[2 * s], calls[2 * s + 1]];
    for (const m of [m0, m1]) assert.equal([m.items.length, m.extra.length, m.weight], [1, 1, 0.5], `step ${s}: ${JSON.stringify(m)}`);
    assert.is(new Set([...m0.items, ...m0.extra, ...m1.items, ...m1.extra]).size, 4, `step ${s}: four distinct images`);
  }
  table.dispose();
  release(w);
});

test.run();
