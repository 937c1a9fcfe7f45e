import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { tensor, viewTensor } from '../src/engine/tensor.js';

type Op = 'sum' | 'mean' | 'max';

/** float64 reduction of one axis (keepDims keeps it with extent 1). */
function refReduce(x: Nd, op: Op, axis: number, keepDims: boolean): Nd {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const r = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((p, q) => p * q, 1);
  const outer = x.data.length / (r * inner);
  const shape = keepDims ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  const y = nd(shape);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === 'max' ? -Infinity : 0;
      for (let j = 0; j < r; j++) {
        const v = x.data[(o * r + j) * inner + i];
        acc = op === 'max' ? Math.max(acc, v) : acc + v;
      }
      y.data[o * inner + i] = op === 'mean' ? acc / r : acc;
    }
  }
  return y;
}

const FNS: Record<Op, (x: Parameters<typeof ops.max>[0], axis: number, keep: boolean) => ReturnType<typeof ops.max>> = {
  sum: (x, a, k) => ops.sum(x, a, k),
  mean: (x, a, k) => ops.mean(x, a, k),
  max: (x, a, k) => ops.max(x, a, k),
};

const SHAPES = [[3, 5, 7], [1, 7, 3], [5, 1, 9], [2, 3, 1]];

for (const op of ['sum', 'mean', 'max'] as Op[]) {
  test(`${op}: every axis of odd rank-3 shapes, with and without keepDims`, async () => {
    const ctx = await gpu();
    for (const shape of SHAPES) {
      for (let axis = -3; axis < 3; axis++) {
        for (const keep of [false, true]) {
          await gradCheck(ctx, `${op} ${JSON.stringify(shape)} axis ${axis}${keep ? ' keepDims' : ''}`,
            (x) => FNS[op](x, axis, keep), (x) => refReduce(x, op, axis, keep), [randNd(shape, shape[0] * 7 + axis + 3, -2, 2)],
            { rtol: 1e-6, atol: 1e-6 });
        }
      }
    }
  });

  test(`${op}: long axes (77, 129) and the rank-1 case`, async () => {
    const ctx = await gpu();
    for (const [shape, axis] of [[[77, 3], 0], [[2, 129], 1], [[129], 0], [[1], 0]] as [number[], number][]) {
      await gradCheck(ctx, `${op} ${JSON.stringify(shape)} axis ${axis}`, (x) => FNS[op](x, axis, false),
        (x) => refReduce(x, op, axis, false), [randNd(shape, 13, -2, 2)], { rtol: 2e-6, atol: 2e-6 });
    }
  });
}

const refAll = (x: Nd, mean: boolean): Nd => {
  let s = 0;
  for (const v of x.data) s += v;
  return nd([], [mean ? s / Math.max(1, x.data.length) : s]);
};

test('sum and mean of all elements: small, odd and not-multiple-of-4 sizes, with gradients', async () => {
  const ctx = await gpu();
  for (const shape of [[1], [2], [3], [5], [3, 7], [77, 3], [2, 129], [4, 4, 4], [513]]) {
    await gradCheck(ctx, `sum ${JSON.stringify(shape)}`, (x) => ops.sum(x), (x) => refAll(x, false), [randNd(shape, 3)],
      { rtol: 1e-5, atol: 1e-5 });
    await gradCheck(ctx, `mean ${JSON.stringify(shape)}`, (x) => ops.mean(x), (x) => refAll(x, true), [randNd(shape, 4)],
      { rtol: 1e-5, atol: 1e-6 });
  }
});

test('sum of all elements: large tensors against float64, deterministic', async () => {
  const ctx = await gpu();
  for (const n of [4 * 64 * 1024, 1_000_003, 4_000_001]) {
    const x = f32(randNd([n], n % 97, -1, 1));
    const xt = toGpu(ctx, x);
    const s1 = ops.sum(xt);
    const s2 = ops.sum(xt);
    const m = ops.mean(xt);
    const want = refAll(x, false).data[0];
    // f32 accumulation over n terms of |x| <= 1: error grows like sqrt(n) * 2^-24 per partial.
    assertClose(`sum of ${n}`, await s1.toArray(), [want], 1e-5, 2e-3);
    assertClose(`mean of ${n}`, await m.toArray(), [want / n], 1e-5, 2e-3 / n);
    assert.is(await s1.item(), await s2.item(), `sum of ${n} is deterministic`);
    for (const t of [xt, s1, s2, m]) t.dispose();
  }
  const z = tensor(ctx, new Float32Array(0), [0, 3]);
  const sz = ops.sum(z);
  assert.is(await sz.item(), 0);
  assert.equal([...sz.shape], []);
  z.dispose();
  sz.dispose();
});

test('max: ties send the gradient to the first maximum', async () => {
  const ctx = await gpu();
  // Rows of [2, 3, 4]: maxima tied along axis 2 and along axis 1.
  const data = [
    1, 5, 5, 2,
    5, 0, 5, 5,
    -1, -1, -1, -1,

    7, 7, 7, 7,
    3, 9, 9, 1,
    9, 9, 2, 9,
  ];
  const x = tensor(ctx, data, [2, 3, 4]);
  x.requiresGrad = true;
  const y = ops.max(x, 2);
  assert.equal(Array.from(await y.toArray()), [5, 5, -1, 7, 9, 9]);
  const g = tensor(ctx, [1, 2, 3, 4, 5, 6], [2, 3]);
  ops.backward(y, { grad: g });
  assert.equal(Array.from(await x.grad!.toArray()), [
    0, 1, 0, 0,
    2, 0, 0, 0,
    3, 0, 0, 0,

    4, 0, 0, 0,
    0, 5, 0, 0,
    6, 0, 0, 0,
  ]);
  x.grad!.dispose();
  x.grad = null;
  const y1 = ops.max(x, 1, true);
  assert.equal([...y1.shape], [2, 1, 4]);
  assert.equal(Array.from(await y1.toArray()), [5, 5, 5, 5, 9, 9, 9, 9]);
  const g1 = tensor(ctx, [1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4]);
  ops.backward(y1, { grad: g1 });
  assert.equal(Array.from(await x.grad!.toArray()), [
    0, 2, 3, 0,
    1, 0, 0, 4,
    0, 0, 0, 0,

    0, 0, 0, 0,
    0, 6, 7, 0,
    5, 0, 0, 8,
  ]);
  for (const t of [x, y, g, y1, g1]) t.dispose();
});

test('reduction errors name the op', async () => {
  const ctx = await gpu();
  const x = tensor(ctx, new Float32Array(6), [2, 3]);
  assert.throws(() => ops.sum(x, 2), /sum: axis 2 out of range for rank 2/);
  assert.throws(() => ops.max(x, -3), /max: axis -3 out of range for rank 2/);
  const i = tensor(ctx, [1, 2], [2], 'i32');
  assert.throws(() => ops.sum(i), /sum: expected f32, got i32 tensor \[2\]/);
  assert.throws(() => ops.mean(i, 0), /mean: expected f32, got i32 tensor \[2\]/);
  x.dispose();
  i.dispose();
});

/** float64 numpy-style broadcast of a binary op. */
function refBinary(a: Nd, b: Nd, f: (x: number, y: number) => number): Nd {
  const rank = Math.max(a.shape.length, b.shape.length);
  const pa = [...Array<number>(rank - a.shape.length).fill(1), ...a.shape];
  const pb = [...Array<number>(rank - b.shape.length).fill(1), ...b.shape];
  const out = pa.map((d, i) => Math.max(d, pb[i]));
  const y = nd(out);
  for (let e = 0; e < y.data.length; e++) {
    let rem = e;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let k = rank - 1; k >= 0; k--) {
      const c = rem % out[k];
      rem = Math.floor(rem / out[k]);
      if (pa[k] > 1) ia += c * sa;
      if (pb[k] > 1) ib += c * sb;
      sa *= pa[k];
      sb *= pb[k];
    }
    y.data[e] = f(a.data[ia], b.data[ib]);
  }
  return y;
}

// The elementwise fast paths: same shape (vec4 with a padded tail), 2-D broadcasts in every
// operand mode (bias row, per-row column, scalar) with and without vec4, and the gradients
// they produce through sumTo's axis-reduction path ([R, C] -> [C], [R, C] -> [R, 1],
// [A, R, C] -> [A, 1, C]) and its general fallback.
const BROADCAST_CASES: [number[], number[]][] = [
  [[5, 3], [5, 3]], [[2, 8], [2, 8]], [[6, 8], [8]], [[8], [6, 8]], [[6, 8], [6, 1]], [[6, 1], [6, 8]],
  [[5, 12], [1]], [[1], [5, 12]], [[13], [1]], [[3, 5], [3, 1]], [[7, 9], [9]], [[2, 3, 8], [3, 8]],
  [[4, 3, 8], [4, 1, 8]], [[3, 4, 5], [3, 1, 1]], [[2, 3, 4], [1, 3, 1]], [[1, 1, 1], [3, 1, 7]],
];

test('elementwise fast paths: broadcast modes and their sumTo gradients', async () => {
  const ctx = await gpu();
  const BIN: [string, (a: Parameters<typeof ops.add>[0], b: Parameters<typeof ops.add>[1]) => ReturnType<typeof ops.add>, (x: number, y: number) => number][] = [
    ['add', ops.add, (x, y) => x + y],
    ['mul', ops.mul, (x, y) => x * y],
    ['div', ops.div, (x, y) => x / y],
  ];
  for (const [name, f, r] of BIN) {
    for (const [sa, sb] of BROADCAST_CASES) {
      await gradCheck(ctx, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, f, (a, b) => refBinary(a, b, r),
        [randNd(sa, 1, 0.5, 2), randNd(sb, 2, 0.5, 2)], { rtol: 2e-6, atol: 2e-6 });
    }
  }
  for (const shape of [[5], [8], [3, 7], [2, 2, 4]]) {
    await gradCheck(ctx, `exp ${JSON.stringify(shape)}`, (x) => ops.exp(x), (x) => nd(x.shape, x.data.map(Math.exp)),
      [randNd(shape, 3)], { rtol: 2e-6, atol: 2e-6 });
  }
});

test('elementwise: a view that ends at its buffer end takes the scalar path', async () => {
  const ctx = await gpu();
  // 7 floats in a 28-byte buffer: widening to whole vec4s would overrun it.
  const buf = ctx.device.createBuffer({ size: 28, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const vals = Float32Array.from([0.5, -1, 2, 3, -0.25, 1.5, 0]);
  ctx.device.queue.writeBuffer(buf, 0, vals);
  const v = viewTensor(ctx, buf, 0, [7]);
  const y = ops.exp(v);
  const s = ops.add(v, v);
  assertClose('exp of a tight view', await y.toArray(), Array.from(vals, Math.exp), 2e-6, 0);
  assertClose('add of a tight view', await s.toArray(), Array.from(vals, (x) => 2 * x), 0, 0);
  for (const t of [v, y, s]) t.dispose();
  buf.destroy();
});

test.run();
