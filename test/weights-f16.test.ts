import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { gpu } from './helpers/gpu.js';
import { fixtureBytes, fixtureText } from './helpers/fixtures.js';
import { loraStepInputs } from './helpers/lora-inputs.js';
import { backward, inference, scope, type GpuContext, type Tensor } from '../src/engine/index.js';
import { loadClip } from '../src/models/load-node.js';
import type { ClipModel } from '../src/models/clip.js';
import { loadLoraFromBytes } from '../src/models/peft.js';
import { clipLoss } from '../src/nast/losses.js';
import { fullTextGroups } from '../src/nast/trainer.js';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

const MODEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'clip', 'tiny-hf');
const { ids: IDS, texts: N_TEXTS, pixels: PIXELS, images: N_IMG } = await loraStepInputs();

/** max |a - b| / max |b|: the error relative to the tensor's scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    e = Math.max(e, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return e / s;
}

function paramBytes(m: ClipModel): number {
  let n = 0;
  for (const t of m.params.values()) n += t.byteSize;
  return n;
}

async function step(ctx: GpuContext, model: ClipModel) {
  const set = loadLoraFromBytes(model, await fixtureText('lora/peft-adapter/adapter_config.json'), await fixtureBytes('lora/peft-adapter/adapter_model.safetensors'));
  const read = async (t: Tensor) => {
    const v = await t.toArray();
    t.dispose();
    return v;
  };
  const text = await read(inference(ctx, () => model.encodeText(IDS, N_TEXTS).embeds));
  const image = await read(inference(ctx, () => model.encodeImage(PIXELS, N_IMG).embeds));
  const loss = scope(ctx, () => clipLoss(model.encodeImage(PIXELS, N_IMG).embeds, model.encodeText(IDS, N_TEXTS).embeds, model.param('logit_scale')));
  backward(loss);
  const value = await loss.item();
  loss.dispose();
  const grads: Float32Array[] = [];
  for (const m of set.modules) for (const t of [m.branch.a, m.branch.b]) grads.push(await t.grad!.toArray() as Float32Array);
  set.dispose();
  return { text, image, value, grads };
}

test('f16 frozen weights: embeddings and a LoRA step agree with f32 within f16 rounding; the projection weights take half the memory', async () => {
  const ctx = await gpu();
  if (!ctx.hasFeature('shader-f16')) {
    // Such an adapter refuses f16 weights by name instead of failing inside a kernel.
    let err = '';
    await loadClip(ctx, MODEL, { weights: 'f16' }).catch((e: Error) => { err = e.message; });
    assert.match(err, /needs the 'shader-f16' feature/);
    return;
  }
  const live = ctx.pool.liveBytes;
  const m32 = await loadClip(ctx, MODEL, { weights: 'f32' });
  const m16 = await loadClip(ctx, MODEL, { weights: 'f16' });
  assert.is(m16.param('text_model.encoder.layers.0.self_attn.q_proj.weight').dtype, 'f16');
  assert.is(m16.param('text_model.encoder.layers.0.self_attn.q_proj.bias').dtype, 'f32');
  assert.is(m16.param('text_model.embeddings.token_embedding.weight').dtype, 'f32', 'gathered, not multiplied: stays f32');
  assert.is(m16.param('text_model.final_layer_norm.weight').dtype, 'f32');
  // A weight rounded to f16 is off by at most 2^-11 of itself; through two blocks of a few
  // products each and the projection the embeddings move by a small multiple of that.
  const a = await step(ctx, m32);
  const b = await step(ctx, m16);
  const errs = { text: relErr(b.text, a.text), image: relErr(b.image, a.image), loss: Math.abs(b.value - a.value) / Math.abs(a.value), grads: Math.max(...a.grads.map((g, i) => relErr(b.grads[i], g))) };
  process.stderr.write(`f16 weights vs f32 (relative to scale): ${JSON.stringify(errs)}\n`);
  assert.ok(errs.text < 1e-2 && errs.image < 1e-2, `embeddings: ${errs.text}, ${errs.image}`);
  assert.ok(errs.loss < 1e-3, `loss: ${errs.loss}`);
  assert.ok(errs.grads < 2e-2, `LoRA gradients: ${errs.grads}`);
  assert.ok(errs.text > 0, 'the f16 model really rounds its weights');
  const [s32, s16] = [paramBytes(m32), paramBytes(m16)];
  let proj = 0;
  for (const [k, t] of m32.params) if (m16.param(k).dtype === 'f16') proj += t.byteSize;
  assert.is(s32 - s16, proj / 2, 'the f16 weights hold half their f32 bytes');
  // What must stay f32 says so.
  assert.throws(() => fullTextGroups(m16, 0), /full-text training needs f32 weights, and text_model\.\S+ is f16/);
  m32.dispose();
  m16.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test("weights 'auto' follows the tuning: f32 on this CPU adapter unless NEGCLIP_TUNING-style overrides say f16", async () => {
  const ctx = await gpu();
  const q = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
  const auto = await loadClip(ctx, MODEL, { weights: 'auto' });
  assert.is(auto.param(q).dtype, ctx.tuning.weights);
  if (ctx.info.cpuBacked) assert.is(ctx.tuning.weights, 'f32', 'lavapipe runs f16 at a third of f32: kept off');
  auto.dispose();
  if (!ctx.hasFeature('shader-f16')) return;
  await ctx.withTuning({ weights: 'f16' }, async () => {
    const forced = await loadClip(ctx, MODEL, { weights: 'auto' });
    assert.is(forced.param(q).dtype, 'f16');
    forced.dispose();
  });
  const plain = await loadClip(ctx, MODEL);
  assert.is(plain.param(q).dtype, 'f32', 'the library default stays f32');
  plain.dispose();
});

test.run();
