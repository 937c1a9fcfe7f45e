import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose, gradCheck } from './helpers/check.js';
import { nd, randNd, type Nd } from './helpers/ref.js';
import {
  add, backward, checkpoint, enableGrad, inference, isGradEnabled, linear, matmul, mean, noGrad, scope, square, sum, tanh, tensor, type Tensor,
} from '../src/engine/index.js';

/** A residual block y = x + tanh(x W1^T) W2^T, its weights closed over (as a model's are). */
function block(w1: Tensor, w2: Tensor) {
  return (x: Tensor) => scope(x.ctx, () => linear(tanh(linear(x, w1)), w2, undefined, 'none', { addend: x }));
}

/** The same block in float64 on the CPU: x [n, d], w1 [h, d], w2 [d, h]. */
function blockRef(x: Nd, w1: Nd, w2: Nd): Nd {
  const [n, d] = x.shape;
  const h = w1.shape[0];
  const out = nd([n, d]);
  for (let i = 0; i < n; i++) {
    const t = new Float64Array(h);
    for (let j = 0; j < h; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x.data[i * d + k] * w1.data[j * d + k];
      t[j] = Math.tanh(s);
    }
    for (let k = 0; k < d; k++) {
      let s = x.data[i * d + k];
      for (let j = 0; j < h; j++) s += t[j] * w2.data[k * h + j];
      out.data[i * d + k] = s;
    }
  }
  return out;
}

function param(ctx: Awaited<ReturnType<typeof gpu>>, x: Nd): Tensor {
  const t = tensor(ctx, x.data, x.shape);
  t.requiresGrad = true;
  return t;
}

test('a forward with recording on and no backward leaks nothing once its scope ends', async () => {
  const ctx = await gpu();
  const w1 = param(ctx, randNd([24, 13], 1));
  const w2 = param(ctx, randNd([13, 24], 2));
  const x = tensor(ctx, randNd([7, 13], 3).data, [7, 13]);
  const live = ctx.pool.liveBytes;
  // As an evaluation written without inference(): the graph is recorded, then dropped unused.
  const score = scope(ctx, () => {
    const y = block(w1, w2)(block(w1, w2)(x));
    assert.ok(y.requiresGrad && y.node, 'the forward was recorded');
    return mean(square(y));
  });
  assert.ok(ctx.pool.liveBytes > live);
  const value = await score.item();
  assert.ok(Number.isFinite(value));
  score.dispose();
  assert.is(ctx.pool.liveBytes, live, `${ctx.pool.liveBytes - live} bytes still live: the unused graph pins its saved tensors`);
  // And a forward whose result is never returned from its scope.
  scope(ctx, () => { block(w1, w2)(x); });
  assert.is(ctx.pool.liveBytes, live);
  for (const t of [w1, w2, x]) t.dispose();
});

test('an exception mid-forward frees the graph recorded so far', async () => {
  const ctx = await gpu();
  const w1 = param(ctx, randNd([24, 13], 4));
  const w2 = param(ctx, randNd([13, 24], 5));
  const x = tensor(ctx, randNd([7, 13], 6).data, [7, 13]);
  const live = ctx.pool.liveBytes;
  assert.throws(() => scope(ctx, () => {
    const h = block(w1, w2)(block(w1, w2)(x));
    matmul(h, w1); // [7,13] x [24,13] without transB: the shapes do not fit
  }), /matmul/);
  assert.is(ctx.pool.liveBytes, live, `${ctx.pool.liveBytes - live} bytes still live after the exception`);
  for (const t of [w1, w2, x]) t.dispose();
});

test('inference(ctx, fn) records nothing and frees what it does not return; enableGrad records inside noGrad', async () => {
  const ctx = await gpu();
  const w1 = param(ctx, randNd([8, 5], 7));
  const w2 = param(ctx, randNd([5, 8], 8));
  const x = tensor(ctx, randNd([3, 5], 9).data, [3, 5]);
  const live = ctx.pool.liveBytes;
  const y = inference(ctx, () => block(w1, w2)(x));
  assert.not.ok(y.requiresGrad);
  assert.is(y.node, null);
  y.dispose();
  assert.is(ctx.pool.liveBytes, live);
  noGrad(() => {
    assert.not.ok(isGradEnabled());
    const r = enableGrad(() => block(w1, w2)(x));
    assert.ok(r.node, 'enableGrad records inside noGrad');
    r.dispose();
    assert.not.ok(isGradEnabled());
  });
  assert.is(ctx.pool.liveBytes, live);
  assert.throws(() => noGrad(async () => 1), /Promise/);
  for (const t of [w1, w2, x]) t.dispose();
});

test('checkpoint: gradients match float64 finite differences, for inputs and for the parameters the block closes over', async () => {
  const ctx = await gpu();
  // 13 and 21 are not multiples of any matmul tile.
  const inputs = [randNd([5, 13], 10), randNd([21, 13], 11, -0.5, 0.5), randNd([13, 21], 12, -0.5, 0.5)];
  await gradCheck(ctx, 'checkpoint(block)', (x, w1, w2) => checkpoint(block(w1, w2), [x]), blockRef, inputs, { gradRtol: 2e-3, gradAtol: 2e-4 });
  // Two blocks in a row, the first input a constant (as token embeddings under LoRA are).
  const two = (x: Nd, w1: Nd, w2: Nd) => blockRef(blockRef(x, w1, w2), w1, w2);
  await gradCheck(ctx, 'checkpoint x2', (x, w1, w2) => scope(ctx, () => checkpoint(block(w1, w2), [checkpoint(block(w1, w2), [x])])), two, inputs, { constant: [0], gradRtol: 2e-3, gradAtol: 2e-4 });
});

test('checkpoint gives the plain graph\'s loss and gradients, and a lower peak over a stack of blocks', async () => {
  const ctx = await gpu();
  const depth = 6;
  const ws: [Tensor, Tensor][] = [];
  for (let l = 0; l < depth; l++) ws.push([param(ctx, randNd([256, 64], 20 + l, -0.1, 0.1)), param(ctx, randNd([64, 256], 40 + l, -0.1, 0.1))]);
  const x = tensor(ctx, randNd([300, 64], 60).data, [300, 64]);
  const run = async (recompute: boolean) => {
    const live = ctx.pool.liveBytes;
    ctx.pool.resetPeak();
    const loss = scope(ctx, () => {
      let h = x;
      for (const [w1, w2] of ws) h = recompute ? checkpoint(block(w1, w2), [h]) : block(w1, w2)(h);
      return mean(square(h));
    });
    backward(loss);
    const value = await loss.item();
    loss.dispose();
    const peak = ctx.pool.peakBytes - live;
    const grads: number[][] = [];
    for (const [w1, w2] of ws) for (const w of [w1, w2]) {
      grads.push([...await w.grad!.toArray()]);
      w.grad!.dispose();
      w.grad = null;
    }
    assert.is(ctx.pool.liveBytes, live, `recompute=${recompute}: ${ctx.pool.liveBytes - live} bytes leaked`);
    return { value, grads, peak };
  };
  const plain = await run(false);
  const recomputed = await run(true);
  assertClose('loss', [recomputed.value], [plain.value], 1e-6, 0);
  for (let i = 0; i < plain.grads.length; i++) assertClose(`gradient ${i}`, recomputed.grads[i], plain.grads[i], 1e-6, 1e-9);
  assert.ok(recomputed.peak < 0.6 * plain.peak, `peak with checkpoint ${recomputed.peak} bytes vs ${plain.peak} without`);
  for (const [w1, w2] of ws) { w1.dispose(); w2.dispose(); }
  x.dispose();
});

test('checkpoint outside grad mode, or over a block nothing in which needs a gradient, is a plain call', async () => {
  const ctx = await gpu();
  const w1 = tensor(ctx, randNd([8, 5], 13).data, [8, 5]);
  const w2 = tensor(ctx, randNd([5, 8], 14).data, [5, 8]);
  const x = tensor(ctx, randNd([3, 5], 15).data, [3, 5]);
  const live = ctx.pool.liveBytes;
  const a = checkpoint(block(w1, w2), [x]);
  assert.is(a.node, null);
  const b = inference(ctx, () => block(w1, w2)(x));
  assertClose('same values', await a.toArray(), await b.toArray(), 0, 0);
  a.dispose();
  b.dispose();
  assert.is(ctx.pool.liveBytes, live);
  for (const t of [w1, w2, x]) t.dispose();
});

test('a gradient gathered from other consumers rides in a matmul\'s epilogue: same gradients (float64 check), fewer dispatches', async () => {
  const ctx = await gpu();
  // x feeds three products (as h feeds q, k and v): its gradient is gathered from all three.
  const three = (x: Tensor, w1: Tensor, w2: Tensor) => scope(ctx, () => add(add(linear(x, w1), linear(x, w2)), linear(tanh(x), w1)));
  const ref3 = (x: Nd, w1: Nd, w2: Nd) => {
    const lin = (a: Nd, w: Nd) => {
      const [n, d] = a.shape;
      const o = w.shape[0];
      const out = nd([n, o]);
      for (let i = 0; i < n; i++) for (let j = 0; j < o; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += a.data[i * d + k] * w.data[j * d + k];
        out.data[i * o + j] = s;
      }
      return out;
    };
    const t = nd(x.shape, x.data.map(Math.tanh));
    const [a, b, c] = [lin(x, w1), lin(x, w2), lin(t, w1)];
    return nd(a.shape, a.data.map((v, i) => v + b.data[i] + c.data[i]));
  };
  const inputs = [randNd([7, 13], 30), randNd([9, 13], 31, -0.5, 0.5), randNd([9, 13], 32, -0.5, 0.5)];
  await gradCheck(ctx, 'x into three products', three, ref3, inputs, { gradRtol: 2e-3, gradAtol: 2e-4 });
  // x @ x^T: the same input twice in one node is not folded (it would be counted twice).
  const square = (x: Tensor) => scope(ctx, () => add(matmul(x, x, { transB: true }), matmul(x, x, { transB: true })));
  const refSquare = (x: Nd) => {
    const [n, d] = x.shape;
    const out = nd([n, n]);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x.data[i * d + k] * x.data[j * d + k];
      out.data[i * n + j] = 2 * s;
    }
    return out;
  };
  await gradCheck(ctx, 'x @ x^T twice', square, refSquare, [randNd([5, 6], 33)], { gradRtol: 2e-3, gradAtol: 2e-4 });
  // Dispatches of the backward: each extra matmul consumer of x costs no add.
  const x = tensor(ctx, inputs[0].data, [7, 13]);
  x.requiresGrad = true;
  const ws = [1, 2, 3, 4].map((k) => tensor(ctx, randNd([9, 13], 40 + k).data, [9, 13]));
  const loss = scope(ctx, () => sum(ws.map((w) => linear(x, w)).reduce((a, b) => add(a, b))));
  const before = ctx.dispatches;
  backward(loss);
  const used = ctx.dispatches - before;
  // Per product: dX (one matmul, the gathered gradient in its epilogue); three adds of the
  // forward sum pass their gradient through; the sum's own backward fills the seed.
  assert.ok(used <= 4 + 2, `backward used ${used} dispatches for four products into one input`);
  for (const t of [x, loss, ...ws]) t.dispose();
});

test.run();
