import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Float16Array } from '@petamoriken/float16';
import { gpu } from './helpers/gpu.js';
import { assertClose } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import { backward, matmul, mul, noGrad, scope, sum, tensor, type GpuContext, type Tensor } from '../src/engine/index.js';
import { matmulKernel, type MatmulPlan, type MatmulVariant } from '../src/kernels/matmul.js';

/** The values an f16 tensor holds after rounding (what the kernel then widens to f32). */
function roundF16(x: Nd): Nd {
  return nd(x.shape, Float32Array.from(Float16Array.from(x.data)));
}

/** op(A) @ op(B) in float64: a [M,K] ([K,M] transA), b [K,N] ([N,K] transB), over a leading batch of a. */
function ref(a: Nd, b: Nd, transA: boolean, transB: boolean): Nd {
  const batch = a.shape.length === 3 ? a.shape[0] : 1;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const N = transB ? br : bc;
  const out = nd([...(a.shape.length === 3 ? [batch] : []), M, N]);
  for (let q = 0; q < batch; q++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a.data[q * ar * ac + (transA ? k * ac + m : m * ac + k)];
          const bv = b.data[transB ? n * bc + k : k * bc + n];
          s += av * bv;
        }
        out.data[q * M * N + m * N + n] = s;
      }
    }
  }
  return out;
}

const VARIANTS: [string, MatmulVariant, boolean][] = [
  ['regblock+subgroups', 'regblock', true], ['regblock', 'regblock', false], ['tiled', 'tiled', false], ['naive', 'naive', false],
];

// [batch of A (0: 2-D), M, N, K]: scalar and vec4 layouts, tails past every block, N <= 16 with a
// taller M (the operands swap: the f16 weight becomes the kernel's A), and one long K (split-K).
const SHAPES: [number, number, number, number][] = [[0, 3, 7, 5], [0, 33, 20, 36], [2, 77, 12, 64], [0, 64, 8, 12], [0, 129, 3, 129], [0, 8, 8, 8200]];

const variantOf = (ctx: GpuContext) => ctx.tuning.matmul.variant;

async function check(ctx: GpuContext, label: string, aF16: boolean) {
  for (const [transA, transB] of [[false, false], [false, true], [true, true]] as const) {
    for (const [batch, M, N, K] of SHAPES) {
      if (batch && transA) continue;
      // The long K exercises regblock's split-K; the other variants have no split to test.
      if (K > 1000 && (variantOf(ctx) !== 'regblock' || transA)) continue;
      const sa = [...(batch ? [batch] : []), ...(transA ? [K, M] : [M, K])];
      const sb = transB ? [N, K] : [K, N];
      const a = aF16 ? roundF16(randNd(sa, M + K, -1, 1)) : f32(randNd(sa, M + K, -1, 1));
      const b = roundF16(randNd(sb, N * 7 + K, -1, 1));
      const ta = tensor(ctx, a.data, a.shape, aF16 ? 'f16' : 'f32');
      const tb = tensor(ctx, b.data, b.shape, 'f16');
      const y = noGrad(() => matmul(ta, tb, { transA, transB }));
      assertClose(`${label} A ${aF16 ? 'f16' : 'f32'} x B f16 ${sa} ${sb} transA=${transA} transB=${transB}`, await y.toArray(), ref(a, b, transA, transB).data, 1e-4, 2e-6 * K);
      for (const t of [ta, tb, y]) t.dispose();
    }
  }
}

for (const [label, variant, subgroups] of VARIANTS) {
  test(`matmul ${label}: f16 operands are widened as loaded, f32 accumulation, every layout`, async () => {
    const ctx = await gpu();
    if (!ctx.hasFeature('shader-f16')) {
      // Such an adapter must refuse f16 operands by name rather than fail inside a kernel.
      const a = tensor(ctx, [1, 2, 3, 4], [2, 2]);
      const b = tensor(ctx, [1, 2, 3, 4], [2, 2], 'f16');
      assert.throws(() => matmul(a, b), /needs the 'shader-f16' feature/);
      return;
    }
    await ctx.withTuning({ matmul: variant, matmulSubgroups: subgroups }, async () => {
      await check(ctx, label, false);
      await check(ctx, label, true);
    });
  });
}

test('a frozen f16 weight passes gradients to the f32 input as the same weight in f32 does', async () => {
  const ctx = await gpu();
  if (!ctx.hasFeature('shader-f16')) return; // refused by name there: the first tests check it
  const x = f32(randNd([37, 24], 3, -1, 1));
  const w = roundF16(randNd([20, 24], 4, -1, 1));
  const g = f32(randNd([37, 20], 5, -1, 1));
  const grads: Float32Array[] = [];
  for (const dtype of ['f16', 'f32'] as const) {
    const tx = tensor(ctx, x.data, x.shape);
    tx.requiresGrad = true;
    const tw = tensor(ctx, w.data, w.shape, dtype);
    const tg = tensor(ctx, g.data, g.shape);
    const loss = scope(ctx, () => sum(mul(matmul(tx, tw, { transB: true }), tg)));
    backward(loss);
    grads.push(await tx.grad!.toArray() as Float32Array);
    for (const t of [tx, tw, tg, loss]) t.dispose();
  }
  assertClose('dX with an f16 weight vs the f32 weight', grads[0], grads[1], 1e-6, 1e-7);
});

test('f16 operands: the kernel is its own (name and memo key), and an f16 operand that requires a gradient is refused', async () => {
  const ctx = await gpu();
  const plan: MatmulPlan = { variant: 'regblock', transA: false, transB: true, vec4: true, subgroup: 8, swap: false, splits: 1, kChunk: 64 };
  const k32 = matmulKernel(plan);
  const k16 = matmulKernel({ ...plan, elemB: 'f16' });
  assert.is.not(k16, k32);
  assert.is(matmulKernel({ ...plan, elemB: 'f16', kChunk: 128 }), k16, 'per-problem fields do not make new kernels');
  assert.match(k16.name, /\.B16$/);
  assert.match(k16.wgsl, /enable f16;/);
  assert.match(k16.wgsl, /var<storage, read> B: array<vec4<f16>>/);
  assert.not.match(k32.wgsl, /f16/);
  const a = tensor(ctx, [1, 2, 3, 4], [2, 2]);
  const b: Tensor = tensor(ctx, [1, 2, 3, 4], [2, 2], 'f16');
  b.requiresGrad = true;
  const why = ctx.hasFeature('shader-f16') ? /b \[2, 2\] is f16 and requires a gradient: f16 operands are frozen weights/ : /needs the 'shader-f16' feature/;
  assert.throws(() => matmul(a, b), why);
  a.dispose();
  b.dispose();
});

test.run();
