import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, dispatchedKernels, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { noGrad } from '../src/engine/autograd.js';
import { scope, tensor, type Tensor } from '../src/engine/tensor.js';
import type { GpuContext } from '../src/engine/context.js';
import { BufferPool } from '../src/engine/pool.js';
import type { Activation, MatmulVariant } from '../src/engine/ops/index.js';
import type { MatmulTuning } from '../src/engine/tuning.js';
import { ACTIVATIONS } from '../src/kernels/matmul.js';

// ---- float64 reference -------------------------------------------------------------------

/** erf to ~1e-12: Taylor series near 0, asymptotic erfc in the tails. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 4) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  const x2 = x * x;
  const erfc = (Math.exp(-x2) / (ax * Math.sqrt(Math.PI))) * (1 - 1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 ** 3));
  return Math.sign(x) * (1 - erfc);
}
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const ACT: Record<Activation, (v: number) => number> = {
  none: (v) => v,
  gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  gelu_erf: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  quick_gelu: (v) => v * sigmoid(1.702 * v),
  relu: (v) => Math.max(v, 0),
};

interface RefOpts {
  transA?: boolean;
  transB?: boolean;
  activation?: Activation;
}

/** act(op(A) @ op(B) + bias) with the op's batch rules, in float64. */
function refMatmul(a: Nd, b: Nd, o: RefOpts = {}, bias?: Nd): Nd {
  const { transA = false, transB = false, activation = 'none' } = o;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  if ((transB ? bc : br) !== K) throw new Error('ref: inner dims');
  const ba = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  const batchDims = ba.length > 0 ? ba : bb;
  const batch = batchDims.reduce((p, q) => p * q, 1);
  const out = nd([...batchDims, M, N]);
  const f = ACT[activation];
  for (let z = 0; z < batch; z++) {
    const oa = ba.length > 0 ? z * M * K : 0;
    const ob = bb.length > 0 ? z * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = bias ? bias.data[n] : 0;
        for (let k = 0; k < K; k++) {
          s += a.data[oa + (transA ? k * M + m : m * K + k)] * b.data[ob + (transB ? n * K + k : k * N + n)];
        }
        out.data[z * M * N + m * N + n] = f(s);
      }
    }
  }
  return out;
}

/** Operand shapes for op(A) [M, K] and op(B) [K, N] under the transpose flags. */
function operandShapes(M: number, N: number, K: number, transA: boolean, transB: boolean): [number[], number[]] {
  return [transA ? [K, M] : [M, K], transB ? [N, K] : [K, N]];
}

// ---- variants ----------------------------------------------------------------------------

interface VariantCase {
  label: string;
  variant: MatmulVariant;
  subgroups: boolean;
  /** Forced regblock tuning; fields left out are chosen by shape. */
  tuning?: MatmulTuning;
}

const VARIANTS: VariantCase[] = [
  { label: 'regblock+subgroups', variant: 'regblock', subgroups: true },
  { label: 'regblock (no subgroups)', variant: 'regblock', subgroups: false },
  { label: 'tiled', variant: 'tiled', subgroups: false },
  { label: 'naive', variant: 'naive', subgroups: false },
];

async function withVariant(v: VariantCase, fn: (ctx: GpuContext) => Promise<void>): Promise<void> {
  const ctx = await gpu();
  await ctx.withTuning({ matmul: v.variant, matmulSubgroups: v.subgroups, ...(v.tuning ? { regblock: v.tuning } : {}) }, () => fn(ctx));
}

const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

// f32 sums of K products of values in [-1, 1]: the error grows with K, so atol scales with it.
const fwdTol = (K: number) => ({ rtol: 1e-4, atol: 2e-6 * Math.max(1, K) });

// [M, N, K]: 1-wide edges, K = 1 with N not a multiple of 4, tails past the 32-row and
// 4-column blocks, all-multiples-of-4 (vec4 path) and 129 along each axis.
const FWD_SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 7, 5], [7, 3, 1], [5, 6, 1], [33, 20, 36], [64, 8, 12], [77, 129, 7], [129, 3, 129], [7, 77, 129],
];

for (const v of VARIANTS) {
  test(`matmul ${v.label}: forward on odd shapes, every transpose`, async () => {
    await withVariant(v, async (ctx) => {
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of FWD_SHAPES) {
          const [sa, sb] = operandShapes(M, N, K, transA, transB);
          const a = f32(randNd(sa, M * 31 + K, -1, 1));
          const b = f32(randNd(sb, N * 17 + K, -1, 1));
          const ta = toGpu(ctx, a);
          const tb = toGpu(ctx, b);
          const y = noGrad(() => ops.matmul(ta, tb, { transA, transB }));
          const { rtol, atol } = fwdTol(K);
          assertClose(`${v.label} ${M}x${N}x${K} transA=${transA} transB=${transB}`, await y.toArray(),
            refMatmul(a, b, { transA, transB }).data, rtol, atol);
          for (const t of [ta, tb, y]) t.dispose();
        }
      }
    });
  });

  test(`matmul ${v.label}: gradients with transposes, batching, bias and activation`, async () => {
    await withVariant(v, async (ctx) => {
      const cases: { name: string; a: number[]; b: number[]; o: RefOpts; bias?: number }[] = [
        { name: 'NN', a: [7, 13], b: [13, 5], o: {} },
        { name: 'TN', a: [13, 7], b: [13, 5], o: { transA: true } },
        { name: 'NT + bias', a: [7, 13], b: [5, 13], o: { transB: true }, bias: 5 },
        { name: 'TT', a: [4, 3], b: [9, 4], o: { transA: true, transB: true } },
        { name: 'batched x batched', a: [2, 3, 5, 4], b: [2, 3, 4, 6], o: {} },
        { name: 'batched x batched TT', a: [3, 4, 5], b: [3, 6, 4], o: { transA: true, transB: true } },
        { name: 'batched x 2-D + bias, gelu_tanh', a: [2, 3, 9], b: [9, 7], o: { activation: 'gelu_tanh' }, bias: 7 },
        { name: 'batched x 2-D^T (linear)', a: [3, 5, 8], b: [6, 8], o: { transB: true }, bias: 6 },
        { name: 'batched^T x 2-D', a: [2, 9, 5], b: [9, 3], o: { transA: true } },
        { name: '2-D x batched', a: [5, 4], b: [3, 4, 6], o: { transB: false } },
        { name: '2-D^T x batched^T', a: [4, 5], b: [3, 6, 4], o: { transA: true, transB: true } },
        { name: 'K=1, N=6 + bias, relu', a: [5, 1], b: [1, 6], o: { activation: 'relu' }, bias: 6 },
      ];
      for (const c of cases) {
        const inputs = [randNd(c.a, 3, -1, 1), randNd(c.b, 4, -1, 1)];
        if (c.bias) inputs.push(randNd([c.bias], 5, -1, 1));
        await gradCheck(ctx, `${v.label} ${c.name}`,
          (a, b, bias) => ops.matmul(a, b, { ...c.o, bias }),
          (a, b, bias) => refMatmul(a, b, c.o, bias),
          inputs, { rtol: 1e-5, atol: 1e-5, gradRtol: 1e-3, gradAtol: 1e-4 });
      }
    });
  });
}

// ---- regblock tunings (chosen by shape on CPU adapters) -----------------------------------

// Each forced on every product, backward ones included, with the rest chosen by shape.
const TUNED: VariantCase[] = [
  { label: 'regblock swap (C^T, transposed store), 8 rows', variant: 'regblock', subgroups: true, tuning: { swap: true, rows: 8, splits: 1 } },
  { label: 'regblock 24 rows', variant: 'regblock', subgroups: true, tuning: { swap: false, rows: 24, splits: 1 } },
  { label: 'regblock split-K x3', variant: 'regblock', subgroups: true, tuning: { swap: false, splits: 3 } },
  { label: 'regblock swap + split-K x2, 8 rows, no subgroups', variant: 'regblock', subgroups: false, tuning: { swap: true, rows: 8, splits: 2 } },
];

// [M, N, K] with 1, 3, 7, 77 and 129 along each axis (tails of every block and of the 4-wide
// vectors, K slices of unequal use), and all-multiples-of-4 shapes for the vec4 paths.
const TUNED_SHAPES: [number, number, number][] = [
  [1, 77, 129], [129, 7, 77], [77, 3, 129], [3, 129, 7], [7, 1, 77], [129, 77, 3], [77, 129, 1],
  [64, 8, 132], [8, 64, 260], [36, 12, 16],
];

for (const v of TUNED) {
  test(`matmul ${v.label}: forward on odd shapes, every transpose, bias with and without an activation`, async () => {
    await withVariant(v, async (ctx) => {
      let shape = 0;
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of TUNED_SHAPES) {
          const [sa, sb] = operandShapes(M, N, K, transA, transB);
          const a = f32(randNd(sa, M * 31 + K, -1, 1));
          const b = f32(randNd(sb, N * 17 + K, -1, 1));
          const bias = f32(randNd([N], N + 5, -1, 1));
          const ta = toGpu(ctx, a);
          const tb = toGpu(ctx, b);
          const tbias = toGpu(ctx, bias);
          // 'none' takes the unrolled bias-only epilogue, an activation the looped one.
          const act = ACTIVATIONS[1 + (shape++ % (ACTIVATIONS.length - 1))];
          for (const activation of ['none', act] as Activation[]) {
            const y = noGrad(() => ops.matmul(ta, tb, { transA, transB, bias: tbias, activation }));
            const { rtol, atol } = fwdTol(K);
            assertClose(`${v.label} ${M}x${N}x${K} transA=${transA} transB=${transB} ${activation}`, await y.toArray(),
              refMatmul(a, b, { transA, transB, activation }, bias).data, rtol, atol);
            y.dispose();
          }
          for (const t of [ta, tb, tbias]) t.dispose();
        }
      }
    });
  });

  test(`matmul ${v.label}: gradients on odd shapes with transposes, batching, bias and activation`, async () => {
    await withVariant(v, async (ctx) => {
      const cases: { name: string; a: number[]; b: number[]; o: RefOpts; bias?: number }[] = [
        { name: 'NN 7x3x77 + bias, quick_gelu', a: [7, 77], b: [77, 3], o: { activation: 'quick_gelu' }, bias: 3 },
        { name: 'TN 7x9x129', a: [129, 7], b: [129, 9], o: { transA: true } },
        { name: 'NT 77x3x5 + bias, relu', a: [77, 5], b: [3, 5], o: { transB: true, activation: 'relu' }, bias: 3 },
        { name: 'TT 13x7x1 + bias', a: [1, 13], b: [7, 1], o: { transA: true, transB: true }, bias: 7 },
        { name: 'NN 1x129x7', a: [1, 7], b: [7, 129], o: {} },
        { name: 'batched x 2-D^T + bias, gelu_erf', a: [2, 9, 12], b: [8, 12], o: { transB: true, activation: 'gelu_erf' }, bias: 8 },
        { name: 'batched^T x batched TN', a: [2, 33, 4], b: [2, 33, 8], o: { transA: true } },
        { name: '2-D x batched, N = 129', a: [5, 7], b: [3, 7, 129], o: {} },
        { name: '2-D^T x batched^T + bias, gelu_tanh', a: [4, 5], b: [3, 6, 4], o: { transA: true, transB: true, activation: 'gelu_tanh' }, bias: 6 },
      ];
      for (const c of cases) {
        const inputs = [randNd(c.a, 3, -1, 1), randNd(c.b, 4, -1, 1)];
        if (c.bias) inputs.push(randNd([c.bias], 5, -1, 1));
        await gradCheck(ctx, `${v.label} ${c.name}`,
          (a, b, bias) => ops.matmul(a, b, { ...c.o, bias }),
          (a, b, bias) => refMatmul(a, b, c.o, bias),
          inputs, { rtol: 1e-5, atol: 2e-5, gradRtol: 1e-3, gradAtol: 2e-4 });
      }
    });
  });
}

test('matmul: regblock tuning by shape (swap narrow N, short row blocks, split-K for one long workgroup)', async () => {
  const ctx = await gpu();
  ctx.setTuning({ matmul: 'regblock' });
  try {
    // LoRA rank-8 forward [6336, 64] x [8, 64]^T: N = 8 would idle most lanes, so C^T is computed.
    const lora = ops.matmulPlanFor(ctx, false, true, 6336, 8, 64);
    assert.ok(lora.swap && lora.transC, 'N = 8 swaps to a transposed store');
    assert.is(lora.transA, false, 'the kernel reads op(B)^T = B as its A');
    assert.is(lora.transB, true, 'and op(A)^T = A^T as its B');
    assert.ok((lora.rows ?? 32) <= 16, `rows ${lora.rows} fit N = 8`);
    // LoRA weight gradient [8, 6336] x [6336, 64]: 8 rows, two workgroups, no split.
    const dA = ops.matmulPlanFor(ctx, true, false, 8, 64, 6336);
    assert.is(dA.swap, false);
    assert.ok((dA.rows ?? 32) <= 16, `rows ${dA.rows} fit M = 8`);
    assert.is(dA.splits, 1);
    // One workgroup over a long K: split in 4 slices of a multiple of 4.
    const one = ops.matmulPlanFor(ctx, true, false, 8, 8, 65536);
    assert.is(one.splits, 4);
    assert.is(one.kChunk % 4, 0);
    assert.ok(one.kChunk * one.splits >= 65536 && one.kChunk * (one.splits - 1) < 65536, 'the slices cover K once');
    // Big shapes keep the default block.
    const big = ops.matmulPlanFor(ctx, false, false, 1024, 1024, 1024);
    assert.equal([big.swap, big.rows, big.splits], [false, undefined, 1]);
    // Forced tuning wins over the shape's choice.
    ctx.setTuning({ matmul: 'regblock', regblock: { swap: false, splits: 5 } });
    const forcedPlan = ops.matmulPlanFor(ctx, false, true, 6336, 8, 6400);
    assert.equal([forcedPlan.swap, forcedPlan.splits], [false, 5]);
    // The GPU path has no tuning.
    ctx.setTuning({ matmul: 'tiled' });
    const tiled = ops.matmulPlanFor(ctx, false, true, 6336, 8, 64);
    assert.equal([tiled.variant, tiled.swap, tiled.splits], ['tiled', false, 1]);
  } finally {
    ctx.setTuning({});
  }
  assert.throws(() => ctx.setTuning({ matmul: 'tiled', regblock: { rows: 8 } }), /setTuning: regblock tunes the regblock variant only, not 'tiled'/);
  assert.throws(() => ctx.setTuning({ regblock: { rows: 6 } }), /regblock\.rows must be a positive multiple of 4, got 6/);
  assert.throws(() => ctx.setTuning({ regblock: { splits: 0 } }), /regblock\.splits must be a positive integer, got 0/);
  assert.is(ctx.tuning.matmul.variant, ctx.info.cpuBacked ? 'regblock' : 'tiled', 'a refused override leaves the tuning as it was');
});

test('matmul: each fused activation, forward and gradient (bias, odd N, K = 1 and K = 77)', async () => {
  for (const v of VARIANTS.slice(0, 2)) {
    await withVariant(v, async (ctx) => {
      for (const act of ['none', 'gelu_tanh', 'gelu_erf', 'quick_gelu', 'relu'] as Activation[]) {
        for (const [M, N, K] of [[3, 7, 1], [6, 5, 77]]) {
          // Scaled so pre-activations spread over the activation's curved range.
          const s = 2 / Math.sqrt(K);
          await gradCheck(ctx, `${v.label} ${act} ${M}x${N}x${K}`,
            (a, b, bias) => ops.matmul(a, b, { bias, activation: act }),
            (a, b, bias) => refMatmul(a, b, { activation: act }, bias),
            [randNd([M, K], 8, -s, s), randNd([K, N], 9, -1.5, 1.5), randNd([N], 10, -0.5, 0.5)],
            { rtol: 1e-5, atol: 2e-5, gradRtol: 2e-3, gradAtol: 2e-4 });
        }
      }
    });
  }
});

test('matmul: alpha and addend in the epilogue (LoRA branch, residual): every variant, transposed store, split-K; forward and gradient', async () => {
  const ref = (a: Nd, b: Nd, d: Nd, o: RefOpts, alpha: number, bias?: Nd) => {
    const p = refMatmul(a, b, { transA: o.transA, transB: o.transB });
    const out = nd(p.shape);
    const n = p.shape[p.shape.length - 1];
    const f = ACT[o.activation ?? 'none'];
    for (let i = 0; i < p.data.length; i++) out.data[i] = f(alpha * p.data[i] + (bias ? bias.data[i % n] : 0) + d.data[i]);
    return out;
  };
  const cases: { v: VariantCase; M: number; N: number; K: number; transA: boolean; transB: boolean; act: Activation }[] = [];
  for (const v of VARIANTS) {
    cases.push({ v, M: 5, N: 7, K: 9, transA: false, transB: true, act: 'none' });
    cases.push({ v, M: 6, N: 5, K: 12, transA: true, transB: false, act: 'quick_gelu' });
  }
  // N <= 16 under a taller M swaps to the transposed store; split-K forced on a long K.
  cases.push({ v: VARIANTS[0], M: 37, N: 6, K: 11, transA: false, transB: true, act: 'none' });
  cases.push({ v: { label: 'regblock split-K', variant: 'regblock', subgroups: true, tuning: { splits: 3 } }, M: 5, N: 8, K: 40, transA: false, transB: false, act: 'relu' });
  cases.push({ v: { label: 'regblock split-K scalar', variant: 'regblock', subgroups: true, tuning: { splits: 2 } }, M: 3, N: 7, K: 30, transA: false, transB: true, act: 'none' });
  for (const c of cases) {
    await withVariant(c.v, async (ctx) => {
      const [sa, sb] = operandShapes(c.M, c.N, c.K, c.transA, c.transB);
      const alpha = -1.75;
      const o = { transA: c.transA, transB: c.transB, activation: c.act };
      await gradCheck(ctx, `${c.v.label} ${c.M}x${c.N}x${c.K} ${c.act} alpha+addend`,
        (a, b, d, bias) => ops.matmul(a, b, { ...o, alpha, addend: d, bias }),
        (a, b, d, bias) => ref(a, b, d, o, alpha, bias),
        [randNd(sa, 21, -0.6, 0.6), randNd(sb, 22, -0.6, 0.6), randNd([c.M, c.N], 23, -1, 1), randNd([c.N], 24, -0.5, 0.5)],
        { rtol: 1e-5, atol: 2e-5, gradRtol: 2e-3, gradAtol: 2e-4 });
    });
  }
  const ctx = await gpu();
  const a = tensor(ctx, new Float32Array(6), [2, 3]);
  const b = tensor(ctx, new Float32Array(12), [3, 4]);
  const d = tensor(ctx, new Float32Array(6), [2, 3]);
  assert.throws(() => ops.matmul(a, b, { addend: d }), /matmul: addend \[2, 3\] does not match the output \[2, 4\]/);
  assert.throws(() => ops.matmul(a, b, { alpha: NaN }), /alpha must be a finite number/);
  [a, b, d].forEach((t) => t.dispose());
});

test('matmul: an activation\'s derivative rides in its only consumer\'s gradient product (MLP: every activation and variant, transposed store, split-K); two consumers take the plain path', async () => {
  // y = act(x W1^T + b1) W2^T + b2: the gradient product for the hidden layer applies act'
  // in its epilogue, so no derivative kernel runs, and the numbers match float64 either way.
  const mlpRef = (act: Activation) => (x: Nd, w1: Nd, b1: Nd, w2: Nd, b2: Nd) =>
    refMatmul(refMatmul(x, w1, { transB: true, activation: act }, b1), w2, { transB: true }, b2);
  const cases: { v: VariantCase; act: Activation; rows: number; inner: number; hidden: number; out: number }[] = [];
  for (const v of VARIANTS) for (const act of ['gelu_tanh', 'gelu_erf', 'quick_gelu', 'relu'] as Activation[]) cases.push({ v, act, rows: 7, inner: 12, hidden: 20, out: 8 });
  // Odd widths (scalar loads), a transposed store (narrow hidden under tall rows), split-K.
  cases.push({ v: VARIANTS[0], act: 'quick_gelu', rows: 9, inner: 5, hidden: 11, out: 3 });
  cases.push({ v: VARIANTS[0], act: 'gelu_erf', rows: 40, inner: 12, hidden: 8, out: 12 });
  cases.push({ v: { label: 'regblock split-K', variant: 'regblock', subgroups: true, tuning: { splits: 3 } }, act: 'quick_gelu', rows: 5, inner: 16, hidden: 12, out: 40 });
  for (const c of cases) {
    await withVariant(c.v, async (ctx) => {
      const { kernels } = await dispatchedKernels(ctx, () => gradCheck(ctx, `${c.v.label} ${c.act} MLP ${c.rows}x${c.inner}x${c.hidden}x${c.out}`,
        (x, w1, b1, w2, b2) => scope(ctx, () => ops.matmul(ops.matmul(x, w1, { transB: true, bias: b1, activation: c.act }), w2, { transB: true, bias: b2 })),
        mlpRef(c.act),
        [randNd([c.rows, c.inner], 51, -1, 1), randNd([c.hidden, c.inner], 52, -0.8, 0.8), randNd([c.hidden], 53, -0.5, 0.5),
          randNd([c.out, c.hidden], 54, -0.8, 0.8), randNd([c.out], 55, -0.5, 0.5)],
        { rtol: 1e-5, atol: 2e-5, gradRtol: 2e-3, gradAtol: 2e-4 }));
      assert.ok(kernels.some((k) => k.startsWith('matmul')), 'the spy saw the products');
      assert.not.ok(kernels.some((k) => k.startsWith(`unary.${c.act}`)), `${c.v.label} ${c.act}: no separate derivative pass (${kernels.join(', ')})`);
    });
  }
  // The hidden layer feeds two products: its gradient is their sum, so the derivative is applied after the add.
  await withVariant(VARIANTS[0], async (ctx) => {
    const { kernels } = await dispatchedKernels(ctx, () => gradCheck(ctx, 'MLP with a hidden layer read twice',
      (x, w1, w2, w3) => scope(ctx, () => {
        const h = ops.matmul(x, w1, { transB: true, activation: 'quick_gelu' });
        return ops.add(ops.matmul(h, w2, { transB: true }), ops.matmul(h, w3, { transB: true }));
      }),
      (x, w1, w2, w3) => {
        const h = refMatmul(x, w1, { transB: true, activation: 'quick_gelu' });
        const [p, q] = [refMatmul(h, w2, { transB: true }), refMatmul(h, w3, { transB: true })];
        return nd(p.shape, p.data.map((v, i) => v + q.data[i]));
      },
      [randNd([6, 8], 61, -1, 1), randNd([12, 8], 62, -1, 1), randNd([4, 12], 63, -1, 1), randNd([4, 12], 64, -1, 1)],
      { rtol: 1e-5, atol: 2e-5, gradRtol: 2e-3, gradAtol: 2e-4 }));
    assert.ok(kernels.some((k) => k.startsWith('unary.quick_gelu')), `two consumers: the derivative runs on the summed gradient (${kernels.join(', ')})`);
  });
});

test('matmul: inference with an activation writes no pre-activation and leaks nothing', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const a = tensor(ctx, Float32Array.from({ length: 12 }, (_, i) => i / 10 - 0.5), [3, 4]);
  const b = tensor(ctx, Float32Array.from({ length: 8 }, (_, i) => 0.3 - i / 10), [4, 2]);
  a.requiresGrad = true;
  const y = noGrad(() => ops.matmul(a, b, { activation: 'gelu_erf' }));
  const buckets = [12, 8, 6].reduce((s, n) => s + BufferPool.bucket(n * 4), 0);
  assert.is(ctx.pool.liveBytes - live, buckets, 'only a, b and y are live');
  assert.is(y.node, null);
  const ref = refMatmul(nd([3, 4], await a.toArray()), nd([4, 2], await b.toArray()), { activation: 'gelu_erf' });
  assertClose('inference gelu_erf', await y.toArray(), ref.data, 1e-5, 1e-6);
  for (const t of [a, b, y]) t.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test('linear: HF layout weight [out, in], batched and 1-D input', async () => {
  const ctx = await gpu();
  const w = randNd([6, 10], 21, -1, 1);
  const bias = randNd([6], 22, -1, 1);
  await gradCheck(ctx, 'linear [2, 3, 10]',
    (x, wt, bt) => ops.linear(x, wt, bt, 'quick_gelu'),
    (x, wt, bt) => refMatmul(x, wt, { transB: true, activation: 'quick_gelu' }, bt),
    [randNd([2, 3, 10], 20, -1, 1), w, bias]);
  await gradCheck(ctx, 'linear [10]',
    (x, wt) => ops.linear(x, wt),
    (x, wt) => { const y = refMatmul(nd([1, 10], x.data), wt, { transB: true }); return nd([6], y.data); },
    [randNd([10], 23, -1, 1), w]);
});

test('matmul: larger shapes agree with the reference (f32 accumulation, rtol 1e-4)', async () => {
  const ctx = await gpu();
  for (const v of VARIANTS.slice(0, 3)) {
    await withVariant(v, async () => {
      const [M, N, K] = [129, 136, 260];
      const a = f32(randNd([M, K], 31, -1, 1));
      const b = f32(randNd([N, K], 32, -1, 1));
      const bias = f32(randNd([N], 33, -1, 1));
      const ta = toGpu(ctx, a);
      const tb = toGpu(ctx, b);
      const tbias = toGpu(ctx, bias);
      const y = noGrad(() => ops.matmul(ta, tb, { transB: true, bias: tbias }));
      const { rtol, atol } = fwdTol(K);
      assertClose(`${v.label} ${M}x${N}x${K}`, await y.toArray(), refMatmul(a, b, { transB: true }, bias).data, rtol, atol);
      for (const t of [ta, tb, tbias, y]) t.dispose();
    });
  }
});

test('matmul: errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const t = (shape: number[], dtype: 'f32' | 'i32' = 'f32'): Tensor =>
    tensor(ctx, new Array(shape.reduce((p, q) => p * q, 1)).fill(0), shape, dtype);
  const a = t([2, 3]);
  const b = t([4, 5]);
  assert.throws(() => ops.matmul(a, b), /matmul: inner dimensions differ: a \[2, 3\] has K=3, b \[4, 5\] has K=4/);
  assert.throws(() => ops.matmul(a, b, { transB: true }), /matmul: inner dimensions differ: a \[2, 3\] has K=3, b \[4, 5\] \(transposed\) has K=5/);
  const v = t([3]);
  assert.throws(() => ops.matmul(v, b), /matmul: expected tensors of rank >= 2, got a \[3\] and b \[4, 5\]/);
  const ba = t([2, 2, 3]);
  const bb = t([3, 3, 4]);
  assert.throws(() => ops.matmul(ba, bb), /matmul: batch dimensions \[2\] of a \[2, 2, 3\] and \[3\] of b \[3, 3, 4\] differ/);
  const i = t([3, 4], 'i32');
  assert.throws(() => ops.matmul(a, i), /matmul: expected f32 or f16, got i32 tensor \[3, 4\]/);
  const c = t([3, 4]);
  const badBias = t([3]);
  assert.throws(() => ops.matmul(a, c, { bias: badBias }), /matmul: bias \[3\] does not match N=4/);
  assert.throws(() => ops.matmul(a, c, { activation: 'swish' as Activation }), /matmul: unknown activation 'swish'/);
  const x = t([2, 5]);
  const w = t([4, 3]);
  const w3 = t([2, 4, 3]);
  assert.throws(() => ops.linear(x, w), /linear: input \[2, 5\] does not end in in_features=3 of weight \[4, 3\]/);
  assert.throws(() => ops.linear(a, w3), /linear: weight must be \[out, in\], got \[2, 4, 3\]/);
  for (const z of [a, b, v, ba, bb, i, c, badBias, x, w, w3]) z.dispose();
});

test.run();
