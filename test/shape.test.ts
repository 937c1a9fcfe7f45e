import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { scope, tensor } from '../src/engine/tensor.js';
import type { GpuContext } from '../src/engine/context.js';

// Data movement is exact: forwards must match bit for bit. Gradients of permute / slice /
// concat / pad are copies (exact too, up to the float64 finite differences); expand's
// gradient is an f32 sum, hence the looser gradient tolerance there.
const EXACT = { rtol: 0, atol: 0, gradRtol: 1e-6, gradAtol: 1e-6 };
const SUMMED = { rtol: 0, atol: 0, gradRtol: 1e-5, gradAtol: 1e-5 };

const strides = (shape: readonly number[]): number[] => {
  const s: number[] = [];
  let k = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = k; k *= shape[i]; }
  return s;
};

/** Calls f(coords, linear index) for every element of `shape` in row-major order. */
const each = (shape: readonly number[], f: (c: number[], i: number) => void): void => {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let k = shape.length - 1; k >= 0; k--) { c[k] = rem % shape[k]; rem = Math.floor(rem / shape[k]); }
    f(c, i);
  }
};

const at = (x: Nd, c: readonly number[]): number => {
  const s = strides(x.shape);
  return x.data[c.reduce((o, v, k) => o + v * s[k], 0)];
};

const permuteRef = (x: Nd, perm: readonly number[]): Nd => {
  const out = nd(perm.map((p) => x.shape[p]));
  const src = new Array<number>(perm.length);
  each(out.shape, (c, i) => { perm.forEach((p, k) => (src[p] = c[k])); out.data[i] = at(x, src); });
  return out;
};

const sliceRef = (x: Nd, axis: number, s: number, e: number): Nd => {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const out = nd(x.shape.map((d, i) => (i === a ? e - s : d)));
  each(out.shape, (c, i) => { out.data[i] = at(x, c.map((v, k) => (k === a ? v + s : v))); });
  return out;
};

const concatRef = (xs: Nd[], axis: number): Nd => {
  const a = axis < 0 ? axis + xs[0].shape.length : axis;
  const out = nd(xs[0].shape.map((d, i) => (i === a ? xs.reduce((t, x) => t + x.shape[a], 0) : d)));
  each(out.shape, (c, i) => {
    let p = c[a];
    let j = 0;
    while (p >= xs[j].shape[a]) p -= xs[j++].shape[a];
    out.data[i] = at(xs[j], c.map((v, k) => (k === a ? p : v)));
  });
  return out;
};

const expandRef = (x: Nd, shape: number[]): Nd => {
  const out = nd(shape);
  const off = shape.length - x.shape.length;
  each(shape, (c, i) => { out.data[i] = at(x, x.shape.map((d, k) => (d === 1 ? 0 : c[off + k]))); });
  return out;
};

const padRef = (x: Nd, axis: number, before: number, after: number): Nd => {
  const out = nd(x.shape.map((d, i) => (i === axis ? d + before + after : d)));
  each(out.shape, (c, i) => {
    const p = c[axis] - before;
    out.data[i] = p >= 0 && p < x.shape[axis] ? at(x, c.map((v, k) => (k === axis ? p : v))) : 0;
  });
  return out;
};

const perms = (r: number): number[][] => {
  if (r === 1) return [[0]];
  return perms(r - 1).flatMap((p) => Array.from({ length: r }, (_, i) => [...p.slice(0, i), r - 1, ...p.slice(i)]));
};

test('transpose: forward and gradient on odd shapes', async () => {
  const ctx = await gpu();
  // [3, 5, 8] and [8, 4] exercise the vec4-load variant, [2, 8, 7] the vec4-store one.
  for (const shape of [[1, 1], [3, 7], [7, 3], [1, 129], [2, 3, 7], [2, 77, 9], [3, 5, 8], [8, 4], [2, 8, 7], [2, 4, 77]]) {
    await gradCheck(ctx, `transpose ${JSON.stringify(shape)}`, ops.transpose,
      (x) => permuteRef(x, [...shape.keys()].map((i) => (i < shape.length - 2 ? i : 2 * shape.length - 3 - i))),
      [randNd(shape, 5)], EXACT);
  }
});

test('permute: every permutation of rank 3, several of rank 4', async () => {
  const ctx = await gpu();
  for (const shape of [[2, 3, 7], [3, 1, 7]]) {
    for (const perm of perms(3)) {
      await gradCheck(ctx, `permute ${JSON.stringify(shape)} ${JSON.stringify(perm)}`, (x) => ops.permute(x, perm),
        (x) => permuteRef(x, perm), [randNd(shape, 6)], EXACT);
    }
  }
  // [2, 3, 5, 8] with the last dim kept moves 16-byte words (the vec4 variant).
  for (const [shape, perm] of [
    [[2, 3, 4, 5], [0, 2, 1, 3]], [[2, 3, 4, 5], [3, 2, 1, 0]], [[2, 3, 4, 5], [1, 3, 0, 2]],
    [[2, 3, 4, 5], [2, 0, 3, 1]], [[2, 3, 5, 8], [0, 2, 1, 3]], [[3, 7, 1, 4], [2, 0, 1, 3]],
  ] as [number[], number[]][]) {
    await gradCheck(ctx, `permute ${JSON.stringify(shape)} ${JSON.stringify(perm)}`, (x) => ops.permute(x, perm),
      (x) => permuteRef(x, perm), [randNd(shape, 7)], EXACT);
  }
});

test('permute: larger and rank-6 shapes, forward', async () => {
  const ctx = await gpu();
  for (const [shape, perm] of [
    [[3, 77, 129], [0, 2, 1]], [[3, 77, 8, 16], [0, 2, 1, 3]], [[2, 1, 3, 2, 5, 4], [5, 4, 3, 2, 1, 0]],
    [[2, 3, 2, 3, 2, 3], [1, 0, 3, 2, 5, 4]], [[129, 1], [1, 0]],
  ] as [number[], number[]][]) {
    const x = f32(randNd(shape, 8));
    const t = tensor(ctx, x.data, x.shape);
    const y = ops.permute(t, perm);
    assert.equal([...y.shape], perm.map((p) => shape[p]));
    assertClose(`permute ${JSON.stringify(shape)} ${JSON.stringify(perm)}`, await y.toArray(), permuteRef(x, perm).data, 0, 0);
    t.dispose();
    y.dispose();
  }
});

test('permute: i32 tensors are moved bit for bit', async () => {
  const ctx = await gpu();
  const data = Array.from({ length: 3 * 7 }, (_, i) => i * 7919 - 50000);
  const t = tensor(ctx, data, [3, 7], 'i32');
  const y = ops.transpose(t);
  assert.is(y.dtype, 'i32');
  assert.equal([...(await y.toArray())], [...permuteRef(nd([3, 7], data), [1, 0]).data]);
  t.dispose();
  y.dispose();
});

/** Runs fn with the kernel variants chosen for GPUs (thin invocations) on this adapter. */
async function asGpuAdapter(ctx: GpuContext, fn: () => Promise<void>): Promise<void> {
  const info = ctx.info as { cpuBacked: boolean };
  const prev = info.cpuBacked;
  info.cpuBacked = false;
  try {
    await fn();
  } finally {
    info.cpuBacked = prev;
  }
}

test('the GPU variants (4 elements per invocation) agree', async () => {
  const ctx = await gpu();
  await asGpuAdapter(ctx, async () => {
    for (const [shape, perm] of [
      [[2, 77, 9], [0, 2, 1]], [[3, 5, 8], [0, 2, 1]], [[2, 8, 7], [0, 2, 1]], [[3, 7, 2, 8], [0, 2, 1, 3]], [[2, 3, 1, 129], [3, 1, 0, 2]],
    ] as [number[], number[]][]) {
      await gradCheck(ctx, `gpu variant permute ${JSON.stringify(shape)} ${JSON.stringify(perm)}`, (x) => ops.permute(x, perm),
        (x) => permuteRef(x, perm), [randNd(shape, 15)], EXACT);
    }
    await gradCheck(ctx, 'gpu variant expand', (x) => ops.expand(x, [3, 77]), (x) => expandRef(x, [3, 77]), [randNd([3, 1], 16)], SUMMED);
    await gradCheck(ctx, 'gpu variant slice', (x) => ops.slice(x, 1, 3, 70), (x) => sliceRef(x, 1, 3, 70), [randNd([3, 77, 3], 17)], EXACT);
    await gradCheck(ctx, 'gpu variant slice vec4', (x) => ops.slice(x, 1, 4, 8), (x) => sliceRef(x, 1, 4, 8), [randNd([2, 9, 8], 18)], EXACT);
    await gradCheck(ctx, 'gpu variant concat', (...xs) => ops.concat(xs, 1), (...xs) => concatRef(xs, 1),
      [randNd([2, 3, 5], 19), randNd([2, 1, 5], 20), randNd([2, 7, 5], 21)], EXACT);
  });
});

test('slice: edges of every axis, forward and gradient', async () => {
  const ctx = await gpu();
  const cases: [number[], number, number, number][] = [
    [[7], 0, 0, 1], [[7], 0, 6, 7], [[7], 0, 0, 7],
    [[7, 77, 3], 0, 0, 1], [[7, 77, 3], 0, 6, 7], [[7, 77, 3], 1, 0, 1], [[7, 77, 3], 1, 76, 77],
    [[7, 77, 3], 1, 5, 70], [[7, 77, 3], 2, 2, 3], [[7, 77, 3], -1, 0, 2], [[7, 77, 3], -2, 3, 4],
    [[3, 10, 8], 1, 2, 6], [[3, 10, 8], 2, 4, 8], [[129, 1], 0, 1, 128],
  ];
  for (const [shape, axis, s, e] of cases) {
    await gradCheck(ctx, `slice ${JSON.stringify(shape)} axis ${axis} [${s}, ${e})`, (x) => ops.slice(x, axis, s, e),
      (x) => sliceRef(x, axis, s, e), [randNd(shape, 9)], EXACT);
  }
});

test('slice: empty range gives an empty tensor', async () => {
  const ctx = await gpu();
  const t = tensor(ctx, new Float32Array(21), [3, 7]);
  const y = ops.slice(t, 1, 4, 4);
  assert.equal([...y.shape], [3, 0]);
  assert.is((await y.toArray()).length, 0);
  t.dispose();
  y.dispose();
});

test('concat: three tensors along the middle axis, and along the ends', async () => {
  const ctx = await gpu();
  const cases: [number[][], number][] = [
    [[[2, 3, 5], [2, 1, 5], [2, 7, 5]], 1],
    [[[2, 4, 4], [2, 8, 4], [2, 1, 4]], 1],
    [[[3, 7], [1, 7], [77, 7]], 0],
    [[[3, 1], [3, 7], [3, 3]], -1],
    [[[129], [1]], 0],
  ];
  for (const [shapes, axis] of cases) {
    await gradCheck(ctx, `concat ${JSON.stringify(shapes)} axis ${axis}`, (...xs) => ops.concat(xs, axis),
      (...xs) => concatRef(xs, axis), shapes.map((s, i) => randNd(s, 10 + i)), EXACT);
  }
  // Inputs that do not require grad get no gradient (and no slice is computed for them).
  await gradCheck(ctx, 'concat with a constant input', (...xs) => ops.concat(xs, 1),
    (...xs) => concatRef(xs, 1), [randNd([2, 3, 5], 1), randNd([2, 2, 5], 2), randNd([2, 1, 5], 3)],
    { ...EXACT, constant: [1] });
});

test('padAxis: zeros around, gradient is the slice', async () => {
  const ctx = await gpu();
  for (const [shape, axis, b, a] of [[[3, 7], 1, 2, 3], [[7, 3], 0, 0, 1], [[2, 8, 4], 1, 4, 0], [[5], 0, 1, 1]] as [number[], number, number, number][]) {
    await gradCheck(ctx, `padAxis ${JSON.stringify(shape)} axis ${axis} (${b}, ${a})`, (x) => ops.padAxis(x, axis, b, a),
      (x) => padRef(x, axis, b, a), [randNd(shape, 12)], EXACT);
  }
});

test('expand: numpy broadcast forward, summed gradient', async () => {
  const ctx = await gpu();
  const cases: [number[], number[]][] = [
    [[1], [129]], [[3, 1], [3, 7]], [[7], [2, 3, 7]], [[1, 77, 1], [3, 77, 5]], [[4], [3, 4]],
    [[2, 1, 8], [2, 5, 8]], [[3, 7], [3, 7]], [[1, 1], [1, 3]], [[8, 1], [8, 3]], [[3, 1], [3, 8]],
  ];
  for (const [from, to] of cases) {
    await gradCheck(ctx, `expand ${JSON.stringify(from)} -> ${JSON.stringify(to)}`, (x) => ops.expand(x, to),
      (x) => expandRef(x, to), [randNd(from, 13)], SUMMED);
  }
});

test('broadcastTo (reduction backward) via sum and mean gradients', async () => {
  const ctx = await gpu();
  const sumRef = (x: Nd, axis: number, keep: boolean): Nd => {
    const out = nd(x.shape.map((d, i) => (i === axis ? 1 : d)));
    each(x.shape, (c, i) => { out.data[c.reduce((o, v, k) => o * out.shape[k] + (k === axis ? 0 : v), 0)] += x.data[i]; });
    return keep ? out : nd(x.shape.filter((_, i) => i !== axis), out.data);
  };
  for (const axis of [0, 1, 2]) {
    for (const keep of [false, true]) {
      await gradCheck(ctx, `sum axis ${axis} keep ${keep}`, (x) => ops.sum(x, axis, keep),
        (x) => sumRef(x, axis, keep), [randNd([3, 7, 5], 14)], { rtol: 1e-6, atol: 1e-6, gradRtol: 1e-6, gradAtol: 1e-6 });
    }
  }
  const g = tensor(ctx, [1, 2, 3], [3]);
  const b = ops.broadcastTo(g, [3, 4], 1, false);
  assert.equal([...(await b.toArray())], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
  g.dispose();
  b.dispose();
});

test('errors name the op and the shapes', async () => {
  const ctx = await gpu();
  const x = tensor(ctx, new Float32Array(2 * 3 * 4), [2, 3, 4]);
  const y = tensor(ctx, new Float32Array(2 * 5 * 4), [2, 5, 4]);
  const v = tensor(ctx, [1], [1]);
  const z = tensor(ctx, new Float32Array(6), [2, 3]);
  const w = tensor(ctx, [1, 2, 3, 4, 5, 6], [2, 3], 'i32');
  assert.throws(() => ops.permute(x, [0, 0, 1]), /permute: \[0, 0, 1\] is not a permutation of the 3 dims of \[2, 3, 4\]/);
  assert.throws(() => ops.permute(x, [0, 1]), /permute: \[0, 1\] is not a permutation .* \[2, 3, 4\]/);
  assert.throws(() => ops.permute(x, [0, 1, 3]), /permute: .*not a permutation/);
  assert.throws(() => ops.transpose(v), /transpose: needs at least 2 dims, got \[1\]/);
  assert.throws(() => ops.slice(x, 1, 0, 4), /slice: range \[0, 4\) out of bounds for axis 1 of \[2, 3, 4\]/);
  assert.throws(() => ops.slice(x, -1, -1, 2), /slice: range \[-1, 2\) out of bounds for axis 2 of \[2, 3, 4\]/);
  assert.throws(() => ops.slice(x, 0, 2, 1), /slice: range \[2, 1\) out of bounds/);
  assert.throws(() => ops.slice(x, 3, 0, 1), /slice: axis 3 out of range for rank 3/);
  assert.throws(() => ops.concat([x, y], 2), /concat: .*every dim but axis 2: \[2, 3, 4\] f32, \[2, 5, 4\] f32/);
  assert.throws(() => ops.concat([x, z], 0), /concat: .*\[2, 3, 4\] f32, \[2, 3\] f32/);
  assert.throws(() => ops.concat([z, w], 0), /concat: .*\[2, 3\] f32, \[2, 3\] i32/);
  assert.throws(() => ops.concat([], 0), /concat: needs at least one tensor/);
  assert.throws(() => ops.expand(x, [2, 5, 4]), /expand: cannot broadcast \[2, 3, 4\] to \[2, 5, 4\]/);
  assert.throws(() => ops.expand(x, [3, 4]), /expand: cannot broadcast \[2, 3, 4\] to \[3, 4\]/);
  assert.throws(() => ops.padAxis(x, 0, -1, 0), /padAxis: padding \(-1, 0\) must be non-negative integers for \[2, 3, 4\]/);
  for (const t of [x, y, z, w, v]) t.dispose();
  assert.throws(() => ops.permute(x, [0, 1, 2]), /permute: tensor \[2, 3, 4\] f32 was used after dispose/);
});

test('no leaks: a chain of layout ops with backward frees everything', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const a = tensor(ctx, randNd([3, 4, 5], 20).data, [3, 4, 5]);
  a.requiresGrad = true;
  const loss = scope(ctx, () =>
    ops.sum(ops.expand(ops.slice(ops.concat([ops.transpose(a), ops.permute(a, [0, 2, 1])], 1), 2, 1, 3), [2, 3, 10, 2])));
  ops.backward(loss);
  const g = await a.grad!.toArray();
  // Each element of a appears twice in the concat; slice keeps axis-2 entries 1 and 2 of the
  // transposed [3, 5, 4] (a's dim 1), and expand repeats twice.
  const expected: number[] = [];
  each([3, 4, 5], (c) => expected.push(c[1] === 1 || c[1] === 2 ? 4 : 0));
  assert.equal([...g], expected);
  loss.dispose();
  a.dispose();
  assert.is(ctx.pool.liveBytes, live, 'layout chain leaked');
});

test.run();
