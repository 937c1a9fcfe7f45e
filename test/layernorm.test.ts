import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, dispatchedKernels, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { scope, tensor } from '../src/engine/tensor.js';
import type { RowVariant } from '../src/kernels/reduce.js';

/** float64 layer norm over the last dim (biased variance), with per-row mean and rstd. */
function refLn(x: Nd, gamma: Nd, beta: Nd, eps: number): { y: Nd; mean: number[]; rstd: number[] } {
  const d = x.shape[x.shape.length - 1];
  const rows = x.data.length / d;
  const y = nd(x.shape);
  const mean: number[] = [];
  const rstd: number[] = [];
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x.data[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x.data[r * d + j] - m) ** 2;
    const rs = 1 / Math.sqrt(v / d + eps);
    mean.push(m);
    rstd.push(rs);
    for (let j = 0; j < d; j++) y.data[r * d + j] = (x.data[r * d + j] - m) * rs * gamma.data[j] + beta.data[j];
  }
  return { y, mean, rstd };
}

/** float64 gradients of layer norm for upstream g: [dx, dgamma, dbeta]. */
function refLnBackward(x: Nd, gamma: Nd, beta: Nd, g: Nd, eps: number): [Nd, Nd, Nd] {
  const d = x.shape[x.shape.length - 1];
  const { mean, rstd } = refLn(x, gamma, beta, eps);
  const dx = nd(x.shape);
  const dg = nd([d]);
  const db = nd([d]);
  for (let r = 0; r < mean.length; r++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < d; j++) {
      const k = r * d + j;
      const xh = (x.data[k] - mean[r]) * rstd[r];
      const gy = g.data[k] * gamma.data[j];
      a += gy;
      b += gy * xh;
      dg.data[j] += g.data[k] * xh;
      db.data[j] += g.data[k];
    }
    for (let j = 0; j < d; j++) {
      const k = r * d + j;
      const xh = (x.data[k] - mean[r]) * rstd[r];
      dx.data[k] = rstd[r] * (g.data[k] * gamma.data[j] - a / d - (xh * b) / d);
    }
  }
  return [dx, dg, db];
}

const VARIANTS: RowVariant[] = ['lane', 'workgroup'];
const GRAD_SHAPES = [[1, 1], [3, 7], [77, 3], [2, 77], [1, 129], [2, 2, 8], [1, 513]];
// 300 rows: the lane variant switches to 64-wide workgroups at 256 rows.
const BIG_SHAPES = [[129, 1], [77, 7], [3, 77], [129, 129], [3, 513], [129, 516], [1, 3, 2048], [300, 13], [2, 150, 8]];

const params = (d: number, seed: number): [Nd, Nd] => [randNd([d], seed, 0.5, 1.5), randNd([d], seed + 1, -0.5, 0.5)];

for (const variant of VARIANTS) {
  test(`layerNorm (${variant}): forward and gradient check of x, gamma, beta`, async () => {
    const ctx = await gpu();
    ctx.setTuning({ rows: variant });
    try {
      for (const shape of GRAD_SHAPES) {
        const d = shape[shape.length - 1];
        const [gm, bt] = params(d, 3);
        for (const eps of [1e-5, 0.3]) {
          await gradCheck(ctx, `layerNorm ${JSON.stringify(shape)} eps ${eps}`, (x, g, b) => ops.layerNorm(x, g, b, eps),
            (x, g, b) => refLn(x, g, b, eps).y, [randNd(shape, 5, -2, 2), gm, bt],
            { rtol: 3e-5, atol: 3e-5, gradRtol: 2e-3, gradAtol: 1e-4 });
        }
      }
      // Only x differentiated (frozen affine parameters), and only the parameters.
      const [gm, bt] = params(7, 9);
      await gradCheck(ctx, 'layerNorm x only', (x, g, b) => ops.layerNorm(x, g, b), (x, g, b) => refLn(x, g, b, 1e-5).y,
        [randNd([5, 7], 1), gm, bt], { constant: [1, 2], rtol: 3e-5, atol: 3e-5, gradAtol: 1e-4 });
      await gradCheck(ctx, 'layerNorm params only', (x, g, b) => ops.layerNorm(x, g, b), (x, g, b) => refLn(x, g, b, 1e-5).y,
        [randNd([5, 7], 1), gm, bt], { constant: [0], rtol: 3e-5, atol: 3e-5, gradAtol: 1e-4 });
    } finally {
      ctx.setTuning({});
    }
  });

  test(`layerNorm (${variant}): larger rows against float64 forward and backward`, async () => {
    const ctx = await gpu();
    ctx.setTuning({ rows: variant });
    try {
      for (const shape of BIG_SHAPES) {
        const d = shape[shape.length - 1];
        const x = f32(randNd(shape, 2, -3, 3));
        const [gm, bt] = params(d, 4).map(f32);
        const g = f32(randNd(shape, 6, -1, 1));
        const [xt, gt, bt2] = [toGpu(ctx, x, true), toGpu(ctx, gm, true), toGpu(ctx, bt, true)];
        const gg = toGpu(ctx, g);
        const y = ops.layerNorm(xt, gt, bt2);
        const name = `layerNorm ${JSON.stringify(shape)}`;
        assertClose(`${name} forward`, await y.toArray(), refLn(x, gm, bt, 1e-5).y.data, 3e-5, 3e-5);
        ops.backward(y, { grad: gg });
        const [dx, dg, db] = refLnBackward(x, gm, bt, g, 1e-5);
        assertClose(`${name} dx`, await xt.grad!.toArray(), dx.data, 1e-3, 1e-4);
        assertClose(`${name} dgamma`, await gt.grad!.toArray(), dg.data, 1e-4, 1e-4);
        assertClose(`${name} dbeta`, await bt2.grad!.toArray(), db.data, 1e-4, 1e-4);
        for (const t of [xt, gt, bt2, gg, y]) t.dispose();
      }
    } finally {
      ctx.setTuning({});
    }
  });
}

test('layerNorm: a residual stream\'s gradient rides in the backward store (no separate add), both row variants', async () => {
  // y = ln(x) * w + x: x gets the residual's gradient and layer norm's; the engine hands the
  // first to the layer norm rule, which adds it in its kernel.
  const ctx = await gpu();
  for (const variant of VARIANTS) {
    ctx.setTuning({ rows: variant });
    try {
      for (const shape of [[3, 7], [5, 64], [2, 3, 12]]) {
        const d = shape[shape.length - 1];
        const [gm, bt] = params(d, 21);
        const w = randNd(shape, 23, -1, 1);
        const { kernels } = await dispatchedKernels(ctx, () => gradCheck(ctx, `${variant} layerNorm + residual ${JSON.stringify(shape)}`,
          (x, g, b, wt) => scope(ctx, () => ops.add(ops.mul(ops.layerNorm(x, g, b), wt), x)),
          (x, g, b, wt) => {
            const y = refLn(x, g, b, 1e-5).y;
            return nd(x.shape, y.data.map((v, i) => v * wt.data[i] + x.data[i]));
          },
          [randNd(shape, 22, -2, 2), gm, bt, w], { constant: [3], rtol: 3e-5, atol: 3e-5, gradRtol: 2e-3, gradAtol: 1e-4 }));
        const from = kernels.findIndex((k) => k.startsWith('layernorm.backward'));
        assert.ok(from >= 0, `${variant}: layer norm ran backward (${kernels.join(', ')})`);
        assert.not.ok(kernels.slice(from).some((k) => k.startsWith('binary.add')), `${variant} ${JSON.stringify(shape)}: no add after layer norm's backward (${kernels.join(', ')})`);
      }
    } finally {
      ctx.setTuning({});
    }
  }
});

test('layerNorm: accurate when the mean dwarfs the spread', async () => {
  const ctx = await gpu();
  for (const variant of VARIANTS) {
    ctx.setTuning({ rows: variant });
    // Rows around 1000 with std ~0.1: sum / sum-of-squares in f32 would lose the variance.
    const x = f32(randNd([9, 516], 8, -0.2, 0.2));
    for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i] + 1000);
    const [gm, bt] = params(516, 1).map(f32);
    const [xt, gt, btt] = [toGpu(ctx, x), toGpu(ctx, gm), toGpu(ctx, bt)];
    const y = ops.layerNorm(xt, gt, btt);
    assertClose(`layerNorm (${variant}) large mean`, await y.toArray(), refLn(x, gm, bt, 1e-5).y.data, 0, 3e-3);
    for (const t of [xt, gt, btt, y]) t.dispose();
  }
  ctx.setTuning({});
});

test('layerNorm: argument errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const x = tensor(ctx, new Float32Array(12), [3, 4]);
  const g4 = tensor(ctx, new Float32Array(4), [4]);
  const g3 = tensor(ctx, new Float32Array(3), [3]);
  const g14 = tensor(ctx, new Float32Array(4), [1, 4]);
  assert.throws(() => ops.layerNorm(x, g3, g4), /layerNorm: gamma \[3\] does not match the last dim of x \[3, 4\] \(expected \[4\]\)/);
  assert.throws(() => ops.layerNorm(x, g4, g14), /layerNorm: beta \[1, 4\] does not match the last dim of x \[3, 4\]/);
  assert.throws(() => ops.layerNorm(x, g4, g4, -1), /layerNorm: eps must be a finite number >= 0, got -1/);
  const xi = tensor(ctx, new Int32Array(12), [3, 4], 'i32');
  assert.throws(() => ops.layerNorm(xi, g4, g4), /layerNorm: expected f32, got i32 tensor \[3, 4\]/);
  for (const t of [x, g4, g3, g14, xi]) t.dispose();
});

/** float64 x / max(||x||, eps) along `axis`. */
function refL2(x: Nd, axis: number, eps: number): Nd {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const r = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((p, q) => p * q, 1);
  const outer = x.data.length / (r * inner);
  const y = nd(x.shape);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let ss = 0;
      for (let j = 0; j < r; j++) ss += x.data[(o * r + j) * inner + i] ** 2;
      const den = Math.max(Math.sqrt(ss), eps);
      for (let j = 0; j < r; j++) y.data[(o * r + j) * inner + i] = x.data[(o * r + j) * inner + i] / den;
    }
  }
  return y;
}

const L2_CASES: [number[], number][] = [
  [[1, 1], -1], [[3, 7], -1], [[2, 8], -1], [[1, 129], -1], [[77, 3], -1], [[2, 516], -1],
  [[7, 3], 0], [[129, 2], 0], [[5, 1], 0], [[8, 3], 0], [[3, 5, 4], 1], [[3, 2, 5], 0], [[2, 3, 4], -1], [[260, 3], -1],
];

for (const variant of VARIANTS) {
  test(`l2Normalize (${variant}): forward and gradient check along axis 0, middle and -1`, async () => {
    const ctx = await gpu();
    ctx.setTuning({ rows: variant });
    try {
      for (const [shape, axis] of L2_CASES) {
        await gradCheck(ctx, `l2Normalize ${JSON.stringify(shape)} axis ${axis}`, (x) => ops.l2Normalize(x, axis),
          (x) => refL2(x, axis, 1e-12), [randNd(shape, 4, -2, 2)], { rtol: 2e-6, atol: 1e-6, gradRtol: 1e-3, gradAtol: 2e-5 });
      }
      // Below eps the divisor is eps itself: the gradient is g / eps.
      await gradCheck(ctx, 'l2Normalize clamped', (x) => ops.l2Normalize(x, -1, 0.5), (x) => refL2(x, -1, 0.5),
        [randNd([3, 7], 2, -0.1, 0.1)], { rtol: 2e-6, atol: 1e-6 });
      await gradCheck(ctx, 'l2Normalize clamped axis 0', (x) => ops.l2Normalize(x, 0, 0.5), (x) => refL2(x, 0, 0.5),
        [randNd([3, 7], 2, -0.1, 0.1)], { rtol: 2e-6, atol: 1e-6 });
    } finally {
      ctx.setTuning({});
    }
  });
}

test('l2Normalize: a zero vector stays zero with a finite gradient; errors', async () => {
  const ctx = await gpu();
  const x = tensor(ctx, [0, 0, 0, 3, 4, 0], [2, 3]);
  x.requiresGrad = true;
  const y = ops.l2Normalize(x);
  assertClose('l2Normalize zero row', await y.toArray(), [0, 0, 0, 0.6, 0.8, 0], 1e-6, 1e-7);
  const g = tensor(ctx, [1e-12, 2e-12, 0, 1, 0, 0], [2, 3]);
  ops.backward(y, { grad: g });
  // Row 0: g / eps. Row 1: (g - y (y . g)) / 5 with y . g = 0.6.
  assertClose('l2Normalize zero row grad', await x.grad!.toArray(), [1, 2, 0, 0.128, -0.096, 0], 1e-5, 1e-7);
  for (const t of [x, y, g]) t.dispose();
  const z = tensor(ctx, new Float32Array(6), [2, 3]);
  assert.throws(() => ops.l2Normalize(z, 2), /l2Normalize: axis 2 out of range for rank 2/);
  assert.throws(() => ops.l2Normalize(z, -1, 0), /l2Normalize: eps must be a finite number > 0, got 0/);
  z.dispose();
});

test.run();
