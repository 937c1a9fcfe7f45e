import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertRel } from './helpers/check.js';
import { fixtureJson, repoBytes } from './helpers/fixtures.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { ClipTokenizer } from '../src/models/tokenizer/index.js';
import { ModelInputError } from '../src/models/errors.js';
import type { ClipModel } from '../src/models/clip.js';
import { poolPositions } from '../src/models/text-rows.js';
import type { Tensor } from '../src/engine/index.js';

interface Record_ {
  text_states: number[][];
  text_pooled: number[];
  text_embeds: number[];
  image_pooled: number[];
  image_embeds: number[];
  logits_per_image: number[];
}
interface Reference {
  captions: string[];
  ids: number[][];
  pixels: number[];
  pixels_shape: number[];
  f32: Record_;
  f16: Record_;
}
const ref = await fixtureJson<Reference>('clip/reference.json');

async function run(model: ClipModel, rec: Record_, tol: number, label: string): Promise<void> {
  const n = ref.ids.length;
  const ids = Int32Array.from(ref.ids.flat());
  const states: Tensor[] = [];
  const text = model.encodeText(ids, n, { hook: (_i, s) => { states.push(s.alias().keep()); } });
  assert.is(states.length, model.config.text.layers + 1, `${label}: hook saw every residual index`);
  for (let l = 0; l < states.length; l++) {
    assertRel(`${label} text hidden state ${l}`, await states[l].toArray(), rec.text_states[l], tol);
    states[l].dispose();
  }
  assertRel(`${label} text pooled`, await text.pooled.toArray(), rec.text_pooled, tol);
  assertRel(`${label} text embeds`, await text.embeds.toArray(), rec.text_embeds, tol);
  const img = model.encodeImage(Float32Array.from(ref.pixels), ref.pixels_shape[0]);
  assertRel(`${label} image pooled`, await img.pooled.toArray(), rec.image_pooled, tol);
  assertRel(`${label} image embeds`, await img.embeds.toArray(), rec.image_embeds, tol);
  const logits = model.logitsPerImage(img.embeds, text.embeds);
  assert.equal([...logits.shape], [ref.pixels_shape[0], n]);
  assertRel(`${label} logits per image`, await logits.toArray(), rec.logits_per_image, tol);
  for (const t of [text.pooled, text.embeds, img.pooled, img.embeds, logits]) t.dispose();
}

test('tiny HF CLIP (f32) matches the PyTorch reference within 1e-4 relative', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  await run(model, ref.f32, 1e-4, 'hf f32');
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'every tensor freed');
});

test('tiny OpenAI-layout CLIP in f16 safetensors matches the f16-weight reference within 1e-4 relative', async () => {
  // The reference used the same f16-rounded weights, so widening them to f32 on load loses nothing.
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-openai-f16.safetensors', { config: 'clip/tiny-hf/config.json' });
  await run(model, ref.f16, 1e-4, 'openai f16');
  model.dispose();
});

test('the captions tokenise to the reference ids', async () => {
  const tok = ClipTokenizer.fromOpenAIGzip(await repoBytes('models/openai-bpe/bpe_simple_vocab_16e6.txt.gz'));
  const ids = tok.tokenize(ref.captions);
  assert.equal([...ids], ref.ids.flat());
});

test('pooling: arg-max id (legacy eos 2) or first EOS id', () => {
  const ids = Int32Array.from([49406, 5, 49407, 0, 49406, 49407, 0, 0]);
  assert.equal([...poolPositions(ids, 2, null)], [2, 5]);
  assert.equal([...poolPositions(Int32Array.from([1, 2, 9, 2]), 1, 2)], [1]);
  assert.throws(() => poolPositions(Int32Array.from([1, 3]), 1, 2), /no end-of-text token/);
});

test('bad inputs fail before any GPU work, naming the problem', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  assert.throws(() => model.encodeText(Int32Array.from([49406, 49408]), 1), (e: Error) => e instanceof ModelInputError && /outside the vocabulary/.test(e.message));
  assert.throws(() => model.encodeText(new Int32Array(78), 1), /exceeds max_position_embeddings 77/);
  assert.throws(() => model.encodeImage(new Float32Array(10), 1), /not 1 images of 3x32x32/);
  model.dispose();
  try {
    await loadFixtureClip(ctx, 'clip/nope');
    assert.unreachable("loaded a missing folder");
  } catch (e) {
    assert.match((e as Error).message, /clip\/nope/);
  }
});

test.run();
