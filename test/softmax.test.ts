import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import * as ops from '../src/engine/ops/index.js';
import { tensor } from '../src/engine/tensor.js';
import type { RowVariant } from '../src/kernels/reduce.js';

/** float64 softmax / log-softmax over the last dim. */
function refSoftmax(x: Nd, log: boolean): Nd {
  const d = x.shape[x.shape.length - 1];
  const y = nd(x.shape);
  for (let r = 0; r < x.data.length / d; r++) {
    let m = -Infinity;
    for (let j = 0; j < d; j++) m = Math.max(m, x.data[r * d + j]);
    let s = 0;
    for (let j = 0; j < d; j++) s += Math.exp(x.data[r * d + j] - m);
    for (let j = 0; j < d; j++) {
      const v = x.data[r * d + j] - m;
      y.data[r * d + j] = log ? v - Math.log(s) : Math.exp(v) / s;
    }
  }
  return y;
}

/** float64 input gradient of softmax / log-softmax for upstream gradient g. */
function refBackward(x: Nd, g: Nd, log: boolean): Nd {
  const d = x.shape[x.shape.length - 1];
  const y = refSoftmax(x, false);
  const dx = nd(x.shape);
  for (let r = 0; r < x.data.length / d; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += log ? g.data[r * d + j] : g.data[r * d + j] * y.data[r * d + j];
    for (let j = 0; j < d; j++) {
      const k = r * d + j;
      dx.data[k] = log ? g.data[k] - y.data[k] * s : y.data[k] * (g.data[k] - s);
    }
  }
  return dx;
}

const KINDS: [string, typeof ops.softmax, boolean][] = [
  ['softmax', ops.softmax, false],
  ['logSoftmax', ops.logSoftmax, true],
];
const VARIANTS: RowVariant[] = ['lane', 'workgroup'];

// Finite differences cost O(n^2) on the host: small shapes, including vec4 rows (d % 4 == 0).
const GRAD_SHAPES = [[1, 1], [3, 7], [77, 3], [2, 77], [1, 129], [2, 2, 8], [1, 513]];
// Forward and analytic backward on larger odd shapes.
// 300 rows: the lane variant switches to 64-wide workgroups at 256 rows.
const BIG_SHAPES = [[129, 1], [77, 7], [3, 77], [129, 129], [3, 513], [129, 516], [5, 1, 2048], [300, 13], [2, 150, 8]];

for (const variant of VARIANTS) {
  for (const [name, f, log] of KINDS) {
    test(`${name} (${variant}): forward and gradient check on odd shapes`, async () => {
      const ctx = await gpu();
      ctx.setTuning({ rows: variant });
      try {
        for (const shape of GRAD_SHAPES) {
          await gradCheck(ctx, `${name} ${JSON.stringify(shape)}`, f, (x) => refSoftmax(x, log), [randNd(shape, 5, -3, 3)],
            { rtol: 2e-5, atol: 2e-6, gradRtol: 1e-3, gradAtol: 2e-5 });
        }
      } finally {
        ctx.setTuning({});
      }
    });

    test(`${name} (${variant}): larger rows against float64 forward and backward`, async () => {
      const ctx = await gpu();
      ctx.setTuning({ rows: variant });
      try {
        for (const shape of BIG_SHAPES) {
          const x = f32(randNd(shape, 9, -4, 4));
          const g = f32(randNd(shape, 10, -1, 1));
          const xt = toGpu(ctx, x, true);
          const gt = toGpu(ctx, g);
          const y = f(xt);
          assertClose(`${name} ${JSON.stringify(shape)} forward`, await y.toArray(), refSoftmax(x, log).data, 2e-5, 2e-6);
          ops.backward(y, { grad: gt });
          assertClose(`${name} ${JSON.stringify(shape)} backward`, await xt.grad!.toArray(), refBackward(x, g, log).data, 1e-4, 2e-6);
          for (const t of [xt, gt, y]) t.dispose();
        }
      } finally {
        ctx.setTuning({});
      }
    });
  }
}

test('softmax is stable for large and very negative logits', async () => {
  const ctx = await gpu();
  for (const variant of VARIANTS) {
    ctx.setTuning({ rows: variant });
    // Rows: huge offsets (naive exp overflows), one dominant entry, and -inf (masked) entries.
    const rows = [
      [1000, 1001, 1002, 999, 1000.5, 1003, 998],
      [-1000, -1001, -1002, -999, -1000.5, -1003, -998],
      [0, 0, 0, 0, 0, 0, 80],
      [1, -Infinity, 2, -Infinity, 3, -1e30, 0],
    ];
    const x = nd([4, 7], rows.flat());
    const xt = tensor(ctx, x.data, x.shape);
    for (const [name, f, log] of KINDS) {
      const y = f(xt);
      const got = await y.toArray();
      const want = refSoftmax(x, log);
      assertClose(`${name} (${variant}) extreme rows`, got, want.data, 2e-5, 2e-6);
      y.dispose();
    }
    xt.dispose();
  }
  ctx.setTuning({});
});

test('softmax: empty rows, rank-0 and dtype errors', async () => {
  const ctx = await gpu();
  const z = tensor(ctx, new Float32Array(0), [0, 5]);
  const y = ops.softmax(z);
  assert.equal([...y.shape], [0, 5]);
  y.dispose();
  z.dispose();
  const s = tensor(ctx, [1], []);
  assert.throws(() => ops.softmax(s), /softmax: expected a tensor of rank >= 1, got \[\]/);
  s.dispose();
  const i = tensor(ctx, [1, 2], [2], 'i32');
  assert.throws(() => ops.logSoftmax(i), /logSoftmax: expected f32, got i32 tensor \[2\]/);
  i.dispose();
});

test.run();
