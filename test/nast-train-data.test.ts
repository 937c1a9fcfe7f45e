import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { noGrad, type Tensor } from '../src/engine/index.js';
import { loadClip, loadClipTokenizer } from '../src/models/load-node.js';
import { attachLora } from '../src/models/lora.js';
import { generateWorld, DEFAULT_SPEC } from '../src/data/world/index.js';
import { worldDomain } from '../src/data/build-domains.js';
import { buildStudy, type BuildContext } from '../src/data/build-records.js';
import { worldPixels } from '../src/world/world-batches.js';
import { ExampleBatcher, readExamples, type Example } from '../src/nast/train-data.js';
import { Trainer, type TrainItem } from '../src/nast/trainer.js';
import { choiceLoss } from '../src/nast/losses.js';
import type { EvalRecord } from '../src/data/records.js';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = join(ROOT, 'models', 'tiny-world');

/** World records and the data builders' output for them, as the data CLI makes them. */
function worldData(count: number): { records: EvalRecord[]; world: ReturnType<typeof generateWorld> } {
  const world = generateWorld({ seed: 4, count });
  const ctx: BuildContext = {
    kinds: ['claims', 'captions', 'mcq'], seed: 4, k: 5, captions: 1, mcqs: 3, problems: [], none: {},
    domain: worldDomain(null, () => undefined),
  };
  const records = world.flatMap((r) => buildStudy(ctx, { id: r.id, patient: r.patient, image: r.id, facts: r.facts, captions: r.captions }));
  assert.equal(ctx.problems, []);
  return { records, world };
}

test('readExamples: each recipe\'s choice sets with a negated caption of the same image', () => {
  const { records } = worldData(12);
  const nast = readExamples(records, 'nast', 'test');
  const negbench = readExamples(records, 'negbench', 'test');
  assert.is(nast.length, records.filter((r) => r.kind === 'claim-set').length);
  assert.is(negbench.length, 12 * 3, 'three MCQs per image, one per correct template');
  const negated = new Map(records.filter((r) => r.kind === 'negated-caption').map((r) => [r.image, (r as { caption: string }).caption]));
  for (const e of [...nast, ...negbench]) assert.is(e.caption, negated.get(e.image), `caption of ${e.image}`);
  const templates = records.filter((r) => r.kind === 'negbench-mcq').map((r) => (r as { answerType: string }).answerType);
  for (const t of ['affirmation', 'negation', 'hybrid']) assert.is(templates.filter((x) => x === t).length, 12, t);
  assert.throws(() => readExamples(records.filter((r) => r.kind !== 'negbench-mcq'), 'negbench', 'data/train'), /data\/train: no negbench-mcq records for --recipe negbench/);
});

test('ExampleBatcher: distinct images per batch, every example in turn, rows that name the example\'s image, resumable state', () => {
  const { records } = worldData(20);
  const examples = readExamples(records, 'nast', 'test');
  const b = new ExampleBatcher(examples, 6, { step: 0, epoch: 0, cursor: 0, seed: 9 });
  const seen = new Set<Example>();
  for (let i = 0; i < 30; i++) {
    const batch = b.next();
    assert.is(new Set(batch.map((x) => x.image)).size, 6, 'distinct images');
    for (const { image, example } of batch) {
      assert.is(b.images[image], example.image, 'the row is the example\'s own image');
      seen.add(example);
    }
  }
  assert.is(seen.size, examples.length, 'every claim set comes round');
  const saved = { ...b.state };
  const next = b.next();
  const again = new ExampleBatcher(examples, 6, saved).next();
  assert.equal(again.map((x) => x.example), next.map((x) => x.example), 'the state resumes the same order');
  assert.throws(() => new ExampleBatcher(examples.slice(0, 3), 6, saved), /distinct images, fewer than the batch size 6/);
});

test('ExampleBatcher with a larger CLIP batch: clipBatch distinct images a step, the first batchSize with their choice sets; clipBatch = batchSize draws as before', () => {
  const { records } = worldData(20);
  const examples = readExamples(records, 'nast', 'test');
  const plain = new ExampleBatcher(examples, 4, { step: 0, epoch: 0, cursor: 0, seed: 3 });
  const same = new ExampleBatcher(examples, 4, { step: 0, epoch: 0, cursor: 0, seed: 3 }, 4);
  for (let i = 0; i < 12; i++) {
    const d = same.draw();
    assert.is(d.captionsOnly.length, 0);
    assert.equal(d.examples.map((x) => x.example), plain.next().map((x) => x.example), `step ${i}`);
  }
  const wide = new ExampleBatcher(examples, 4, { step: 0, epoch: 0, cursor: 0, seed: 3 }, 10);
  assert.is(wide.perEpoch, 2, 'an epoch is counted in CLIP batches');
  const seen = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const { examples: ex, captionsOnly } = wide.draw();
    assert.is(ex.length, 4);
    assert.is(captionsOnly.length, 6);
    const all = [...ex, ...captionsOnly];
    assert.is(new Set(all.map((x) => x.image)).size, 10, 'distinct images across both parts');
    for (const { image, example } of all) {
      assert.is(wide.images[image], example.image);
      seen.add(example.image);
    }
  }
  assert.is(seen.size, 20, 'an epoch of CLIP batches visits every image');
  assert.is(wide.state.epoch, 0);
  wide.draw();
  assert.is(wide.state.epoch, 1);
  assert.throws(() => new ExampleBatcher(examples, 4, { step: 0, epoch: 0, cursor: 0, seed: 3 }, 3), /CLIP batch must be an integer >= the batch size 4/);
  assert.throws(() => new ExampleBatcher(examples, 4, { step: 0, epoch: 0, cursor: 0, seed: 3 }, 21), /20 distinct images, fewer than the CLIP batch 21/);
});

/** The rows of the image table train.js builds: each distinct image embedded once, in batcher order. */
async function imageTable(model: Awaited<ReturnType<typeof loadClip>>, world: ReturnType<typeof generateWorld>, order: readonly string[]): Promise<Tensor> {
  const byId = new Map(world.map((r) => [r.id, r]));
  const out = noGrad(() => model.encodeImage(worldPixels(order.map((id) => byId.get(id)!), 32), order.length));
  out.pooled.dispose();
  return out.embeds;
}

test('pairing: the claim loss of a training batch is the loss of each claim set against its own image', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadClip(ctx, MODEL);
  const tok = loadClipTokenizer(MODEL);
  const { records, world } = worldData(16);
  const b = new ExampleBatcher(readExamples(records, 'nast', 'test'), 8, { step: 0, epoch: 0, cursor: 0, seed: 1 });
  const table = await imageTable(model, world, b.images);
  const t = model.config.text.maxPositions;
  const batch = b.next();
  const items: TrainItem[] = batch.map(({ image, example }) => ({
    image, caption: tok.tokenize([example.caption], { contextLength: t }), choices: tok.tokenize(example.choices, { contextLength: t }),
    choiceCount: example.choices.length, answer: example.answer,
  }));
  // lambda 0: the loss is L_claim alone. No trainable weights: nothing is updated.
  const lora = attachLora(model, { rank: 2, seed: 0 });
  const trainer = new Trainer(model, lora, { lambda: 0, lr: 0, weightDecay: 0, warmupSteps: 1, totalSteps: 1, layerScales: null, scaleMode: 'update' });
  const l = trainer.accumulate(table, items);
  const got = await l.item();
  l.dispose();
  // Reference: each set scored against its own image, embedded on its own.
  const byId = new Map(world.map((r) => [r.id, r]));
  const refLosses: number[] = [];
  for (const { example } of batch) {
    const loss = noGrad(() => {
      const img = model.encodeImage(worldPixels([byId.get(example.image)!], 32), 1);
      const txt = model.encodeText(tok.tokenize(example.choices, { contextLength: t }), example.choices.length);
      const out = choiceLoss(img.embeds, txt.embeds, [example.choices.length], [example.answer], model.param('logit_scale'));
      for (const x of [img.pooled, img.embeds, txt.pooled, txt.embeds]) x.dispose();
      return out;
    });
    refLosses.push(await loss.item());
    loss.dispose();
  }
  const want = refLosses.reduce((s, x) => s + x, 0) / refLosses.length;
  assert.ok(Math.abs(got - want) <= 1e-4 * Math.max(1, want), `batch claim loss ${got} vs per-image reference ${want}`);
  // A shifted table (each set meeting the next image) gives another loss: the check can fail.
  const wrong = trainer.accumulate(table, items.map((it) => ({ ...it, image: (it.image + 1) % b.images.length })));
  assert.ok(Math.abs((await wrong.item()) - want) > 1e-3, 'mismatched images change the loss');
  wrong.dispose();
  trainer.dispose();
  lora.dispose();
  table.dispose();
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'nothing leaks');
});

test('a few steps of each recipe lower its own loss on a small fixed batch', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const tok = loadClipTokenizer(MODEL);
  const { records, world } = worldData(16);
  const t = model.config.text.maxPositions;
  for (const recipe of ['nast', 'negbench'] as const) {
    const b = new ExampleBatcher(readExamples(records, recipe, 'test'), 8, { step: 0, epoch: 0, cursor: 0, seed: 2 });
    const table = await imageTable(model, world, b.images);
    const items: TrainItem[] = b.next().map(({ image, example }) => ({
      image, caption: tok.tokenize([example.caption], { contextLength: t }), choices: tok.tokenize(example.choices, { contextLength: t }),
      choiceCount: example.choices.length, answer: example.answer,
    }));
    const lora = attachLora(model, { rank: 8, alpha: 16, seed: 0 });
    const trainer = new Trainer(model, lora, { lambda: 0.5, lr: 3e-3, weightDecay: 0, warmupSteps: 1, totalSteps: 20, layerScales: null, scaleMode: 'update' });
    const losses: number[] = [];
    for (let s = 0; s < 12; s++) {
      const l = trainer.accumulate(table, items);
      trainer.apply();
      losses.push(await l.item());
      l.dispose();
    }
    assert.ok(losses[11] < losses[0] - 0.2, `${recipe}: loss ${losses[0].toFixed(3)} -> ${losses[11].toFixed(3)}`);
    trainer.dispose();
    lora.dispose();
    table.dispose();
  }
  model.dispose();
});

test.run();
