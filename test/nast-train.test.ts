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
import { loraUpdateNorms, Trainer, type TrainerOptions, type TrainItem } from '../src/nast/trainer.js';
import { warmupCosine } from '../src/engine/optim/index.js';
import { updateShares } from '../src/nast/update-shares.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'clip');
const ref = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8')) as { ids: number[][]; pixels: number[]; pixels_shape: number[] };

const T = 77;
function row(ids: number[]): Int32Array {
  const r = new Int32Array(T);
  r.set(ids);
  return r;
}

/** Three examples over two images; claims of 3 and 2 options. */
function items(): TrainItem[] {
  const [a, b, c] = ref.ids.map((r) => r.filter((x, i) => i === 0 || x !== 0));
  const claims = (rows: number[][]) => { const o = new Int32Array(rows.length * T); rows.forEach((r, i) => o.set(r, i * T)); return o; };
  return [
    { image: 0, caption: row(a), choices: claims([a, b, c]), choiceCount: 3, answer: 0 },
    { image: 1, caption: row(b), choices: claims([c, b]), choiceCount: 2, answer: 1 },
  ];
}

async function setup(ctx: GpuContext): Promise<{ model: ClipModel; lora: LoraSet; images: Tensor }> {
  const model = await loadClip(ctx, join(FIX, 'tiny-hf'));
  const lora = attachLora(model, { rank: 4, alpha: 8, seed: 3 });
  // B starts at zero; give it values so both factors move from the first step.
  for (const m of lora.modules) {
    const n = m.branch.b.size;
    const init = tensor(ctx, Float32Array.from({ length: n }, (_, i) => 0.05 * Math.sin(i + m.layer)), m.branch.b.shape);
    ctx.copy(init.range('test'), m.branch.b.range('test'), init.byteSize);
    init.dispose();
  }
  const img = noGrad(() => model.encodeImage(Float32Array.from(ref.pixels), ref.pixels_shape[0]));
  img.pooled.dispose();
  return { model, lora, images: img.embeds };
}

const OPTS: TrainerOptions = { lambda: 0.5, lr: 1e-2, weightDecay: 0.01, warmupSteps: 1, totalSteps: 6, layerScales: null, scaleMode: 'update' };

async function loraValues(lora: LoraSet): Promise<Float32Array[]> {
  return Promise.all(lora.parameters().map((p) => p.toArray() as Promise<Float32Array>));
}

test('warm-up then cosine', () => {
  const s = warmupCosine({ warmup: 2, total: 10 });
  assert.is(s(0), 0.5);
  assert.is(s(1), 1);
  assert.is(s(2), 1);
  assert.ok(Math.abs(s(6) - 0.5) < 1e-12);
  assert.is(s(10), 0);
});

test('a layer with alpha = 0 keeps its LoRA weights exactly; updates follow the CTE order', async () => {
  const ctx = await gpu();
  const { model, lora, images } = await setup(ctx);
  const before = await loraValues(lora);
  const trainer = new Trainer(model, lora, { ...OPTS, layerScales: [0, 1] });
  for (let s = 0; s < 4; s++) {
    trainer.accumulate(images, items()).dispose();
    trainer.apply();
  }
  const after = await loraValues(lora);
  const params = lora.parameters();
  let moved = 0;
  lora.modules.forEach((m) => {
    const ia = params.indexOf(m.branch.a);
    const ib = params.indexOf(m.branch.b);
    for (const i of [ia, ib]) {
      const same = after[i].every((v, k) => v === before[i][k]);
      if (m.layer === 0) assert.ok(same, `${m.key}: changed although its scale is 0`);
      else if (!same) moved++;
    }
  });
  assert.ok(moved > 0, 'layer 1 adapters moved');
  const norms = await loraUpdateNorms(lora, 2);
  const shares = updateShares(norms, [0.1, 0.9]);
  assert.ok(shares.shares[1] > shares.shares[0], `update shares ${shares.shares} follow CTE`);
  trainer.dispose();
  images.dispose();
  lora.dispose();
  model.dispose();
});

test('training 2N steps equals N steps, a saved state, and N resumed steps', async () => {
  const ctx = await gpu();
  const run = async (split: boolean): Promise<Float32Array[]> => {
    let { model, lora, images } = await setup(ctx);
    let trainer = new Trainer(model, lora, { ...OPTS, layerScales: [0.3, 1] });
    for (let s = 0; s < 6; s++) {
      if (split && s === 3) {
        const state = await trainer.optimizer.state();
        const weights = await loraValues(lora);
        trainer.dispose();
        images.dispose();
        lora.dispose();
        model.dispose();
        ({ model, lora, images } = await setup(ctx));
        lora.parameters().forEach((p, i) => {
          const t = tensor(ctx, weights[i], p.shape);
          ctx.copy(t.range('test'), p.range('test'), t.byteSize);
          t.dispose();
        });
        trainer = new Trainer(model, lora, { ...OPTS, layerScales: [0.3, 1] });
        trainer.optimizer.loadState(state);
      }
      trainer.accumulate(images, items()).dispose();
      trainer.apply();
    }
    const out = await loraValues(lora);
    trainer.dispose();
    images.dispose();
    lora.dispose();
    model.dispose();
    return out;
  };
  const straight = await run(false);
  const resumed = await run(true);
  straight.forEach((w, i) => w.forEach((v, k) => assert.ok(Math.abs(v - resumed[i][k]) <= 1e-6 * Math.max(1, Math.abs(v)), `param ${i}[${k}]: ${v} vs ${resumed[i][k]}`)));
});

test('the training step leaks nothing: live GPU bytes after step 1 equal those after steps 2-6', async () => {
  const ctx = await gpu();
  const { model, lora, images } = await setup(ctx);
  const trainer = new Trainer(model, lora, { ...OPTS, layerScales: [0.3, 1] });
  const live: number[] = [];
  for (let s = 0; s < 6; s++) {
    const loss = trainer.accumulate(images, items());
    trainer.apply();
    await loss.item();
    loss.dispose();
    await ctx.sync();
    live.push(ctx.pool.liveBytes);
  }
  assert.ok(live.every((b) => b === live[0]), `live bytes per step: ${live.join(', ')}`);
  trainer.dispose();
  images.dispose();
  lora.dispose();
  model.dispose();
});

test('gradient accumulation of two halves equals one full batch', async () => {
  const ctx = await gpu();
  const grads = async (halves: boolean): Promise<Float32Array[]> => {
    const { model, lora, images } = await setup(ctx);
    const trainer = new Trainer(model, lora, { ...OPTS, lambda: 0 });
    const it = items();
    if (halves) {
      trainer.accumulate(images, [it[0]], 0.5).dispose();
      trainer.accumulate(images, [it[1]], 0.5).dispose();
    } else {
      trainer.accumulate(images, it).dispose();
    }
    const g = await Promise.all(lora.parameters().map((p) => p.grad!.toArray() as Promise<Float32Array>));
    trainer.dispose();
    images.dispose();
    lora.dispose();
    model.dispose();
    return g;
  };
  // lambda = 0: the claim loss is a per-sample mean, so halves weighted 1/2 add up to the batch.
  const full = await grads(false);
  const acc = await grads(true);
  full.forEach((g, i) => g.forEach((v, k) => assert.ok(Math.abs(v - acc[i][k]) <= 1e-5 + 1e-4 * Math.abs(v), `grad ${i}[${k}]`)));
});

test('a CLIP batch larger than the choice batch: caption-only pairs join L_CLIP, not L_claim', async () => {
  const ctx = await gpu();
  const it = items();
  const [a, , c] = ref.ids.map((r) => r.filter((x, i) => i === 0 || x !== 0));
  const extra = [{ image: 2, caption: row(c) }, { image: 3, caption: row(a) }];
  /** Gradients and loss of one accumulate call on a 4-image table (the fixture's 2 images + 2 made-up rows). */
  const run = async (lambda: number, call: (t: Trainer, table: Tensor) => Tensor): Promise<{ loss: number; grads: Float32Array[] }> => {
    const { model, lora, images } = await setup(ctx);
    const dim = images.shape[1];
    const more = tensor(ctx, Float32Array.from({ length: 2 * dim }, (_, i) => Math.cos(1.7 * i)), [2, dim]);
    const table = noGrad(() => concat([images, more], 0));
    const trainer = new Trainer(model, lora, { ...OPTS, lambda });
    const l = call(trainer, table);
    const loss = await l.item();
    l.dispose();
    const grads = await Promise.all(lora.parameters().map((p) => p.grad!.toArray() as Promise<Float32Array>));
    for (const t of [trainer, images, more, table, lora, model]) t.dispose();
    return { loss, grads };
  };
  const close = (x: Float32Array[], y: Float32Array[], what: string) =>
    x.forEach((g, i) => g.forEach((v, k) => assert.ok(Math.abs(v - y[i][k]) <= 1e-5 + 1e-4 * Math.abs(v), `${what}: grad ${i}[${k}] ${v} vs ${y[i][k]}`)));
  // lambda = 1: only L_CLIP, so two items + two caption-only pairs are four pairs.
  const split = await run(1, (t, table) => t.accumulate(table, it, 1, extra));
  const four = await run(1, (t, table) => t.accumulate(table, [...it, ...extra.map((e) => ({ ...e, choices: it[1].choices, choiceCount: 2, answer: 0 }))]));
  const two = await run(1, (t, table) => t.accumulate(table, it));
  assert.ok(Math.abs(split.loss - four.loss) < 1e-5, `L_CLIP over four pairs: ${split.loss} vs ${four.loss}`);
  assert.ok(Math.abs(split.loss - two.loss) > 1e-3, 'the caption-only pairs change L_CLIP');
  close(split.grads, four.grads, 'lambda 1');
  // lambda = 0.5: half the four-pair L_CLIP plus half the two items' L_claim.
  const mixed = await run(0.5, (t, table) => t.accumulate(table, it, 1, extra));
  const claim = await run(0, (t, table) => t.accumulate(table, it));
  assert.ok(Math.abs(mixed.loss - (0.5 * four.loss + 0.5 * claim.loss)) < 1e-5, `${mixed.loss} vs 0.5 * ${four.loss} + 0.5 * ${claim.loss}`);
  close(mixed.grads, four.grads.map((g, i) => g.map((v, k) => 0.5 * v + 0.5 * claim.grads[i][k])), 'lambda 0.5');
  // A caption-only pair of an image the items already hold would be its own negative.
  const { model, lora, images } = await setup(ctx);
  const trainer = new Trainer(model, lora, OPTS);
  assert.throws(() => trainer.accumulate(images, it, 1, [{ image: 1, caption: row(c) }]), /repeats an image/);
  const off = new Trainer(model, lora, { ...OPTS, lambda: 0 });
  assert.throws(() => off.accumulate(images, it, 1, extra), /lambda = 0/);
  for (const t of [trainer, off, images, lora, model]) t.dispose();
});

test.run();
