/**
 * The packed text pass training uses (ClipModel.encodeTextPacked): batches of different lengths
 * through the text tower together equal each batch through encodeText alone, outputs and LoRA
 * gradients, with and without recomputation; and the pass costs fewer dispatches than two.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertRel } from './helpers/check.js';
import { fixtureBytes, fixtureText } from './helpers/fixtures.js';
import { loraStepInputs } from './helpers/lora-inputs.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { add, backward, indexSelect, noGrad, scope, sum, tensor, type Tensor } from '../src/engine/index.js';
import type { ClipModel } from '../src/models/clip.js';
import { loadLoraFromBytes } from '../src/models/peft.js';
import { cutAtPool } from '../src/models/text-rows.js';
import { clipLoss } from '../src/nast/losses.js';

const inputs = await loraStepInputs();

/** Two batches of the fixture's texts: the first rows cut at their end token, the rest at full context length. */
function batches(model: ClipModel) {
  const t = inputs.ids.length / inputs.texts;
  const nA = Math.ceil(inputs.texts / 2);
  const a = cutAtPool(inputs.ids.slice(0, nA * t), nA, model.config.text.eosTokenId);
  const b = { ids: inputs.ids.slice(nA * t), n: inputs.texts - nA };
  assert.ok(a.seqLen < t && b.n > 0, `the fixture gives two lengths (${a.seqLen}, ${t})`);
  return [{ ids: a.ids, n: nA }, b];
}

async function lossAndGrads(params: Tensor[], lossOf: () => Tensor) {
  const loss = lossOf();
  backward(loss);
  const value = await loss.item();
  loss.dispose();
  const grads: Float32Array[] = [];
  for (const p of params) {
    grads.push(await p.grad!.toArray() as Float32Array);
    p.grad!.dispose();
    p.grad = null;
  }
  return { value, grads };
}

test('packed text batches equal each batch alone: embeddings, pooled states, loss and LoRA gradients (1e-6 relative)', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const set = loadLoraFromBytes(model, await fixtureText('lora/peft-adapter/adapter_config.json'), await fixtureBytes('lora/peft-adapter/adapter_model.safetensors'));
  const params = set.modules.flatMap((m) => [m.branch.a, m.branch.b]);
  const parts = batches(model);
  const img = noGrad(() => model.encodeImage(inputs.pixels, inputs.images).embeds);
  const imgs = parts.map((p, i) => imageRows(img, i, p.n));
  const live = ctx.pool.liveBytes;
  const packed = noGrad(() => model.encodeTextPacked(parts));
  for (let i = 0; i < parts.length; i++) {
    const alone = noGrad(() => model.encodeText(parts[i].ids, parts[i].n));
    assertRel(`batch ${i} embeds`, await packed[i].embeds.toArray(), await alone.embeds.toArray(), 1e-6);
    assertRel(`batch ${i} pooled`, await packed[i].pooled.toArray(), await alone.pooled.toArray(), 1e-6);
    for (const t of [alone.embeds, alone.pooled, packed[i].embeds, packed[i].pooled]) t.dispose();
  }
  const scale = model.param('logit_scale');
  const twoLosses = (e: Tensor[]) => add(clipLoss(imgs[0], e[0], scale), clipLoss(imgs[1], e[1], scale));
  for (const recompute of [false, true]) {
    model.recompute = recompute;
    const separate = await lossAndGrads(params, () => scope(ctx, () => twoLosses(parts.map((p) => model.encodeText(p.ids, p.n).embeds))));
    const together = await lossAndGrads(params, () => scope(ctx, () => twoLosses(model.encodeTextPacked(parts).map((o) => o.embeds))));
    assertRel(`loss (recompute ${recompute})`, [together.value], [separate.value], 1e-6);
    separate.grads.forEach((g, i) => assertRel(`LoRA gradient ${i} (recompute ${recompute})`, together.grads[i], g, 1e-6));
  }
  assert.is(ctx.pool.liveBytes, live, 'every tensor made after the image embeddings freed');
  for (const t of [img, ...imgs]) t.dispose();
  set.dispose();
  model.dispose();
});

/** Image rows for batch i: one per text, cycling through the images from image i. */
function imageRows(img: Tensor, i: number, n: number): Tensor {
  const rows = Int32Array.from({ length: n }, (_, r) => (r + i) % img.shape[0]);
  return noGrad(() => scope(img.ctx, () => indexSelect(img, 0, tensor(img.ctx, rows, [n], 'i32'))));
}

test('one packed pass dispatches fewer kernels than a pass per batch', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const set = loadLoraFromBytes(model, await fixtureText('lora/peft-adapter/adapter_config.json'), await fixtureBytes('lora/peft-adapter/adapter_model.safetensors'));
  const parts = batches(model);
  const count = (fn: () => void) => {
    const before = ctx.dispatches;
    fn();
    return ctx.dispatches - before;
  };
  const total = (es: Tensor[]) => es.slice(1).reduce((a, e) => add(a, sum(e)), sum(es[0]));
  const separate = count(() => scope(ctx, () => backward(total(parts.map((p) => model.encodeText(p.ids, p.n).embeds)))));
  const together = count(() => scope(ctx, () => backward(total(model.encodeTextPacked(parts).map((o) => o.embeds)))));
  for (const m of set.modules) for (const t of [m.branch.a, m.branch.b]) { t.grad?.dispose(); t.grad = null; }
  const layers = model.config.text.layers;
  assert.ok(together < separate - 10 * layers, `packed ${together} dispatches vs separate ${separate} (${layers} blocks)`);
  set.dispose();
  model.dispose();
});

test('packed batches: errors name the batch', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const parts = batches(model);
  assert.throws(() => model.encodeTextPacked([]), /encodeTextPacked: no batches/);
  const bad = { ids: parts[1].ids.slice(), n: parts[1].n };
  bad.ids[1] = 1e6;
  assert.throws(() => model.encodeTextPacked([parts[0], bad]), /batch 1: encodeText: token id 1000000 \(text 0, position 1\) is outside the vocabulary/);
  assert.throws(() => model.encodeTextPacked([{ ids: new Int32Array(7), n: 2 }]), /batch 0: encodeText: 7 ids do not form 2 rows/);
  model.dispose();
});

test.run();
