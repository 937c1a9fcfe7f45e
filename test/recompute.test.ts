import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertRel } from './helpers/check.js';
import { fixtureBytes, fixtureText } from './helpers/fixtures.js';
import { loraStepInputs } from './helpers/lora-inputs.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { backward, scope, type GpuContext } from '../src/engine/index.js';
import { ClipModel, recomputePays } from '../src/models/clip.js';
import type { ClipConfig } from '../src/models/clip-config.js';
import { hostWeights, initClipWeights } from '../src/models/clip-init.js';
import { attachLora, type LoraSet } from '../src/models/lora.js';
import { loadLoraFromBytes } from '../src/models/peft.js';
import { clipLoss } from '../src/nast/losses.js';

const { ids: IDS, texts: N_TEXTS, pixels: PIXELS, images: N_IMG } = await loraStepInputs();

/** Loss, LoRA gradients and the step's peak of live GPU bytes above what was live before. */
async function lossAndGrads(ctx: GpuContext, model: ClipModel, set: LoraSet, lossOf: () => ReturnType<typeof clipLoss>) {
  const live = ctx.pool.liveBytes;
  ctx.pool.resetPeak();
  const loss = lossOf();
  backward(loss);
  const peak = ctx.pool.peakBytes - live;
  const value = await loss.item();
  loss.dispose();
  const grads: Float32Array[] = [];
  for (const m of set.modules) for (const t of [m.branch.a, m.branch.b]) {
    grads.push(await t.grad!.toArray() as Float32Array);
    t.grad!.dispose();
    t.grad = null;
  }
  assert.is(ctx.pool.liveBytes, live, `recompute=${model.recompute}: ${ctx.pool.liveBytes - live} bytes leaked`);
  return { value, grads, peak };
}

test('recompute: a PEFT adapter\'s CLIP loss and LoRA gradients equal the plain graph\'s (1e-6 relative), text and image towers', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const set = loadLoraFromBytes(model, await fixtureText('lora/peft-adapter/adapter_config.json'), await fixtureBytes('lora/peft-adapter/adapter_model.safetensors'));
  const lossOf = () => scope(ctx, () => clipLoss(model.encodeImage(PIXELS, N_IMG).embeds, model.encodeText(IDS, N_TEXTS).embeds, model.param('logit_scale')));
  model.recompute = false;
  const plain = await lossAndGrads(ctx, model, set, lossOf);
  model.recompute = true;
  const again = await lossAndGrads(ctx, model, set, lossOf);
  assertRel('loss', [again.value], [plain.value], 1e-6);
  plain.grads.forEach((g, i) => assertRel(`LoRA gradient ${i}`, again.grads[i], g, 1e-6));
  set.dispose();
  model.dispose();
});

test('recompute lowers the peak of a deeper text tower\'s LoRA step; train.js turns it on by default from width 512', async () => {
  const ctx = await gpu();
  const cfg: ClipConfig = {
    text: { hiddenSize: 64, intermediateSize: 256, layers: 8, heads: 2, layerNormEps: 1e-5, activation: 'quick_gelu', vocabSize: 99, maxPositions: 40, eosTokenId: 98 },
    vision: { hiddenSize: 32, intermediateSize: 64, layers: 1, heads: 2, layerNormEps: 1e-5, activation: 'quick_gelu', imageSize: 16, patchSize: 8, channels: 3 },
    projectionDim: 32,
    logitScaleInit: Math.log(1 / 0.07),
  };
  const model = await ClipModel.load(ctx, cfg, hostWeights(initClipWeights(cfg, 3)));
  const set = attachLora(model, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'fc1'], seed: 1 });
  const n = 48;
  const ids = new Int32Array(n * 40);
  for (let i = 0; i < n; i++) for (let p = 0; p < 40; p++) ids[i * 40 + p] = p === 39 ? 98 : 1 + ((i * 31 + p * 7) % 96);
  const lossOf = () => scope(ctx, () => {
    const e = model.encodeText(ids, n).embeds;
    return clipLoss(e, e, model.param('logit_scale'));
  });
  model.recompute = false;
  const plain = await lossAndGrads(ctx, model, set, lossOf);
  model.recompute = true;
  const again = await lossAndGrads(ctx, model, set, lossOf);
  assertRel('loss', [again.value], [plain.value], 1e-6);
  assert.ok(again.peak < 0.5 * plain.peak, `peak ${again.peak} bytes with recompute, ${plain.peak} without`);
  set.dispose();
  model.dispose();
  assert.not.ok(recomputePays(cfg));
  assert.ok(recomputePays({ ...cfg, text: { ...cfg.text, hiddenSize: 512 } }));
});

test.run();
