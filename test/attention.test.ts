import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, rng, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { tensor, type Tensor } from '../src/engine/tensor.js';
import type { GpuContext } from '../src/engine/context.js';
import type { TuningOverride } from '../src/engine/tuning.js';

interface Cfg {
  causal?: boolean;
  /** [batch * Tk] of 0/1, or undefined. */
  mask?: number[];
  scale?: number;
}

/**
 * Float64 reference: plain softmax attention with the score matrix materialised. Rows whose
 * every key is masked output zeros.
 */
function refAttention(q: Nd, k: Nd, v: Nd, cfg: Cfg): Nd {
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const scale = cfg.scale ?? 1 / Math.sqrt(D);
  const out = nd([B, H, Tq, D]);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qb = ((b * H + h) * Tq) * D;
      const kb = ((b * H + h) * Tk) * D;
      for (let i = 0; i < Tq; i++) {
        let m = -Infinity;
        for (let j = 0; j < Tk; j++) {
          const ok = (!cfg.mask || cfg.mask[b * Tk + j] !== 0) && (!cfg.causal || j <= i);
          if (!ok) {
            s[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let c = 0; c < D; c++) dot += q.data[qb + i * D + c] * k.data[kb + j * D + c];
          s[j] = dot * scale;
          m = Math.max(m, s[j]);
        }
        if (m === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
          sum += s[j];
        }
        for (let j = 0; j < Tk; j++) {
          const p = s[j] / sum;
          if (p === 0) continue;
          for (let c = 0; c < D; c++) out.data[qb + i * D + c] += p * v.data[kb + j * D + c];
        }
      }
    }
  }
  return out;
}

/** A 0/1 mask with at least one attended key per batch unless `allOffBatch` names one to pad fully. */
function randMask(B: number, Tk: number, seed: number, allOffBatch = -1): number[] {
  const r = rng(seed);
  const m = Array.from({ length: B * Tk }, () => (r() < 0.35 ? 0 : 1));
  for (let b = 0; b < B; b++) {
    if (b === allOffBatch) for (let j = 0; j < Tk; j++) m[b * Tk + j] = 0;
    else if (!m.slice(b * Tk, (b + 1) * Tk).some((x) => x)) m[b * Tk] = 1;
  }
  return m;
}

function inputs(B: number, H: number, Tq: number, Tk: number, D: number, seed: number): Nd[] {
  // Spread of +-1.5 makes softmax rows far from uniform, so errors in the max/sum bookkeeping show.
  return [randNd([B, H, Tq, D], seed, -1.5, 1.5), randNd([B, H, Tk, D], seed + 1, -1.5, 1.5), randNd([B, H, Tk, D], seed + 2, -1, 1)];
}

function maskTensor(ctx: GpuContext, cfg: Cfg, B: number, Tk: number, dtype: 'i32' | 'u32' | 'f32' = 'i32'): Tensor | undefined {
  return cfg.mask ? tensor(ctx, cfg.mask, [B, Tk], dtype) : undefined;
}

/**
 * Every kernel family runs on this (CPU) adapter. The tiled GPU variant is unrolled over the
 * head dim, which lavapipe compiles slowly at larger tiers (about 20 s for head dim 32), so it
 * is checked at the smallest tier, head dim <= 16; tiers differ only in constants.
 */
interface Family {
  name: string;
  tuning: TuningOverride;
  maxD: number;
}

const FAMILIES: Family[] = [
  { name: 'register+subgroups', tuning: { attention: 'register', attentionSubgroups: true }, maxD: 128 },
  { name: 'register', tuning: { attention: 'register', attentionSubgroups: false }, maxD: 128 },
  { name: 'tiled', tuning: { attention: 'tiled' }, maxD: 16 },
];

// Forward: f32 kernel vs float64 reference. Inputs are rounded to f32 first, so the only error
// is f32 accumulation over head_dim and Tk: |err| <= 2e-5 + 1e-4 |ref| holds with margin up to
// head_dim 128 and Tk 77.
const FWD_RTOL = 1e-4;
const FWD_ATOL = 2e-5;

async function checkForward(ctx: GpuContext, fam: Family, dims: number[], cfg: Cfg, maskDtype: 'i32' | 'u32' | 'f32' = 'i32'): Promise<void> {
  const [B, H, Tq, Tk, D] = dims;
  const [q, k, v] = inputs(B, H, Tq, Tk, D, 100 + Tq + D).map(f32);
  const live = ctx.pool.liveBytes;
  const [qt, kt, vt] = [q, k, v].map((x) => toGpu(ctx, x));
  const mt = maskTensor(ctx, cfg, B, Tk, maskDtype);
  const y = ops.attention(qt, kt, vt, { causal: cfg.causal, scale: cfg.scale, keyPaddingMask: mt });
  const what = `attention.${fam.name} forward ${JSON.stringify(dims)} causal=${!!cfg.causal} mask=${cfg.mask ? maskDtype : 'none'}`;
  assert.equal([...y.shape], [B, H, Tq, D], `${what}: shape`);
  assertClose(what, await y.toArray(), refAttention(q, k, v, cfg).data, FWD_RTOL, FWD_ATOL);
  for (const t of [qt, kt, vt, y, mt]) t?.dispose();
  assert.is(ctx.pool.liveBytes, live, `${what}: leak`);
}

// Gradients: the GPU's f32 gradient vs central differences of the float64 reference (eps 1e-6,
// so the numeric side is accurate to ~1e-9). The f32 error of the recomputed p and dS terms
// stays below 1e-4 absolute at these sizes.
const GRAD = { rtol: FWD_RTOL, atol: FWD_ATOL, gradRtol: 1e-3, gradAtol: 1e-4 };

async function checkGrad(ctx: GpuContext, fam: Family, dims: number[], cfg: Cfg): Promise<void> {
  const [B, H, Tq, Tk, D] = dims;
  const mt = maskTensor(ctx, cfg, B, Tk);
  const name = `attention.${fam.name} ${JSON.stringify(dims)} causal=${!!cfg.causal} mask=${!!cfg.mask}`;
  await gradCheck(ctx, name,
    (q, k, v) => ops.attention(q, k, v, { causal: cfg.causal, scale: cfg.scale, keyPaddingMask: mt }),
    (q, k, v) => refAttention(q, k, v, cfg),
    inputs(B, H, Tq, Tk, D, 7 + Tq * 3 + D), GRAD);
  mt?.dispose();
}

/** Runs a test body with the family's kernels forced on the shared context. */
async function onFamily(fam: Family, fn: (ctx: GpuContext) => Promise<void>): Promise<void> {
  const ctx = await gpu();
  await ctx.withTuning(fam.tuning, () => fn(ctx));
}

for (const fam of FAMILIES) {
  const fits = (dims: number[]) => dims[4] <= fam.maxD;

  test(`${fam.name}: forward matches the float64 reference on odd shapes`, () => onFamily(fam, async (ctx) => {
    // [batch, heads, Tq, Tk, head_dim]
    // 40 x 77 spans several workgroup row blocks and (tiled) several key tiles.
    const shapes = [[1, 1, 1, 1, 1], [2, 3, 7, 7, 7], [2, 1, 3, 7, 1], [1, 2, 7, 3, 5], [1, 2, 40, 77, 16],
      [1, 2, 13, 9, 32], [1, 3, 77, 77, 64], [1, 1, 9, 13, 128]].filter(fits);
    for (const dims of shapes) {
      const [B, , Tq, Tk] = dims;
      await checkForward(ctx, fam, dims, {});
      await checkForward(ctx, fam, dims, { mask: randMask(B, Tk, Tq + Tk) });
      await checkForward(ctx, fam, dims, { causal: true, scale: 0.7 });
      await checkForward(ctx, fam, dims, { causal: true, mask: randMask(B, Tk, Tq * Tk) });
    }
    // Mask dtypes: u32 and f32 masks mean the same as i32.
    await checkForward(ctx, fam, [2, 2, 5, 6, 8], { mask: randMask(2, 6, 3) }, 'u32');
    await checkForward(ctx, fam, [2, 2, 5, 6, 8], { mask: randMask(2, 6, 3) }, 'f32');
  }));

  test(`${fam.name}: gradients of q, k, v against finite differences`, () => onFamily(fam, async (ctx) => {
    for (const dims of [[2, 3, 7, 7, 7], [1, 1, 3, 3, 1], [1, 2, 1, 5, 4]]) {
      const [B, , Tq, Tk] = dims;
      await checkGrad(ctx, fam, dims, {});
      await checkGrad(ctx, fam, dims, { causal: true });
      await checkGrad(ctx, fam, dims, { mask: randMask(B, Tk, 5 + Tq) });
      await checkGrad(ctx, fam, dims, { causal: true, mask: randMask(B, Tk, 9 + Tk) });
    }
    // Tq != Tk with vec4 rows; 3 heads; head dim 64 where the family allows it.
    const d = Math.min(64, fam.maxD);
    await checkGrad(ctx, fam, [1, 3, 5, 9, d], { mask: randMask(1, 9, 4) });
    await checkGrad(ctx, fam, [2, 1, 9, 5, d], { causal: true });
    // Streams longer than a row block and a key tile, on both sides.
    await checkGrad(ctx, fam, [1, 1, 5, 40, 4], { mask: randMask(1, 40, 6) });
    await checkGrad(ctx, fam, [1, 1, 40, 40, 4], { causal: true });
  }));

  test(`${fam.name}: a fully masked query row outputs zeros and gets zero gradients`, () => onFamily(fam, async (ctx) => {
    // Batch 1 is fully padded; in batch 0, causal rows 0 and 1 see only padded keys 0 and 1.
    const [B, H, T, D] = [2, 2, 5, 4];
    const mask = [0, 0, 1, 1, 1, 0, 0, 0, 0, 0];
    await checkGrad(ctx, fam, [B, H, T, T, D], { causal: true, mask });
    const [q, k, v] = inputs(B, H, T, T, D, 3).map((x) => toGpu(ctx, f32(x), true));
    const mt = tensor(ctx, mask, [B, T], 'i32');
    const y = ops.attention(q, k, v, { causal: true, keyPaddingMask: mt });
    const out = await y.toArray();
    const dy = toGpu(ctx, randNd([B, H, T, D], 5));
    ops.backward(y, { grad: dy });
    const dq = await q.grad!.toArray();
    const dk = await k.grad!.toArray();
    for (const x of [...out, ...dq, ...dk, ...(await v.grad!.toArray())]) assert.ok(Number.isFinite(x), 'finite');
    const row = (bb: number, h: number, i: number) => ((bb * H + h) * T + i) * D;
    for (let h = 0; h < H; h++) {
      for (const [bb, i] of [[0, 0], [0, 1], ...[0, 1, 2, 3, 4].map((r) => [1, r])]) {
        for (let c = 0; c < D; c++) {
          assert.is(out[row(bb, h, i) + c], 0, `out[${bb},${h},${i}]`);
          assert.is(dq[row(bb, h, i) + c], 0, `dq[${bb},${h},${i}]`);
        }
      }
    }
    for (const t of [q, k, v, mt, y, dy]) t.dispose();
  }));
}

/** [A, B, C, D] -> [A, C, B, D] in float64 (the swap between [batch, heads, T, D] and [batch, T, heads, D]). */
function swap12(x: Nd): Nd {
  const [A, B, C, D] = x.shape;
  const out = nd([A, C, B, D]);
  for (let a = 0; a < A; a++) {
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        for (let d = 0; d < D; d++) out.data[((a * C + c) * B + b) * D + d] = x.data[((a * B + b) * C + c) * D + d];
      }
    }
  }
  return out;
}

type Segments = { batch: number; length: number }[];

/** Packed [tokens, H, D] reference: every sequence on its own through refAttention. */
function refPacked(q: Nd, k: Nd, v: Nd, segments: Segments, cfg: Cfg): Nd {
  const [, H, D] = q.shape;
  const out = nd(q.shape);
  let row = 0;
  for (const s of segments) {
    for (let b = 0; b < s.batch; b++) {
      // One sequence as [1, T, H, D] -> [1, H, T, D].
      const take = (x: Nd) => swap12(nd([1, s.length, H, D], x.data.subarray(row * H * D, (row + s.length) * H * D)));
      const y = swap12(refAttention(take(q), take(k), take(v), cfg));
      out.data.set(y.data, row * H * D);
      row += s.length;
    }
  }
  return out;
}

for (const fam of FAMILIES) {
  test(`${fam.name}: token-major layout (bthd) matches the reference, forward and gradients`, () => onFamily(fam, async (ctx) => {
    for (const [B, H, Tq, Tk, D] of [[2, 3, 7, 7, 8], [1, 2, 5, 9, 5], [2, 2, 40, 40, 4]].filter((d) => d[4] <= fam.maxD)) {
      for (const cfg of [{}, { causal: true }, { mask: randMask(B, Tk, Tq) }] as Cfg[]) {
        const name = `attention.${fam.name} bthd ${JSON.stringify([B, H, Tq, Tk, D])} ${JSON.stringify(cfg)}`;
        const mt = maskTensor(ctx, cfg, B, Tk);
        const [q, k, v] = inputs(B, H, Tq, Tk, D, 31 + Tq).map(swap12);
        await gradCheck(ctx, name,
          (qt, kt, vt) => ops.attention(qt, kt, vt, { ...cfg, keyPaddingMask: mt, layout: 'bthd' }),
          (qa, ka, va) => swap12(refAttention(swap12(qa), swap12(ka), swap12(va), cfg)),
          [q, k, v], GRAD);
        mt?.dispose();
      }
    }
  }));

  test(`${fam.name}: packed varlen attention matches each sequence alone, forward and gradients`, () => onFamily(fam, async (ctx) => {
    const D = Math.min(8, fam.maxD);
    const cases: [number, Segments][] = [
      [2, [{ batch: 2, length: 5 }, { batch: 3, length: 7 }, { batch: 1, length: 1 }]],
      [1, [{ batch: 1, length: 40 }, { batch: 2, length: 3 }]],
      [3, [{ batch: 4, length: 6 }]],
    ];
    for (const [H, segments] of cases) {
      const n = segments.reduce((a, s) => a + s.batch * s.length, 0);
      for (const cfg of [{ causal: true }, { scale: 0.6 }] as Cfg[]) {
        const name = `packedAttention.${fam.name} H=${H} ${JSON.stringify(segments)} ${JSON.stringify(cfg)}`;
        const xs = [randNd([n, H, D], 40 + n, -1.5, 1.5), randNd([n, H, D], 41 + n, -1.5, 1.5), randNd([n, H, D], 42 + n)];
        await gradCheck(ctx, name,
          (q, k, v) => ops.packedAttention(q, k, v, segments, cfg),
          (q, k, v) => refPacked(q, k, v, segments, cfg),
          xs, GRAD);
      }
    }
  }));
}

test('packed attention: errors name the op, the segments and the shapes', async () => {
  const ctx = await gpu();
  const mk = (shape: number[]) => tensor(ctx, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  const q = mk([10, 2, 4]);
  const other = mk([10, 2, 8]);
  assert.throws(() => ops.packedAttention(q, q, q, [{ batch: 2, length: 4 }]), /packedAttention: segments hold 8 tokens but q has 10/);
  assert.throws(() => ops.packedAttention(q, q, q, [{ batch: 0, length: 4 }, { batch: 1, length: 10 }]), /packedAttention: segments\[0\] = \{batch: 0, length: 4\}/);
  assert.throws(() => ops.packedAttention(q, other, q, [{ batch: 1, length: 10 }]), /packedAttention: expected q, k and v alike.*k \[10, 2, 8\]/);
  const q4 = mk([1, 2, 3, 4]);
  assert.throws(() => ops.attention(q4, q4, q4, { layout: 'bhdt' as 'bthd' }), /attention: layout must be 'bhtd' or 'bthd', got bhdt/);
  const k2 = mk([1, 2, 2, 4]);
  assert.throws(() => ops.attention(q4, k2, k2, { layout: 'bthd' }), /q \[batch, Tq, heads, head_dim\]/);
  for (const t of [q, other, q4, k2]) t.dispose();
});

test('auto picks a kernel family that matches the forced ones', async () => {
  const ctx = await gpu();
  const [q, k, v] = inputs(1, 2, 6, 6, 8, 1).map((x) => toGpu(ctx, f32(x)));
  const a = ops.attention(q, k, v, { causal: true });
  const r = ctx.withTuning({ attention: ctx.info.cpuBacked ? 'register' : 'tiled', attentionSubgroups: true }, () => ops.attention(q, k, v, { causal: true }));
  assert.equal(Array.from(await a.toArray()), Array.from(await r.toArray()));
  for (const t of [q, k, v, a, r]) t.dispose();
});

test('batch * heads above the per-dimension workgroup limit folds into z', async () => {
  const ctx = await gpu();
  const [B, H, Tq, Tk, D] = [257, 256, 1, 2, 1]; // 65792 (b, h) pairs > 65535
  const [q, k, v] = inputs(B, H, Tq, Tk, D, 11).map((x) => f32(x));
  const [qt, kt, vt] = [q, k, v].map((x) => toGpu(ctx, x, true));
  const y = ops.attention(qt, kt, vt);
  assertClose('folded forward', await y.toArray(), refAttention(q, k, v, {}).data, FWD_RTOL, FWD_ATOL);
  const g = tensor(ctx, new Float32Array(B * H).fill(1), [B, H, Tq, D]);
  ops.backward(y, { grad: g });
  // With one query row and dO = 1, dV over a (b, h)'s keys sums to sum_j p_j = 1: every pair was written.
  const dv = await vt.grad!.toArray();
  for (let i = 0; i < B * H; i++) {
    if (Math.abs(dv[2 * i] + dv[2 * i + 1] - 1) > 1e-5) assert.unreachable(`dV of pair ${i} sums to ${dv[2 * i] + dv[2 * i + 1]}`);
  }
  for (const t of [qt, kt, vt, y, g]) t.dispose();
});

test('errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const mk = (shape: number[], dtype: 'f32' | 'i32' = 'f32') => tensor(ctx, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
  const q = mk([2, 3, 4, 8]);
  const k = mk([2, 3, 5, 8]);
  const v = mk([2, 3, 5, 8]);
  const made = [q, k, v];
  const bad = (t: Tensor) => (made.push(t), t);
  assert.throws(() => ops.attention(bad(mk([3, 4, 8])), k, v), /attention: expected a rank-4 tensor, got \[3, 4, 8\]/);
  assert.throws(() => ops.attention(q, bad(mk([2, 3, 5, 7])), v), /attention: .*q \[2, 3, 4, 8\], k \[2, 3, 5, 7\], v \[2, 3, 5, 8\]/);
  assert.throws(() => ops.attention(q, k, bad(mk([2, 3, 6, 8]))), /attention: .*k \[2, 3, 5, 8\], v \[2, 3, 6, 8\]/);
  assert.throws(() => ops.attention(q, bad(mk([1, 3, 5, 8])), bad(mk([1, 3, 5, 8]))), /attention: .*q \[2, 3, 4, 8\], k \[1, 3, 5, 8\]/);
  const big = [bad(mk([1, 1, 2, 129])), bad(mk([1, 1, 2, 129]))];
  assert.throws(() => ops.attention(big[0], big[1], big[1]), /attention: head_dim 129 above the supported maximum 128/);
  assert.throws(() => ops.attention(q, k, v, { keyPaddingMask: bad(mk([2, 4], 'i32')) }),
    /attention: keyPaddingMask \[2, 4\] must be \[batch, Tk\] = \[2, 5\]/);
  assert.throws(() => ops.attention(q, k, v, { keyPaddingMask: bad(mk([10], 'i32')) }), /attention: keyPaddingMask \[10\]/);
  assert.throws(() => ops.attention(bad(mk([2, 3, 4, 8], 'i32')), k, v), /attention: expected f32, got i32 tensor \[2, 3, 4, 8\]/);
  for (const t of made) t.dispose();
});

test.run();
