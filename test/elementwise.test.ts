import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { gradCheck } from './helpers/check.js';
import { nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { tensor, type Tensor } from '../src/engine/tensor.js';

const map = (x: Nd, f: (v: number) => number): Nd => nd(x.shape, Array.from(x.data, f));
const erf = (x: number): number => {
  // float64 erf by series / continued fraction is overkill: use a high-precision rational (W. J. Cody) via Math.
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : -y;
};
const sig = (v: number) => 1 / (1 + Math.exp(-v));

const UNARY: [string, (x: Tensor) => Tensor, (v: number) => number, [number, number]][] = [
  ['neg', ops.neg, (v) => -v, [-2, 2]],
  ['exp', ops.exp, Math.exp, [-2, 2]],
  ['log', ops.log, Math.log, [0.5, 3]],
  ['sqrt', ops.sqrt, Math.sqrt, [0.5, 3]],
  ['rsqrt', ops.rsqrt, (v) => 1 / Math.sqrt(v), [0.5, 3]],
  ['tanh', ops.tanh, Math.tanh, [-3, 3]],
  ['sigmoid', ops.sigmoid, sig, [-4, 4]],
  ['square', ops.square, (v) => v * v, [-2, 2]],
  ['gelu_tanh', (x) => ops.gelu(x, 'tanh'), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), [-3, 3]],
  ['gelu_erf', (x) => ops.gelu(x), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), [-3, 3]],
  ['quick_gelu', ops.quickGelu, (v) => v * sig(1.702 * v), [-3, 3]],
  ['affine', (x) => ops.affine(x, -1.5, 0.25), (v) => v * -1.5 + 0.25, [-2, 2]],
];

for (const [name, f, r, [lo, hi]] of UNARY) {
  test(`${name}: forward and gradient on odd shapes`, async () => {
    const ctx = await gpu();
    for (const shape of [[1], [3, 7], [77], [2, 129]]) {
      await gradCheck(ctx, `${name} ${JSON.stringify(shape)}`, f, (x) => map(x, r), [randNd(shape, 11, lo, hi)], { rtol: 2e-6, atol: 2e-6 });
    }
  });
}

const bin = (a: Nd, b: Nd, f: (x: number, y: number) => number): Nd => {
  const rank = Math.max(a.shape.length, b.shape.length);
  const pa = [...Array(rank - a.shape.length).fill(1), ...a.shape];
  const pb = [...Array(rank - b.shape.length).fill(1), ...b.shape];
  const out = pa.map((d, i) => Math.max(d, pb[i]));
  const res = nd(out);
  const idx = new Array(rank).fill(0);
  for (let i = 0; i < res.data.length; i++) {
    let rem = i;
    for (let k = rank - 1; k >= 0; k--) { idx[k] = rem % out[k]; rem = Math.floor(rem / out[k]); }
    let ia = 0, ib = 0;
    for (let k = 0; k < rank; k++) {
      ia = ia * pa[k] + (pa[k] === 1 ? 0 : idx[k]);
      ib = ib * pb[k] + (pb[k] === 1 ? 0 : idx[k]);
    }
    res.data[i] = f(a.data[ia], b.data[ib]);
  }
  return res;
};

const BINARY: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
  ['add', ops.add, (x, y) => x + y],
  ['sub', ops.sub, (x, y) => x - y],
  ['mul', ops.mul, (x, y) => x * y],
  ['div', ops.div, (x, y) => x / y],
];

const SHAPES: [number[], number[]][] = [
  [[3, 7], [3, 7]],
  [[2, 3, 7], [7]],
  [[77, 1], [1, 5]],
  [[1], [129]],
  [[2, 1, 3, 1], [5, 1, 4]],
];

for (const [name, f, r] of BINARY) {
  test(`${name}: broadcasting forward and gradient`, async () => {
    const ctx = await gpu();
    for (const [sa, sb] of SHAPES) {
      await gradCheck(ctx, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, f, (a, b) => bin(a, b, r),
        [randNd(sa, 3, 0.5, 2), randNd(sb, 4, 0.5, 2)], { rtol: 2e-6, atol: 2e-6 });
    }
  });
}

test('broadcast errors name the op and both shapes', async () => {
  const ctx = await gpu();
  const a = tensor(ctx, new Float32Array(6), [2, 3]);
  const b = tensor(ctx, new Float32Array(4), [4]);
  assert.throws(() => ops.add(a, b), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  const i = tensor(ctx, [1, 2], [2], 'i32');
  assert.throws(() => ops.exp(i), /exp: expected f32, got i32 tensor \[2\]/);
  a.dispose();
  assert.throws(() => ops.mul(a, a), /mul: tensor \[2, 3\] f32 was used after dispose/);
  b.dispose();
  i.dispose();
});

test.run();
