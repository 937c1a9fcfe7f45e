import { record } from '../autograd.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, Tensor } from '../tensor.js';
import { bytesPerElement, type DType } from '../dtype.js';
import type { BufferRange, GpuContext } from '../context.js';
import {
  binary2dKernel, binaryBroadcastKernel, binaryKernel, dimUniforms, binaryKernelVec4, castKernel, fillKernel, fillKernelVec4, reduceToKernel, unaryKernel, unaryKernelVec4, MAX_RANK,
  type BinaryOp, type BroadcastMode, type UnaryOp,
} from '../../kernels/elementwise.js';
import { reduceAxisPlan } from '../../kernels/reduce.js';
import { broadcastShapes, broadcastStrides, coalesce, ctxOf, expectDtype, run1d, sameShape } from './util.js';

/**
 * The tensor's range widened to whole vec4s, or null when its buffer has no room for that.
 * Outputs come from `empty` (their own pooled buffer, rounded to 16 bytes), so the widened tail
 * of an output is padding nobody else owns.
 */
function vec4Range(t: Tensor, op: string): BufferRange | null {
  const r = t.range(op);
  const size = Math.ceil(t.size / 4) * 4 * bytesPerElement(t.dtype);
  if (size === 0 || r.offset + size > r.buffer.size) return null;
  return { buffer: r.buffer, offset: r.offset, size };
}

/** Ranges for a vec4 dispatch over all of `ts`, or null when any of them cannot be widened. */
function vec4Ranges(op: string, ...ts: Tensor[]): BufferRange[] | null {
  const out: BufferRange[] = [];
  for (const t of ts) {
    const r = vec4Range(t, op);
    if (!r) return null;
    out.push(r);
  }
  return out;
}

function unaryRaw(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const ctx = ctxOf(op, x);
  expectDtype(op, x, 'f32');
  const y = empty(ctx, x.shape);
  const v = vec4Ranges(op, x, y);
  ctx.withOp(op, () => {
    if (v) run1d(ctx, unaryKernelVec4(op, false), Math.ceil(x.size / 4), { n: Math.ceil(x.size / 4), p0, p1 }, v);
    else run1d(ctx, unaryKernel(op, false), x.size, { n: x.size, p0, p1 }, [x.range(op), y.range(op)]);
  });
  return y;
}

function unaryGrad(op: UnaryOp, x: Tensor, g: Tensor, p0 = 0, p1 = 0): Tensor {
  const ctx = ctxOf(op, x, g);
  const y = empty(ctx, x.shape);
  const v = vec4Ranges(op, x, g, y);
  if (v) run1d(ctx, unaryKernelVec4(op, true), Math.ceil(x.size / 4), { n: Math.ceil(x.size / 4), p0, p1 }, v);
  else run1d(ctx, unaryKernel(op, true), x.size, { n: x.size, p0, p1 }, [x.range(op), g.range(op), y.range(op)]);
  return y;
}

function unary(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const y = unaryRaw(op, x, p0, p1);
  return record(op, y, [x], [x], (g, [xs]) => [unaryGrad(op, xs, g, p0, p1)]);
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const relu = (x: Tensor) => unary('relu', x);
export const square = (x: Tensor) => unary('square', x);
/** GELU; `approximate: 'tanh'` is the tanh form, 'none' the exact erf form. */
export const gelu = (x: Tensor, approximate: 'tanh' | 'none' = 'none') => unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu_erf', x);
/** CLIP's activation: x * sigmoid(1.702 x). */
export const quickGelu = (x: Tensor) => unary('quick_gelu', x);

/** x * scale + shift in one kernel. */
export const affine = (x: Tensor, scale: number, shift: number) => unary('affine', x, scale, shift);
export const addScalar = (x: Tensor, c: number) => affine(x, 1, c);
export const subScalar = (x: Tensor, c: number) => affine(x, 1, -c);
export const mulScalar = (x: Tensor, c: number) => affine(x, c, 0);
export const divScalar = (x: Tensor, c: number) => {
  if (c === 0) throw new OpError('divScalar', 'division by zero');
  return affine(x, 1 / c, 0);
};
/** c - x */
export const rsubScalar = (x: Tensor, c: number) => affine(x, -1, c);

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const ctx = ctxOf(op, a, b);
  expectDtype(op, a, 'f32');
  expectDtype(op, b, 'f32');
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const y = empty(ctx, outShape);
  ctx.withOp(op, () => {
    if (sameShape(a.shape, b.shape)) {
      const v = vec4Ranges(op, a, b, y);
      if (v) run1d(ctx, binaryKernelVec4(op), Math.ceil(y.size / 4), { n: Math.ceil(y.size / 4) }, v);
      else run1d(ctx, binaryKernel(op), y.size, { n: y.size }, [a.range(op), b.range(op), y.range(op)]);
      return;
    }
    const c = coalesce(outShape, [broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape)]);
    if (c.shape.length > MAX_RANK) {
      throw new OpError(op, `broadcast of ${shapeStr(a.shape)} and ${shapeStr(b.shape)} needs more than ${MAX_RANK} dims`);
    }
    if (binary2d(op, a, b, y, c.shape, c.strides)) return;
    const r = c.shape.length;
    run1d(ctx, binaryBroadcastKernel(op), y.size,
      { n: y.size, rank: r, ...dimUniforms('d', c.shape, 1), ...dimUniforms('sa', c.strides[0], 0), ...dimUniforms('sb', c.strides[1], 0) },
      [a.range(op), b.range(op), y.range(op)]);
  });
  return y;
}

/** The 2-D broadcast mode of coalesced strides over [rows, cols] (or [n]), or null. */
function modeOf(shape: readonly number[], st: readonly number[]): BroadcastMode | null {
  if (shape.length === 1) return st[0] === 1 ? 'full' : 'scalar';
  const [, cols] = shape;
  if (st[0] === cols && st[1] === 1) return 'full';
  if (st[0] === 0 && st[1] === 1) return 'row';
  if (st[0] === 1 && st[1] === 0) return 'col';
  if (st[0] === 0 && st[1] === 0) return 'scalar';
  return null;
}

/** Dispatches a broadcast that coalesces to at most 2 dims through the cheap 2-D kernel. */
function binary2d(op: BinaryOp, a: Tensor, b: Tensor, y: Tensor, shape: readonly number[], strides: readonly number[][]): boolean {
  if (shape.length > 2) return false;
  const ma = modeOf(shape, strides[0]);
  const mb = modeOf(shape, strides[1]);
  if (!ma || !mb) return false;
  const ctx = y.ctx;
  const cols = shape.length === 1 ? shape[0] : shape[1];
  // vec4 needs whole vectors per row (a 1-D operand is one padded row). Wide operands are
  // read as vectors; splatted ('col', 'scalar') ones are bound as they are.
  const wide = (m: BroadcastMode) => m === 'full' || m === 'row';
  if (cols % 4 === 0 || shape.length === 1) {
    const ra = wide(ma) ? vec4Range(a, op) : a.range(op);
    const rb = wide(mb) ? vec4Range(b, op) : b.range(op);
    const ry = vec4Range(y, op);
    if (ra && rb && ry) {
      const n4 = Math.ceil(y.size / 4);
      run1d(ctx, binary2dKernel(op, ma, mb, true), n4, { n: n4, cols }, [ra, rb, ry]);
      return true;
    }
  }
  run1d(ctx, binary2dKernel(op, ma, mb, false), y.size, { n: y.size, cols }, [a.range(op), b.range(op), y.range(op)]);
  return true;
}

/**
 * When the reduced dims of a sumTo form one contiguous run (a bias row [R, C] -> [C], a
 * per-row sum [R, C] -> [R, 1], or [A, R, C] -> [A, 1, C]), the [outer, r, inner] view of it:
 * the axis-reduction kernel then needs no per-element index decomposition.
 */
function singleReducedRun(od: readonly number[], rd: readonly number[]): { outer: number; r: number; inner: number } | null {
  const reduced = rd.map((d) => d > 1);
  const first = reduced.indexOf(true);
  const last = reduced.lastIndexOf(true);
  if (first < 0 || reduced.slice(first, last + 1).some((v) => !v)) return null;
  const prod = (a: readonly number[]) => a.reduce((p, q) => p * q, 1);
  return { outer: prod(od.slice(0, first)), r: prod(rd.slice(first, last + 1)), inner: prod(od.slice(last + 1)) };
}

/**
 * Sums `g` down to `shape` (the inverse of broadcasting `shape` up to g's shape). Returns an
 * alias when nothing is reduced.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g.alias();
  const ctx = g.ctx;
  const rank = g.rank;
  const target = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  // Reduced dims keep their stride; output coordinates and reduced coordinates both walk them.
  const strides: number[] = [];
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    s *= g.shape[i];
  }
  const od: number[] = [];
  const rd: number[] = [];
  const st: number[] = [];
  let r = 1;
  for (let i = 0; i < rank; i++) {
    if (g.shape[i] === 1 && target[i] === 1) continue;
    const reduced = target[i] === 1;
    od.push(reduced ? 1 : g.shape[i]);
    rd.push(reduced ? g.shape[i] : 1);
    st.push(strides[i]);
    if (reduced) r *= g.shape[i];
  }
  const y = empty(ctx, shape);
  const axis = singleReducedRun(od, rd);
  if (axis) {
    const plan = reduceAxisPlan('sum', axis.outer, axis.r, axis.inner);
    ctx.withOp('sumTo', () => run1d(ctx, plan.kernel, plan.n, plan.uniforms, [g.range('sumTo'), y.range('sumTo')]));
    return y;
  }
  if (od.length > MAX_RANK) {
    y.dispose();
    throw new OpError('sumTo', `${shapeStr(g.shape)} -> ${shapeStr(shape)} needs more than ${MAX_RANK} dims`);
  }
  ctx.withOp('sumTo', () => run1d(ctx, reduceToKernel(), y.size,
    { n: y.size, rank: od.length, r, ...dimUniforms('od', od, 1), ...dimUniforms('rd', rd, 1), ...dimUniforms('st', st, 0) },
    [g.range('sumTo'), y.range('sumTo')]));
  return y;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const y = binaryRaw('add', a, b);
  return record('add', y, [a, b], [], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const y = binaryRaw('sub', a, b);
  return record('sub', y, [a, b], [], (g) => [sumTo(g, a.shape), unaryRaw('neg', sumTo(g, b.shape))]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const y = binaryRaw('mul', a, b);
  return record('mul', y, [a, b], [a, b], (g, [as, bs]) => {
    const out: (Tensor | null)[] = [null, null];
    if (a.requiresGrad) out[0] = sumTo(binaryRaw('mul', g, bs), a.shape);
    if (b.requiresGrad) out[1] = sumTo(binaryRaw('mul', g, as), b.shape);
    return out;
  });
}

export function div(a: Tensor, b: Tensor): Tensor {
  const y = binaryRaw('div', a, b);
  return record('div', y, [a, b], [a, b], (g, [as, bs]) => {
    const out: (Tensor | null)[] = [null, null];
    const gOverB = binaryRaw('div', g, bs);
    if (a.requiresGrad) out[0] = sumTo(gOverB, a.shape);
    // d/db (a / b) = -a / b^2 = -(g / b) * (a / b)
    if (b.requiresGrad) out[1] = sumTo(unaryRaw('neg', binaryRaw('mul', gOverB, binaryRaw('div', as, bs))), b.shape);
    return out;
  });
}

export function fill(ctx: GpuContext, shape: readonly number[], value: number, dtype: Exclude<DType, 'f16'> = 'f32'): Tensor {
  const y = empty(ctx, shape, dtype);
  const v = vec4Range(y, 'fill');
  ctx.withOp('fill', () => {
    if (v) run1d(ctx, fillKernelVec4(dtype), Math.ceil(y.size / 4), { n: Math.ceil(y.size / 4), v: value }, [v]);
    else run1d(ctx, fillKernel(dtype), y.size, { n: y.size, v: value }, [y.range('fill')]);
  });
  return y;
}

export const zeros = (ctx: GpuContext, shape: readonly number[], dtype: Exclude<DType, 'f16'> = 'f32') => fill(ctx, shape, 0, dtype);
export const ones = (ctx: GpuContext, shape: readonly number[]) => fill(ctx, shape, 1);

/** Converts dtype (f16 needs the shader-f16 feature). Not differentiable across int dtypes. */
export function cast(x: Tensor, dtype: DType): Tensor {
  const ctx = ctxOf('cast', x);
  if (x.dtype === dtype) return x.alias();
  if ((x.dtype === 'f16' || dtype === 'f16') && !ctx.hasFeature('shader-f16')) {
    throw new OpError('cast', `f16 needs the 'shader-f16' feature, which this adapter lacks`);
  }
  const y = empty(ctx, x.shape, dtype);
  ctx.withOp('cast', () => run1d(ctx, castKernel(x.dtype, dtype), x.size, { n: x.size }, [x.range('cast'), y.range('cast')]));
  if (x.dtype === 'f32' && dtype === 'f16') return record('cast', y, [x], [], (g) => [cast(g, 'f32')]);
  if (x.dtype === 'f16' && dtype === 'f32') return record('cast', y, [x], [], (g) => [cast(g, 'f16')]);
  return y;
}
