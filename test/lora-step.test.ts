import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, assertRel } from './helpers/check.js';
import { fixtureBytes, fixtureJson, fixtureText } from './helpers/fixtures.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { AdamW, backward, scope } from '../src/engine/index.js';
import { loadLoraFromBytes } from '../src/models/peft.js';
import { clipLoss } from '../src/nast/losses.js';

interface LoraReference { ids: number[][]; extra_pixels: number[]; loss: number; grads: Record<string, number[]> }
const ref = await fixtureJson<LoraReference>('lora/reference.json');
const clipRef = await fixtureJson<{ pixels: number[]; pixels_shape: number[] }>('clip/reference.json');
const IDS = Int32Array.from(ref.ids.flat());
const PIXELS = Float32Array.from([...clipRef.pixels, ...ref.extra_pixels]);
const N_IMG = clipRef.pixels_shape[0] + 1;

test('LoRA training step: PEFT adapter, CLIP loss, gradients vs PyTorch, AdamW vs float64, loss goes down', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const set = loadLoraFromBytes(model, await fixtureText('lora/peft-adapter/adapter_config.json'), await fixtureBytes('lora/peft-adapter/adapter_model.safetensors'));
  const [lr, wd, b1, b2, eps] = [1e-3, 0.01, 0.9, 0.999, 1e-8];
  const opt = new AdamW(ctx, set.paramGroupsByLayer(), { lr, weightDecay: wd, betas: [b1, b2], eps });
  const lossOf = () => scope(ctx, () => {
    const t = model.encodeText(IDS, ref.ids.length);
    const i = model.encodeImage(PIXELS, N_IMG);
    return clipLoss(i.embeds, t.embeds, model.param('logit_scale'));
  });
  const loss0 = lossOf();
  assertClose('loss', [await loss0.item()], [ref.loss], 1e-5, 1e-6);
  backward(loss0);
  const before = new Map<string, { p: ArrayLike<number>; g: ArrayLike<number> }>();
  for (const m of set.modules) {
    for (const [ab, t] of [['A', m.branch.a], ['B', m.branch.b]] as const) {
      const g = await t.grad!.toArray();
      assertRel(`grad ${m.key}.lora_${ab}.weight`, g, ref.grads[`${m.key}.lora_${ab}.weight`], 1e-4);
      before.set(`${m.key}.${ab}`, { p: await t.toArray(), g });
    }
  }
  opt.step();
  for (const m of set.modules) {
    for (const [ab, t] of [['A', m.branch.a], ['B', m.branch.b]] as const) {
      const { p, g } = before.get(`${m.key}.${ab}`)!;
      // First AdamW step: bias-corrected moments are g and g^2.
      const want = Array.from(p, (x: number, k: number) => x * (1 - lr * wd) - (lr * g[k]) / (Math.sqrt(g[k] * g[k]) + eps));
      assertClose(`AdamW ${m.key}.lora_${ab}`, await t.toArray(), want, 1e-5, 1e-7);
    }
  }
  loss0.dispose();
  const first = ref.loss;
  let last = first;
  for (let s = 0; s < 3; s++) {
    opt.zeroGrad();
    const l = lossOf();
    last = await l.item();
    backward(l);
    opt.step();
    l.dispose();
  }
  assert.ok(last < first, `loss went from ${first} to ${last}`);
  opt.zeroGrad();
  opt.dispose();
  set.dispose();
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'nothing leaked');
});

test.run();
