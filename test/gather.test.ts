import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck } from './helpers/check.js';
import { f32, nd, randNd, rng, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { scope, tensor, type Tensor } from '../src/engine/tensor.js';
import type { GpuContext } from '../src/engine/context.js';

// Gathers are exact copies. Gradients with repeated indices are f32 sums whose order is set by
// the atomics, so they get a relative tolerance of a few f32 ulps times the repeat count.
const TOL = { rtol: 0, atol: 0, gradRtol: 1e-5, gradAtol: 1e-5 };

const split = (shape: readonly number[], axis: number): [number, number, number] => {
  const p = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  return [p(shape.slice(0, axis)), shape[axis], p(shape.slice(axis + 1))];
};

/** float64 index_select; out-of-range rows are NaN, as the kernel defines them. */
const indexSelectRef = (x: Nd, axis: number, idx: readonly number[]): Nd => {
  const [outer, len, inner] = split(x.shape, axis);
  const out = nd(x.shape.map((d, i) => (i === axis ? idx.length : d)));
  for (let o = 0; o < outer; o++) {
    idx.forEach((k, j) => {
      for (let q = 0; q < inner; q++) {
        out.data[(o * idx.length + j) * inner + q] = k >= 0 && k < len ? x.data[(o * len + k) * inner + q] : NaN;
      }
    });
  }
  return out;
};

const embeddingRef = (w: Nd, ids: readonly number[], idsShape: number[]): Nd => {
  const r = indexSelectRef(w, 0, ids);
  return nd([...idsShape, w.shape[1]], r.data);
};

/** gradCheck builds every input as f32, so the i32 indices are closed over instead. */
async function withIds<T>(ctx: GpuContext, ids: number[], shape: number[], fn: (t: Tensor) => Promise<T>): Promise<T> {
  const t = tensor(ctx, ids, shape, 'i32');
  try {
    return await fn(t);
  } finally {
    t.dispose();
  }
}

const randIds = (n: number, hi: number, seed: number): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * hi));
};

test('indexSelect: every axis, odd shapes, repeated indices', async () => {
  const ctx = await gpu();
  const cases: [number[], number, number[]][] = [
    [[7, 3], 0, [6, 0, 0, 3]],
    [[1], 0, [0, 0, 0]],
    [[7, 3], 1, [2]],
    [[2, 77, 3], 1, randIds(129, 77, 1)],
    [[3, 5, 8], 1, [4, 4, 0, 1, 4]],
    [[3, 5, 8], -1, [7, 0, 3]],
    [[129, 1], 0, [128, 0, 64, 128]],
  ];
  for (const [shape, axis, idx] of cases) {
    const a = axis < 0 ? axis + shape.length : axis;
    await withIds(ctx, idx, [idx.length], (ids) => gradCheck(ctx, `indexSelect ${JSON.stringify(shape)} axis ${axis} [${idx.length} ids]`,
      (x) => ops.indexSelect(x, axis, ids), (x) => indexSelectRef(x, a, idx), [randNd(shape, 3)], TOL));
  }
});

test('embedding: ids of shape [2, 7] with repeats; gradients accumulate', async () => {
  const ctx = await gpu();
  const cases: [number[], number[], number[]][] = [
    [[11, 7], [3, 3, 3, 0, 10, 3, 5, 5, 1, 0, 3, 10, 2, 2], [2, 7]],
    [[5, 8], [4, 1, 4], [3]],
    [[129, 3], [77], [1]],
    [[3, 77], [2, 2, 1, 0, 2, 2, 2], [7]],
    [[4, 1], [3, 3], [1, 2]],
    [[6, 5], [2], []],
  ];
  for (const [wShape, ids, idsShape] of cases) {
    await withIds(ctx, ids, idsShape, (t) => gradCheck(ctx, `embedding ${JSON.stringify(wShape)} ids ${JSON.stringify(idsShape)}`,
      (w) => ops.embedding(w, t), (w) => embeddingRef(w, ids, idsShape), [randNd(wShape, 4)], TOL));
  }
});

test('embedding: heavy contention on one row sums every contribution', async () => {
  const ctx = await gpu();
  const n = 1000;
  const ids = Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 1 : 2));
  const g = f32(randNd([n, 3], 5));
  const expected = nd([3, 3]);
  ids.forEach((k, j) => { for (let q = 0; q < 3; q++) expected.data[k * 3 + q] += g.data[j * 3 + q]; });
  await withIds(ctx, ids, [n], async (t) => {
    const w = tensor(ctx, new Float32Array(9), [3, 3]);
    w.requiresGrad = true;
    const gt = tensor(ctx, g.data, g.shape);
    const y = ops.embedding(w, t);
    ops.backward(y, { grad: gt });
    // 900 f32 adds of values in [-1, 1] in an arbitrary order.
    assertClose('embedding grad under contention', await w.grad!.toArray(), expected.data, 1e-4, 1e-4);
    for (const x of [w, gt, y]) x.dispose();
  });
});

test('out-of-range indices: NaN rows forward, skipped by the gradient', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const w = f32(randNd([4, 8], 6));
  const ids = [1, -1, 4, 3, 1, 2147483647];
  await withIds(ctx, ids, [2, 3], async (t) => {
    const wt = tensor(ctx, w.data, w.shape);
    wt.requiresGrad = true;
    const y = ops.embedding(wt, t);
    const out = await y.toArray();
    assertClose('embedding with bad ids', out, embeddingRef(w, ids, [2, 3]).data, 0, 0);
    assert.ok(Number.isNaN(out[8]) && Number.isNaN(out[16]) && Number.isNaN(out[47]), 'bad ids give NaN rows');
    const g = f32(randNd([2, 3, 8], 7));
    const gt = tensor(ctx, g.data, g.shape);
    ops.backward(y, { grad: gt });
    const expected = nd([4, 8]);
    ids.forEach((k, j) => { if (k >= 0 && k < 4) for (let q = 0; q < 8; q++) expected.data[k * 8 + q] += g.data[j * 8 + q]; });
    assertClose('embedding grad with bad ids', await wt.grad!.toArray(), expected.data, 1e-6, 1e-6);
    for (const x of [wt, gt, y]) x.dispose();
  });
  assert.is(ctx.pool.liveBytes, live, 'leak');
});

test('larger gather, forward only (vec4 and scalar rows)', async () => {
  const ctx = await gpu();
  for (const [v, d] of [[300, 64], [300, 77]]) {
    const w = f32(randNd([v, d], 8));
    const ids = randIds(2 * 77, v, 9);
    await withIds(ctx, ids, [2, 77], async (t) => {
      const y = scope(ctx, () => ops.embedding(tensor(ctx, w.data, w.shape), t));
      assertClose(`embedding [${v}, ${d}] ids [2, 77]`, await y.toArray(), embeddingRef(w, ids, [2, 77]).data, 0, 0);
      y.dispose();
    });
  }
});

test('the GPU variant (4 elements per invocation) agrees', async () => {
  const ctx = await gpu();
  const info = ctx.info as { cpuBacked: boolean };
  const prev = info.cpuBacked;
  info.cpuBacked = false;
  try {
    for (const [wShape, n] of [[[11, 7], 14], [[30, 64], 9], [[5, 129], 6]] as [number[], number][]) {
      const ids = randIds(n, wShape[0], n);
      ids[1] = ids[0];
      await withIds(ctx, ids, [n], (t) => gradCheck(ctx, `gpu variant embedding ${JSON.stringify(wShape)}`,
        (w) => ops.embedding(w, t), (w) => embeddingRef(w, ids, [n]), [randNd(wShape, 17)], TOL));
    }
  } finally {
    info.cpuBacked = prev;
  }
});

test('errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const w = tensor(ctx, new Float32Array(12), [4, 3]);
  const fIds = tensor(ctx, [0, 1], [2]);
  const ids2 = tensor(ctx, [0, 1, 2, 3], [2, 2], 'i32');
  const w1 = tensor(ctx, new Float32Array(4), [4]);
  const iw = tensor(ctx, [1, 2, 3, 4], [2, 2], 'i32');
  const flat = ids2.alias([4]);
  assert.throws(() => ops.embedding(w, fIds), /embedding: indices must be i32, got f32 tensor \[2\] \(indexing \[4, 3\]\)/);
  assert.throws(() => ops.indexSelect(w, 0, fIds), /indexSelect: indices must be i32, got f32 tensor \[2\]/);
  assert.throws(() => ops.indexSelect(w, 0, ids2), /indexSelect: expected a rank-1 tensor, got \[2, 2\]/);
  assert.throws(() => ops.indexSelect(w, 2, flat), /indexSelect: axis 2 out of range for rank 2/);
  assert.throws(() => ops.embedding(w1, ids2), /embedding: weight must be \[vocab, dim\], got \[4\] \(ids \[2, 2\]\)/);
  assert.throws(() => ops.embedding(iw, ids2), /embedding: expected f32, got i32 tensor \[2, 2\]/);
  for (const t of [w, fIds, ids2, w1, iw, flat]) t.dispose();
});

test.run();
