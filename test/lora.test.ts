import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { gpu } from './helpers/gpu.js';
import { assertClose, assertRel, gradCheck } from './helpers/check.js';
import { nd, randNd, type Nd } from './helpers/ref.js';
import { AdamW, backward, noGrad, scope, type GpuContext, type Tensor } from '../src/engine/index.js';
import { Linear, foldsLora } from '../src/models/layers.js';
import { loadClip } from '../src/models/load-node.js';
import type { ClipModel } from '../src/models/clip.js';
import {
  attachLora, loraInitA, loraModuleName, LORA_TARGETS, PEFT_PREFIX, type LoraSet,
} from '../src/models/lora.js';
import { AdapterError, loadLoraFromBytes, parseAdapterConfig } from '../src/models/peft.js';
import { loadLora, saveLora } from '../src/models/peft-node.js';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../src/models/safetensors.js';
import { clipLoss } from '../src/nast/losses.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const CLIP_REF = join(ROOT, 'test', 'fixtures', 'clip', 'reference.json');
const FIX = join(ROOT, 'test', 'fixtures', 'lora');
const PEFT_DIR = join(FIX, 'peft-adapter');

interface LoraReference {
  rank: number;
  alpha: number;
  targets: string[];
  ids: number[][];
  extra_pixels: number[];
  loss: number;
  logits_per_image: number[];
  text_embeds: number[];
  image_embeds: number[];
  base_text_embeds: number[];
  grads: Record<string, number[]>;
}
const ref = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8')) as LoraReference;
const clipRef = JSON.parse(readFileSync(CLIP_REF, 'utf8')) as { pixels: number[]; pixels_shape: number[] };
const IDS = Int32Array.from(ref.ids.flat());
const N_TEXT = ref.ids.length;
const PIXELS = Float32Array.from([...clipRef.pixels, ...ref.extra_pixels]);
const N_IMG = clipRef.pixels_shape[0] + 1;

function assertSame(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && got[i] !== want[i]) assert.unreachable(`${what}: [${i}] ${got[i]} !== ${want[i]}`);
  }
}

/** Text and image embeddings (and pooled text) read back, tensors freed. */
async function embeds(model: ClipModel): Promise<{ text: Float32Array; pooled: Float32Array; image: Float32Array }> {
  // Inference: without noGrad the trainable LoRA tensors would record a graph nobody frees.
  const { t, i } = noGrad(() => ({ t: model.encodeText(IDS, N_TEXT), i: model.encodeImage(PIXELS, N_IMG) }));
  const out = {
    text: (await t.embeds.toArray()) as Float32Array,
    pooled: (await t.pooled.toArray()) as Float32Array,
    image: (await i.embeds.toArray()) as Float32Array,
  };
  for (const x of [t.embeds, t.pooled, i.embeds, i.pooled]) x.dispose();
  return out;
}

async function expectAdapterError(p: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AdapterError, `expected an AdapterError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const re of patterns) assert.match((e as Error).message, re, `message: ${(e as Error).message}`);
    return;
  }
  assert.unreachable(`no error (expected ${patterns.join(' ')})`);
}

// ---------------------------------------------------------------------------------------------
// The LoRA linear

function refLoraLinear(x: Nd, w: Nd, bias: Nd, a: Nd, b: Nd, scale: number, act: 'none' | 'quick_gelu'): Nd {
  const [outF, inF] = w.shape;
  const r = a.shape[0];
  const rows = x.data.length / inF;
  const y = nd([...x.shape.slice(0, -1), outF]);
  const down = new Float64Array(r);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < r; k++) {
      let s = 0;
      for (let j = 0; j < inF; j++) s += x.data[i * inF + j] * a.data[k * inF + j];
      down[k] = s;
    }
    for (let o = 0; o < outF; o++) {
      let s = bias.data[o];
      for (let j = 0; j < inF; j++) s += x.data[i * inF + j] * w.data[o * inF + j];
      let u = 0;
      for (let k = 0; k < r; k++) u += b.data[o * r + k] * down[k];
      const z = s + scale * u;
      y.data[i * outF + o] = act === 'none' ? z : z / (1 + Math.exp(-1.702 * z));
    }
  }
  return y;
}

for (const act of ['none', 'quick_gelu'] as const) {
  test(`LoRA linear (${act}): forward and grads of x, A, B match float64 finite differences; base frozen`, async () => {
    const ctx = await gpu();
    const [inF, outF, r, scale] = [7, 9, 3, 1.75];
    const inputs = [randNd([2, 5, inF], 1), randNd([outF, inF], 2), randNd([outF], 3), randNd([r, inF], 4), randNd([outF, r], 5)];
    let weight: Tensor | null = null;
    await gradCheck(
      ctx, `lora linear ${act}`,
      (x, w, bias, a, b) => {
        const lin = new Linear(w, bias);
        lin.lora = { a, b, scale };
        weight = w;
        return lin.forward(x, act);
      },
      (x, w, bias, a, b) => refLoraLinear(x, w, bias, a, b, scale, act),
      inputs,
      { constant: [1, 2], rtol: 1e-5, atol: 1e-5 },
    );
    assert.ok(weight !== null && (weight as Tensor).grad === null, 'the frozen base weight got no gradient');
  });
}

// ---------------------------------------------------------------------------------------------
// attachLora

test('attachLora: keys, shapes, deterministic Kaiming-uniform A, zero B, groups by layer', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const set = attachLora(model, { seed: 3 });
  const keys = set.keys();
  assert.is(keys.length, 2 * 4);
  assert.is(keys[0], 'base_model.model.text_model.encoder.layers.0.self_attn.q_proj');
  assert.is(keys[7], 'base_model.model.text_model.encoder.layers.1.self_attn.out_proj');
  assert.equal(set.spec, { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'out_proj'], towers: ['text'], layers: null, useRslora: false });
  const q = set.get('text_model.encoder.layers.1.self_attn.q_proj');
  assert.is(q.linear, model.textLayers[1].q);
  assert.is(model.textLayers[1].q.lora, q.branch);
  assert.is(model.textLayers[1].fc1.lora, null, 'fc1 not targeted by default');
  assert.is(model.visionLayers[0].q.lora, null, 'vision not targeted by default');
  assert.equal([...q.branch.a.shape], [8, 16]);
  assert.equal([...q.branch.b.shape], [16, 8]);
  assert.is(q.branch.scale, 2);
  assert.ok(q.branch.a.requiresGrad && q.branch.b.requiresGrad);
  assert.ok(!q.linear.weight.requiresGrad && !q.linear.bias!.requiresGrad, 'base stays frozen');
  const a = (await q.branch.a.toArray()) as Float32Array;
  assertSame('A is loraInitA(seed, module)', a, loraInitA(3, q.module, 8, 16));
  const bound = 1 / Math.sqrt(16);
  assert.ok(a.every((v) => Math.abs(v) <= bound), 'A within the Kaiming-uniform bound');
  assert.ok(Math.max(...a) > 0.8 * bound && Math.min(...a) < -0.8 * bound, 'A spans the bound');
  assert.ok((await q.branch.b.toArray()).every((v) => v === 0), 'B starts at zero');
  assert.not.equal([...loraInitA(4, q.module, 8, 16)], [...a], 'another seed gives another A');
  assert.not.equal([...loraInitA(3, 'text_model.encoder.layers.0.self_attn.q_proj', 8, 16)], [...a], 'another module gives another A');

  const groups = set.paramGroupsByLayer();
  assert.equal(groups.map((g) => [g.name, g.layer, g.tower, g.params.length]), [['text.layer0', 0, 'text', 8], ['text.layer1', 1, 'text', 8]]);
  assert.is(groups[1].params[0], q.branch.a);
  assert.is(set.parameters().length, 16);
  assert.throws(() => attachLora(model), /already has a LoRA branch/);
  set.dispose();
  assert.is(model.textLayers[1].q.lora, null);
  assert.throws(() => set.parameters(), /disposed/);

  const wide = attachLora(model, { towers: ['vision', 'text'], targets: ['fc2', 'q_proj'], layers: [1], rank: 2, alpha: 3 });
  assert.equal(wide.keys(), [
    'base_model.model.text_model.encoder.layers.1.self_attn.q_proj',
    'base_model.model.text_model.encoder.layers.1.mlp.fc2',
    'base_model.model.vision_model.encoder.layers.1.self_attn.q_proj',
    'base_model.model.vision_model.encoder.layers.1.mlp.fc2',
  ]);
  const fc2 = wide.get('base_model.model.vision_model.encoder.layers.1.mlp.fc2');
  assert.equal([...fc2.branch.a.shape], [2, 48]);
  assert.equal([...fc2.branch.b.shape], [24, 2]);
  assert.is(fc2.branch.scale, 1.5);
  assert.equal(wide.paramGroupsByLayer().map((g) => g.name), ['text.layer1', 'vision.layer1']);
  wide.dispose();
  assert.throws(() => attachLora(model, { layers: [2] }), /layers contains 2, but the text encoder has 2 layers/);
  assert.throws(() => attachLora(model, { rank: 0 }), /rank must be a positive integer/);
  assert.throws(() => attachLora(model, { targets: ['c_attn' as never] }), /unknown target "c_attn"/);
  model.dispose();
});

test('with B = 0 the adapted model computes exactly what the base model does', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const base = await embeds(model);
  assertRel('base text embeds vs reference', base.text, ref.base_text_embeds, 1e-4);
  const set = attachLora(model, { towers: ['text', 'vision'], targets: [...LORA_TARGETS], seed: 11 });
  const withLora = await embeds(model);
  assertSame('text embeds', withLora.text, base.text);
  assertSame('text pooled', withLora.pooled, base.pooled);
  assertSame('image embeds', withLora.image, base.image);
  set.dispose();
  model.dispose();
});

test('detach takes the adapters off, attach puts them back', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const base = await embeds(model);
  const set = await loadLora(model, PEFT_DIR);
  const adapted = await embeds(model);
  set.detach();
  assert.not.ok(set.attached);
  assertSame('detached = base', (await embeds(model)).text, base.text);
  set.attach();
  assertSame('re-attached = adapted', (await embeds(model)).text, adapted.text);
  set.dispose();
  model.dispose();
});

// ---------------------------------------------------------------------------------------------
// PyTorch reference

for (const loraMerge of ['never', 'always'] as const) test(`the PyTorch-written PEFT adapter loads; embeddings, CLIP loss and LoRA gradients match float64 (branch ${loraMerge === 'always' ? 'folded into the weight' : 'kept'})`, async () => {
  const ctx = await gpu();
  await ctx.withTuning({ loraMerge }, () => peftMatchesFloat64(ctx));
});

async function peftMatchesFloat64(ctx: GpuContext): Promise<void> {
  const live = ctx.pool.liveBytes;
  const model = await loadClip(ctx, MODEL);
  const set = await loadLora(model, PEFT_DIR);
  assert.equal(set.spec, { rank: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'out_proj'], towers: ['text'], layers: null, useRslora: false });
  assert.is(set.keys().length, Object.keys(ref.grads).length / 2);
  const { loss, text, image } = scope(ctx, () => {
    const t = model.encodeText(IDS, N_TEXT);
    const i = model.encodeImage(PIXELS, N_IMG);
    return { loss: clipLoss(i.embeds, t.embeds, model.param('logit_scale')), text: t.embeds, image: i.embeds };
  });
  // Measured on lavapipe: 2e-7 (embeddings), 3e-7 (loss), 2e-6 (gradients), relative.
  assertRel('text embeds with adapter', await text.toArray(), ref.text_embeds, 1e-5);
  assertRel('image embeds', await image.toArray(), ref.image_embeds, 1e-5);
  assertClose('loss', [await loss.item()], [ref.loss], 1e-5, 1e-6);
  backward(loss);
  for (const m of set.modules) {
    assertRel(`grad ${m.key}.lora_A.weight`, await m.branch.a.grad!.toArray(), ref.grads[`${m.key}.lora_A.weight`], 1e-4);
    assertRel(`grad ${m.key}.lora_B.weight`, await m.branch.b.grad!.toArray(), ref.grads[`${m.key}.lora_B.weight`], 1e-4);
  }
  for (const [k, p] of model.params) assert.is(p.grad, null, `frozen ${k} got no gradient`);
  for (const t of [loss, text, image]) t.dispose();
  set.dispose();
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'nothing leaked');
}

test('folding the branch into the weight: the rule, and the same outputs and LoRA gradients as the branch in fewer dispatches', async () => {
  const ctx = await gpu();
  const t = (shape: number[], dtype: 'f32' | 'f16' = 'f32') => ({ shape, dtype }) as unknown as Tensor;
  const branch = (r: number, inF: number) => ({ a: t([r, inF]), b: t([1, r]), scale: 1 });
  // out * in < 6 r (in + out): tiny-world's 64-wide projections fold at r 8, ViT-B's 512-wide ones keep the branch.
  assert.ok(foldsLora('auto', t([64, 64]), branch(8, 64)));
  assert.ok(foldsLora('auto', t([256, 64]), branch(16, 64)));
  assert.not.ok(foldsLora('auto', t([512, 512]), branch(16, 512)));
  assert.not.ok(foldsLora('auto', t([2048, 512]), branch(16, 512)));
  assert.not.ok(foldsLora('always', t([64, 64], 'f16'), branch(8, 64)), 'an f16 weight is never folded');
  assert.not.ok(foldsLora('never', t([64, 64]), branch(8, 64)));
  // A LoRA step's outputs and gradients with PEFT's trained (non-zero) B, both ways.
  const model = await loadClip(ctx, MODEL);
  const set = await loadLora(model, PEFT_DIR);
  const run = async (loraMerge: 'never' | 'always') => ctx.withTuning({ loraMerge }, async () => {
    const d0 = ctx.dispatches;
    const { loss, text } = scope(ctx, () => {
      const tx = model.encodeText(IDS, N_TEXT);
      const im = model.encodeImage(PIXELS, N_IMG);
      return { loss: clipLoss(im.embeds, tx.embeds, model.param('logit_scale')), text: tx.embeds };
    });
    backward(loss);
    const dispatches = ctx.dispatches - d0;
    const out = { text: await text.toArray(), loss: await loss.item(), grads: await Promise.all(set.modules.flatMap((m) => [m.branch.a, m.branch.b]).map((p) => p.grad!.toArray())), dispatches };
    for (const p of set.modules.flatMap((m) => [m.branch.a, m.branch.b])) { p.grad!.dispose(); p.grad = null; }
    loss.dispose();
    text.dispose();
    return out;
  });
  const kept = await run('never');
  const folded = await run('always');
  assertRel('text embeds', folded.text, kept.text, 1e-5);
  assertClose('loss', [folded.loss], [kept.loss], 1e-5, 1e-6);
  kept.grads.forEach((g, i) => assertRel(`LoRA gradient ${i}`, folded.grads[i], g, 1e-4));
  assert.ok(folded.dispatches < kept.dispatches, `folded ${folded.dispatches} dispatches, branch ${kept.dispatches}`);
  set.dispose();
  model.dispose();
});

test('the adapter-name key variant (.lora_A.default.weight) loads the same adapter', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const src = parseSafetensors(readFileSync(join(PEFT_DIR, 'adapter_model.safetensors')));
  const renamed: Record<string, TensorToWrite> = {};
  for (const k of src.keys()) renamed[k.replace(/\.weight$/, '.default.weight')] = { dtype: 'F32', shape: [...src.shape(k)], data: src.read(k) };
  const set = loadLoraFromBytes(model, readFileSync(join(PEFT_DIR, 'adapter_config.json'), 'utf8'), serializeSafetensors(renamed));
  assertRel('text embeds with adapter', (await embeds(model)).text, ref.text_embeds, 1e-4);
  set.dispose();
  model.dispose();
});

// ---------------------------------------------------------------------------------------------
// Save, load, merge

test('a saved adapter has PEFT key names and config fields and round-trips into a fresh model', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadClip(ctx, MODEL);
  const set = attachLora(model, { rank: 3, alpha: 6, towers: ['text', 'vision'], targets: ['q_proj', 'fc1', 'out_proj'], layers: [1], seed: 9 });
  // One AdamW step so B is nonzero (and the tensors live in the optimizer's arena).
  const opt = new AdamW(ctx, set.paramGroupsByLayer(), { lr: 1e-2 });
  const loss = scope(ctx, () => {
    const t = model.encodeText(IDS, N_TEXT);
    const i = model.encodeImage(PIXELS, N_IMG);
    return clipLoss(i.embeds, t.embeds, model.param('logit_scale'));
  });
  backward(loss);
  opt.step();
  loss.dispose();
  const trained = await embeds(model);
  for (const m of set.modules) assert.ok((await m.branch.b.toArray()).some((v) => v !== 0), `${m.key}: B moved off zero`);

  const dir = mkdtempSync(join(tmpdir(), 'lora-save-'));
  await saveLora(dir, set, { baseModel: 'tiny-hf' });
  assert.equal(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors'], 'no temp files left');
  const saved = parseSafetensors(readFileSync(join(dir, 'adapter_model.safetensors')));
  const expectedKeys: string[] = [];
  for (const tower of ['text', 'vision'] as const) {
    for (const target of ['q_proj', 'out_proj', 'fc1'] as const) {
      for (const ab of ['A', 'B']) expectedKeys.push(`${PEFT_PREFIX}${loraModuleName(tower, 1, target)}.lora_${ab}.weight`);
    }
  }
  assert.equal(saved.keys().sort(), expectedKeys.sort());
  assert.ok(saved.keys().includes('base_model.model.vision_model.encoder.layers.1.mlp.fc1.lora_B.weight'));
  assert.equal(saved.shape('base_model.model.text_model.encoder.layers.1.mlp.fc1.lora_A.weight'), [3, 16]);
  assert.equal(saved.shape('base_model.model.text_model.encoder.layers.1.mlp.fc1.lora_B.weight'), [40, 3]);
  assert.ok(saved.keys().every((k) => saved.info(k).dtype === 'F32'));
  assert.equal(saved.metadata, { format: 'pt' });
  const configText = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
  const config = JSON.parse(configText) as Record<string, unknown>;
  const peftConfig = JSON.parse(readFileSync(join(PEFT_DIR, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(Object.keys(config), Object.keys(peftConfig), 'the same fields, in the same (sorted) order, as the PEFT-style fixture');
  assert.equal(config, {
    ...peftConfig, base_model_name_or_path: 'tiny-hf', r: 3, lora_alpha: 6, target_modules: ['q_proj', 'out_proj', 'fc1'],
    layers_to_transform: [1], layers_pattern: 'layers',
  });
  assert.match(configText, /"lora_dropout": 0\.0,/);
  assert.is(config.task_type, null);
  assert.is(config.peft_type, 'LORA');

  const fresh = await loadClip(ctx, MODEL);
  const back = await loadLora(fresh, dir);
  assert.equal(back.spec, set.spec);
  assert.equal(back.keys(), set.keys());
  for (const m of set.modules) {
    const n = back.get(m.key);
    assertSame(`${m.key} A`, await n.branch.a.toArray(), await m.branch.a.toArray());
    assertSame(`${m.key} B`, await n.branch.b.toArray(), await m.branch.b.toArray());
  }
  const reloaded = await embeds(fresh);
  assertSame('text embeds after reload', reloaded.text, trained.text);
  assertSame('image embeds after reload', reloaded.image, trained.image);

  // Saving over an existing adapter replaces it atomically.
  await saveLora(dir, back, { baseModel: 'again' });
  assert.is(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).base_model_name_or_path, 'again');
  assert.equal(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  rmSync(dir, { recursive: true });

  opt.dispose();
  set.dispose();
  back.dispose();
  model.dispose();
  fresh.dispose();
  assert.is(ctx.pool.liveBytes, live, 'nothing leaked');
});

test('merge() folds B A into the base weights: same outputs without the branch', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadClip(ctx, MODEL);
  const set = await loadLora(model, PEFT_DIR);
  const adapted = await embeds(model);
  const q = model.textLayers[0].q;
  const before = (await q.weight.toArray()) as Float32Array;
  const m = set.get('text_model.encoder.layers.0.self_attn.q_proj');
  const a = (await m.branch.a.toArray()) as Float32Array;
  const b = (await m.branch.b.toArray()) as Float32Array;
  const scale = m.branch.scale;
  set.merge();
  assert.ok(set.disposed);
  for (const l of model.textLayers) for (const lin of [l.q, l.k, l.v, l.out]) assert.is(lin.lora, null);
  // W += scale * B A, checked on one weight on the host.
  const [r, inF, outF] = [4, 16, 16];
  const want = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * inF + j];
      want[o * inF + j] = before[o * inF + j] + scale * s;
    }
  }
  assertClose('merged q_proj weight', await q.weight.toArray(), want, 1e-6, 1e-6);
  assert.is(model.param('text_model.encoder.layers.0.self_attn.q_proj.weight'), q.weight, 'merged in place');
  const merged = await embeds(model);
  assertRel('merged text embeds', merged.text, adapted.text, 1e-5);
  assertRel('merged text embeds vs reference', merged.text, ref.text_embeds, 1e-4);
  assertSame('image tower untouched', merged.image, adapted.image);
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'nothing leaked');
});

// ---------------------------------------------------------------------------------------------
// Bad adapters

function fixtureTensors(): Record<string, TensorToWrite> {
  const src = parseSafetensors(readFileSync(join(PEFT_DIR, 'adapter_model.safetensors')));
  const out: Record<string, TensorToWrite> = {};
  for (const k of src.keys()) out[k] = { dtype: 'F32', shape: [...src.shape(k)], data: src.read(k).slice() };
  return out;
}

function fixtureConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(PEFT_DIR, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
}

function writeAdapter(root: string, name: string, tensors: Record<string, TensorToWrite> | null, config: Record<string, unknown> | null): string {
  const dir = join(root, name);
  mkdirSync(dir);
  if (tensors) writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors));
  if (config) writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  return dir;
}

test('bad adapter folders fail with errors naming the file and key, attaching nothing', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadClip(ctx, MODEL);
  const modelBytes = ctx.pool.liveBytes;
  const root = mkdtempSync(join(tmpdir(), 'lora-bad-'));
  const Q0 = 'base_model.model.text_model.encoder.layers.0.self_attn.q_proj';

  await expectAdapterError(loadLora(model, join(root, 'nope')), /nope: no such adapter folder/);

  const noConfig = writeAdapter(root, 'no-config', fixtureTensors(), null);
  await expectAdapterError(loadLora(model, noConfig), /no-config\/adapter_config\.json: missing/);

  const noWeights = writeAdapter(root, 'no-weights', null, fixtureConfig());
  await expectAdapterError(loadLora(model, noWeights), /no-weights\/adapter_model\.safetensors: missing/);
  copyFileSync(join(PEFT_DIR, 'adapter_config.json'), join(noWeights, 'adapter_model.bin'));
  await expectAdapterError(loadLora(model, noWeights), /adapter_model\.safetensors: missing; found .*adapter_model\.bin/);

  const t99 = fixtureTensors();
  t99['base_model.model.text_model.encoder.layers.99.self_attn.q_proj.lora_A.weight'] = { dtype: 'F32', shape: [4, 16], data: new Float32Array(64) };
  t99['base_model.model.text_model.encoder.layers.99.self_attn.q_proj.lora_B.weight'] = { dtype: 'F32', shape: [16, 4], data: new Float32Array(64) };
  await expectAdapterError(loadLora(model, writeAdapter(root, 'layer99', t99, fixtureConfig())),
    /layer99\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.99\.self_attn\.q_proj\.lora_A\.weight: layer 99 does not exist: the model's text encoder has 2 layers/);

  const shape = fixtureTensors();
  shape[`${Q0}.lora_A.weight`] = { dtype: 'F32', shape: [4, 15], data: new Float32Array(60) };
  await expectAdapterError(loadLora(model, writeAdapter(root, 'shape', shape, fixtureConfig())),
    /shape\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: shape \[4, 15\] does not fit .* \(expected \[4, 16\]/);

  await expectAdapterError(loadLora(model, writeAdapter(root, 'rank', fixtureTensors(), { ...fixtureConfig(), r: 8 })),
    /rank\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: rank 4 disagrees with r=8 in .*rank\/adapter_config\.json/);

  const noB = fixtureTensors();
  delete noB[`${Q0}.lora_B.weight`];
  await expectAdapterError(loadLora(model, writeAdapter(root, 'no-b', noB, fixtureConfig())),
    /no-b\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.0\.self_attn\.q_proj\.lora_B\.weight: missing/);

  const noModule = fixtureTensors();
  delete noModule[`${Q0}.lora_A.weight`];
  delete noModule[`${Q0}.lora_B.weight`];
  await expectAdapterError(loadLora(model, writeAdapter(root, 'no-module', noModule, fixtureConfig())),
    /no-module\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: missing: .* targets text_model\.encoder\.layers\.0\.self_attn\.q_proj/);

  const extra = fixtureTensors();
  extra['base_model.model.text_projection.lora_A.weight'] = { dtype: 'F32', shape: [4, 16], data: new Float32Array(64) };
  await expectAdapterError(loadLora(model, writeAdapter(root, 'extra', extra, fixtureConfig())),
    /extra\/adapter_model\.safetensors: base_model\.model\.text_projection\.lora_A\.weight: unexpected key/);

  await expectAdapterError(loadLora(model, writeAdapter(root, 'untargeted', fixtureTensors(), { ...fixtureConfig(), target_modules: ['q_proj', 'v_proj'] })),
    /untargeted\/adapter_model\.safetensors: base_model\.model\.text_model\.encoder\.layers\.0\.self_attn\.k_proj\.lora_A\.weight: module .* is not among .*target_modules/);

  await expectAdapterError(loadLora(model, writeAdapter(root, 'prefix', fixtureTensors(), { ...fixtureConfig(), peft_type: 'PREFIX_TUNING' })),
    /prefix\/adapter_config\.json: peft_type: is "PREFIX_TUNING"/);
  await expectAdapterError(loadLora(model, writeAdapter(root, 'bias', fixtureTensors(), { ...fixtureConfig(), bias: 'all' })),
    /bias\/adapter_config\.json: bias: is "all"/);
  const badJson = writeAdapter(root, 'json', fixtureTensors(), null);
  writeFileSync(join(badJson, 'adapter_config.json'), '{"r": 4,');
  await expectAdapterError(loadLora(model, badJson), /json\/adapter_config\.json: is not valid JSON/);

  // Nothing was attached by any failed load, and nothing was left allocated.
  for (const l of model.textLayers) for (const lin of [l.q, l.k, l.v, l.out]) assert.is(lin.lora, null);
  assert.is(ctx.pool.liveBytes, modelBytes, 'failed loads allocated nothing that stayed');
  rmSync(root, { recursive: true });
  model.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test('adapter_config parsing: regex target_modules, layers_to_transform, rsLoRA', async () => {
  const base = fixtureConfig();
  const c = parseAdapterConfig({ ...base, target_modules: 'text_model.*\\.(q_proj|v_proj)', layers_to_transform: 1, use_rslora: true });
  assert.ok(c.targetModules instanceof RegExp);
  assert.equal(c.layers, [1]);
  assert.ok(c.useRslora);
  assert.throws(() => parseAdapterConfig({ ...base, r: 0 }), /adapter_config\.json: r: expected a positive integer/);
  assert.throws(() => parseAdapterConfig({ ...base, use_dora: true }), /use_dora: is true/);
  assert.throws(() => parseAdapterConfig({ ...base, modules_to_save: ['text_projection'] }), /modules_to_save/);
  assert.throws(() => parseAdapterConfig({ ...base, rank_pattern: { q_proj: 8 } }), /rank_pattern/);
  // PEFT 0.21 writes more fields (adapter_config.json of interop/torch's adapters): their defaults
  // read, and any that change what the adapter computes is refused by name.
  const peft021 = {
    ...base, alora_invocation_tokens: null, arrow_config: null, corda_config: null, ensure_weight_tying: false, eva_config: null,
    exclude_modules: null, lora_bias: false, loftq_config: {}, layer_replication: null, megatron_config: null, peft_version: '0.21.0',
    qalora_group_size: 16, target_parameters: null, trainable_token_indices: null, use_qalora: false,
  };
  assert.is(parseAdapterConfig(peft021).rank, base.r);
  assert.throws(() => parseAdapterConfig({ ...peft021, lora_bias: true }), /lora_bias: is true/);
  assert.throws(() => parseAdapterConfig({ ...peft021, use_qalora: true }), /use_qalora: is true/);
  assert.throws(() => parseAdapterConfig({ ...peft021, exclude_modules: ['fc1'] }), /exclude_modules: is \["fc1"\]/);
  assert.throws(() => parseAdapterConfig({ ...peft021, trainable_token_indices: [5] }), /trainable_token_indices/);

  // A regex config with layers_to_transform loads only the modules it names; rsLoRA scales by alpha / sqrt(r).
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const all = fixtureTensors();
  const sub: Record<string, TensorToWrite> = {};
  for (const [k, v] of Object.entries(all)) if (/layers\.1\.self_attn\.(q|v)_proj/.test(k)) sub[k] = v;
  const cfg = { ...base, target_modules: 'text_model.*\\.(q_proj|v_proj)', layers_to_transform: [1], use_rslora: true };
  const set = loadLoraFromBytes(model, JSON.stringify(cfg), serializeSafetensors(sub));
  assert.equal(set.keys(), [`${PEFT_PREFIX}text_model.encoder.layers.1.self_attn.q_proj`, `${PEFT_PREFIX}text_model.encoder.layers.1.self_attn.v_proj`]);
  assert.is(set.modules[0].branch.scale, 8 / 2);
  set.dispose();
  // The same regex but a file lacking v_proj of layer 1: missing.
  delete sub['base_model.model.text_model.encoder.layers.1.self_attn.v_proj.lora_A.weight'];
  delete sub['base_model.model.text_model.encoder.layers.1.self_attn.v_proj.lora_B.weight'];
  assert.throws(() => loadLoraFromBytes(model, JSON.stringify(cfg), serializeSafetensors(sub)), /layers\.1\.self_attn\.v_proj\.lora_A\.weight: missing/);
  model.dispose();
});

// ---------------------------------------------------------------------------------------------
// Memory

async function trainStep(ctx: GpuContext, model: ClipModel, set: LoraSet): Promise<void> {
  const loss = scope(ctx, () => {
    const t = model.encodeText(IDS, N_TEXT);
    const i = model.encodeImage(PIXELS, N_IMG);
    return clipLoss(i.embeds, t.embeds, model.param('logit_scale'));
  });
  backward(loss);
  assert.ok(set.parameters().every((p) => p.grad !== null), 'every LoRA parameter got a gradient');
  loss.dispose();
}

test('no GPU memory leaks across attach / forward / backward / dispose', async () => {
  const ctx = await gpu();
  const model = await loadClip(ctx, MODEL);
  const live = ctx.pool.liveBytes;
  for (let round = 0; round < 3; round++) {
    const set = attachLora(model, { towers: ['text', 'vision'], targets: [...LORA_TARGETS], seed: round });
    await trainStep(ctx, model, set);
    set.dispose();
    assert.is(ctx.pool.liveBytes, live, `round ${round}: live bytes back to the model's own`);
  }
  const set = attachLora(model);
  set.detach();
  set.dispose();
  assert.is(ctx.pool.liveBytes, live, 'detach then dispose frees too');
  model.dispose();
});

test.run();
