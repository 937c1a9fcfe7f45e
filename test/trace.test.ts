import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { fixtureJson } from './helpers/fixtures.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { tracePair, TraceInputError } from '../src/nast/trace.js';

interface TraceRef {
  pairs: { caption: string; foil: string; ids: number[]; foil_ids: number[]; s_corr: number; s_foil: number; patched: number[][] }[];
}
const traceRef = await fixtureJson<TraceRef>('clip/trace_reference.json');
const clipRef = await fixtureJson<{ pixels: number[]; pixels_shape: number[] }>('clip/reference.json');

function padded(ids: number[]): Int32Array {
  const out = new Int32Array(77);
  out.set(ids);
  return out;
}

test('batched causal tracing equals one PyTorch forward pass per (layer, position), both polarities', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const per = clipRef.pixels.length / clipRef.pixels_shape[0];
  const img = model.encodeImage(Float32Array.from(clipRef.pixels.slice(0, per)), 1);
  for (const pair of traceRef.pairs) {
    const r = await tracePair(model, img.embeds, padded(pair.ids), padded(pair.foil_ids));
    assert.equal(r.ids, pair.ids);
    const scale = Math.max(Math.abs(pair.s_corr), Math.abs(pair.s_foil));
    assert.ok(Math.abs(r.sCorr - pair.s_corr) <= 1e-4 * scale, `${pair.caption}: S_corr ${r.sCorr} vs ${pair.s_corr}`);
    assert.ok(Math.abs(r.sFoil - pair.s_foil) <= 1e-4 * scale, `${pair.caption}: S_foil ${r.sFoil} vs ${pair.s_foil}`);
    assert.is(r.patched.length, pair.patched.length);
    r.patched.forEach((row, l) => row.forEach((s, p) =>
      assert.ok(Math.abs(s - pair.patched[l][p]) <= 1e-4 * scale, `${pair.caption}: S_${l},${p} ${s} vs ${pair.patched[l][p]}`)));
  }
  img.pooled.dispose();
  img.embeds.dispose();
  model.dispose();
  assert.is(ctx.pool.liveBytes, live, 'tracing frees every tensor');
});

test('pairs of different token lengths are refused with the reason', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const img = model.encodeImage(Float32Array.from(clipRef.pixels.slice(0, 3 * 32 * 32)), 1);
  try {
    await tracePair(model, img.embeds, padded([49406, 997, 49407]), padded([49406, 997, 533, 49407]));
    assert.unreachable('traced unequal lengths');
  } catch (e) {
    assert.ok(e instanceof TraceInputError);
    assert.match((e as Error).message, /different lengths \(3 vs 4 tokens\)/);
  }
  img.pooled.dispose();
  img.embeds.dispose();
  model.dispose();
});

test.run();
