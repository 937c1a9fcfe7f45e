import * as assert from 'uvu/assert';
import type { GpuContext } from '../../src/engine/context.js';
import { scope, tensor, type Tensor } from '../../src/engine/tensor.js';
import { backward, mul, sum as sumAll } from '../../src/engine/ops/index.js';
import { compare, f32, nd, randNd, type Nd } from './ref.js';

/** What `fn` returned, with the names of the kernels it dispatched on `ctx`, in order. */
export async function dispatchedKernels<T>(ctx: GpuContext, fn: () => Promise<T>): Promise<{ value: T; kernels: string[] }> {
  const kernels: string[] = [];
  type Dispatch = GpuContext['dispatch'];
  const self = ctx as unknown as { dispatch: Dispatch };
  const own = Object.prototype.hasOwnProperty.call(ctx, 'dispatch');
  const prev = self.dispatch;
  const inner = prev.bind(ctx);
  self.dispatch = ((k, u, s, w) => {
    kernels.push(k.name);
    inner(k, u, s, w);
  }) as Dispatch;
  try {
    return { value: await fn(), kernels };
  } finally {
    if (own) self.dispatch = prev;
    else delete (self as { dispatch?: Dispatch }).dispatch;
  }
}

/** Asserts closeness with a message that names what was compared and where it failed. */
export function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): void {
  const r = compare(actual, expected, rtol, atol);
  if (!r.ok) {
    assert.unreachable(
      `${what}: mismatch at [${r.worst}]: got ${actual[r.worst]}, expected ${expected[r.worst]} ` +
        `(max abs ${r.maxAbs.toExponential(2)}, max rel ${r.maxRel.toExponential(2)}, rtol ${rtol}, atol ${atol})`,
    );
  }
}

/**
 * |got - want| <= tol * max|want| elementwise: relative to the tensor's scale, so entries near
 * zero do not demand more than float32 round-off can give. NaN anywhere fails.
 */
export function assertRel(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  assert.is(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  assert.ok(worst <= tol * scale, `${what}: max error ${worst.toExponential(2)} at ${at} (got ${got[at]}, want ${want[at]}) exceeds ${tol} x scale ${scale.toExponential(2)}`);
}

export function toGpu(ctx: GpuContext, x: Nd, requiresGrad = false): Tensor {
  const t = tensor(ctx, x.data, x.shape);
  t.requiresGrad = requiresGrad;
  return t;
}

export interface GradCheckOptions {
  /** Tolerances of the forward comparison. */
  rtol?: number;
  atol?: number;
  /** Tolerances of the gradient comparison. */
  gradRtol?: number;
  gradAtol?: number;
  /** Finite-difference step (in float64 on the reference). */
  eps?: number;
  /** Inputs (by index) that are not differentiated (indices, masks). */
  constant?: number[];
  seed?: number;
}

/**
 * Checks an op's forward against a float64 reference, and its backward against central
 * finite differences of that reference: L = sum(w * f(x)) with random weights w, so every
 * output element's gradient path is exercised.
 */
export async function gradCheck(
  ctx: GpuContext,
  name: string,
  gpuFn: (...xs: Tensor[]) => Tensor,
  refFn: (...xs: Nd[]) => Nd,
  inputs: Nd[],
  opts: GradCheckOptions = {},
): Promise<void> {
  const { rtol = 1e-5, atol = 1e-5, gradRtol = 1e-3, gradAtol = 1e-4, eps = 1e-6, constant = [], seed = 7 } = opts;
  const xs = inputs.map(f32);
  const live = ctx.pool.liveBytes;
  const expected = refFn(...xs);
  const w = f32(randNd(expected.shape, seed, -1, 1));

  const ts = xs.map((x, i) => toGpu(ctx, x, !constant.includes(i)));
  const y = gpuFn(...ts);
  assert.equal([...y.shape], expected.shape, `${name}: output shape`);
  assertClose(`${name} forward`, await y.toArray(), expected.data, rtol, atol);

  const wt = toGpu(ctx, w);
  const loss = scope(ctx, () => sumAll(mul(y, wt)));
  backward(loss);
  for (let i = 0; i < xs.length; i++) {
    if (constant.includes(i)) continue;
    const g = ts[i].grad;
    assert.ok(g, `${name}: input ${i} got no gradient`);
    const numeric = nd(xs[i].shape);
    const x = xs[i];
    for (let k = 0; k < x.data.length; k++) {
      const orig = x.data[k];
      x.data[k] = orig + eps;
      const fp = dot(refFn(...xs).data, w.data);
      x.data[k] = orig - eps;
      const fm = dot(refFn(...xs).data, w.data);
      x.data[k] = orig;
      numeric.data[k] = (fp - fm) / (2 * eps);
    }
    assertClose(`${name} grad of input ${i} ${JSON.stringify(x.shape)}`, await g!.toArray(), numeric.data, gradRtol, gradAtol);
  }
  for (const t of [...ts, y, wt, loss]) t.dispose();
  assert.is(ctx.pool.liveBytes, live, `${name}: GPU memory leaked (${ctx.pool.liveBytes - live} bytes live after dispose)`);
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
