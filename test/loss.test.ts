import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, rng, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { tensor } from '../src/engine/tensor.js';
import type { RowVariant } from '../src/kernels/reduce.js';

/** float64 cross-entropy: mean (or sum) over non-ignored rows of logsumexp - x[target]. */
function refCe(x: Nd, targets: number[], ignore = -100, reduction: 'mean' | 'sum' = 'mean'): Nd {
  const [n, c] = x.shape;
  let s = 0;
  let count = 0;
  for (let r = 0; r < n; r++) {
    const t = targets[r];
    if (t === ignore) continue;
    count++;
    if (t < 0 || t >= c) {
      s = NaN;
      continue;
    }
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, x.data[r * c + j]);
    let e = 0;
    for (let j = 0; j < c; j++) e += Math.exp(x.data[r * c + j] - m);
    s += m + Math.log(e) - x.data[r * c + t];
  }
  const div = reduction === 'mean' ? count : Math.min(count, 1);
  return nd([], [div > 0 ? s / div : 0]);
}

/** Targets in [0, c) with every `ignoreEvery`-th row set to the ignore index. */
function makeTargets(n: number, c: number, seed: number, ignore = -100, ignoreEvery = 0): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => (ignoreEvery > 0 && i % ignoreEvery === 1 ? ignore : Math.floor(r() * c)));
}

const VARIANTS: RowVariant[] = ['lane', 'workgroup'];
const SHAPES: [number, number][] = [[1, 1], [3, 7], [77, 3], [5, 8], [129, 5], [2, 77], [2, 129], [1, 513]];

for (const variant of VARIANTS) {
  test(`crossEntropy (${variant}): forward and gradient check, with ignored rows`, async () => {
    const ctx = await gpu();
    ctx.setTuning({ rows: variant });
    try {
      for (const [n, c] of SHAPES) {
        for (const [ignore, every] of [[-100, 0], [-100, 3], [2, 2]] as const) {
          const tg = makeTargets(n, c, n * 31 + c, ignore, every);
          const tt = tensor(ctx, tg, [n], 'i32');
          await gradCheck(ctx, `crossEntropy [${n}, ${c}] ignore ${ignore}/${every}`,
            (x) => ops.crossEntropy(x, tt, { ignoreIndex: ignore }), (x) => refCe(x, tg, ignore),
            [randNd([n, c], 3, -4, 4)], { rtol: 2e-5, atol: 2e-6, gradRtol: 1e-3, gradAtol: 2e-5 });
          tt.dispose();
        }
      }
    } finally {
      ctx.setTuning({});
    }
  });

  test(`crossEntropy (${variant}): sum reduction and wide rows`, async () => {
    const ctx = await gpu();
    ctx.setTuning({ rows: variant });
    try {
      const tg = makeTargets(4, 9, 1, -100, 3);
      const tt = tensor(ctx, tg, [4], 'i32');
      await gradCheck(ctx, 'crossEntropy sum', (x) => ops.crossEntropy(x, tt, { reduction: 'sum' }),
        (x) => refCe(x, tg, -100, 'sum'), [randNd([4, 9], 2, -3, 3)], { rtol: 2e-5, atol: 2e-6 });
      tt.dispose();
      // Wide rows: forward against float64, backward against the closed form (softmax - onehot) / count.
      for (const [n, c] of [[3, 4099], [4, 4100], [300, 9], [260, 12]]) {
        const x = f32(randNd([n, c], 4, -6, 6));
        const t = makeTargets(n, c, 5);
        const xt = toGpu(ctx, x, true);
        const tgt = tensor(ctx, t, [n], 'i32');
        const loss = ops.crossEntropy(xt, tgt);
        assertClose(`crossEntropy [${n}, ${c}]`, await loss.toArray(), refCe(x, t).data, 2e-5, 2e-6);
        ops.backward(loss);
        const want = nd([n, c]);
        for (let r = 0; r < n; r++) {
          let m = -Infinity;
          for (let j = 0; j < c; j++) m = Math.max(m, x.data[r * c + j]);
          let e = 0;
          for (let j = 0; j < c; j++) e += Math.exp(x.data[r * c + j] - m);
          for (let j = 0; j < c; j++) want.data[r * c + j] = (Math.exp(x.data[r * c + j] - m) / e - (j === t[r] ? 1 : 0)) / n;
        }
        assertClose(`crossEntropy [${n}, ${c}] grad`, await xt.grad!.toArray(), want.data, 1e-4, 1e-7);
        for (const z of [xt, tgt, loss]) z.dispose();
      }
    } finally {
      ctx.setTuning({});
    }
  });
}

test('crossEntropy: all rows ignored gives loss 0 and zero gradient', async () => {
  const ctx = await gpu();
  const xt = toGpu(ctx, randNd([3, 5], 1), true);
  const tt = tensor(ctx, [-100, -100, -100], [3], 'i32');
  const loss = ops.crossEntropy(xt, tt);
  assert.is(await loss.item(), 0);
  ops.backward(loss);
  assert.ok(Array.from(await xt.grad!.toArray()).every((v) => v === 0));
  for (const t of [xt, tt, loss]) t.dispose();
  const empty = tensor(ctx, new Float32Array(0), [0, 4]);
  const none = tensor(ctx, new Int32Array(0), [0], 'i32');
  const l0 = ops.crossEntropy(empty, none);
  assert.is(await l0.item(), 0);
  for (const t of [empty, none, l0]) t.dispose();
});

test('crossEntropy: targets out of range give NaN, not garbage', async () => {
  const ctx = await gpu();
  for (const variant of VARIANTS) {
    ctx.setTuning({ rows: variant });
    for (const bad of [5, 6, -1, -101, 1 << 30]) {
      const xt = toGpu(ctx, randNd([3, 5], 1), true);
      const tt = tensor(ctx, [0, bad, 2], [3], 'i32');
      const loss = ops.crossEntropy(xt, tt);
      assert.ok(Number.isNaN(await loss.item()), `target ${bad} (${variant}): loss should be NaN`);
      ops.backward(loss);
      const g = await xt.grad!.toArray();
      assert.ok(g.slice(5, 10).every(Number.isNaN), `target ${bad}: gradient row should be NaN`);
      assert.ok(g.slice(0, 5).every(Number.isFinite), `target ${bad}: other rows stay finite`);
      for (const t of [xt, tt, loss]) t.dispose();
    }
  }
  ctx.setTuning({});
});

test('crossEntropy: argument errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const x = tensor(ctx, new Float32Array(6), [2, 3]);
  const tf = tensor(ctx, [0, 1], [2]);
  assert.throws(() => ops.crossEntropy(x, tf), /crossEntropy: targets must be i32 class indices, got f32 tensor \[2\]/);
  const t3 = tensor(ctx, [0, 1, 2], [3], 'i32');
  assert.throws(() => ops.crossEntropy(x, t3), /crossEntropy: targets \[3\] do not match logits \[2, 3\]/);
  const t2d = tensor(ctx, [0, 1], [2, 1], 'i32');
  assert.throws(() => ops.crossEntropy(x, t2d), /crossEntropy: targets \[2, 1\] do not match logits \[2, 3\]/);
  const x1 = tensor(ctx, new Float32Array(3), [3]);
  assert.throws(() => ops.crossEntropy(x1, t3), /crossEntropy: expected a rank-2 tensor, got \[3\]/);
  const t2 = tensor(ctx, [0, 1], [2], 'i32');
  assert.throws(() => ops.crossEntropy(x, t2, { ignoreIndex: 0.5 }), /crossEntropy: ignoreIndex 0.5/);
  for (const t of [x, tf, t3, t2d, x1, t2]) t.dispose();
});

test.run();
