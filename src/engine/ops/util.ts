import type { GpuContext, BufferRange } from '../context.js';
import type { DType } from '../dtype.js';
import { OpError, shapeStr } from '../errors.js';
import type { Kernel, Uniforms } from '../../kernels/kernel.js';
import { Tensor } from '../tensor.js';

/** The context shared by an op's tensor arguments; they must all live on one device. */
export function ctxOf(op: string, ...ts: Tensor[]): GpuContext {
  const ctx = ts[0].ctx;
  for (const t of ts) {
    t.storageFor(op);
    if (t.ctx !== ctx) throw new OpError(op, 'tensors belong to different GPU contexts');
  }
  return ctx;
}

export function expectDtype(op: string, t: Tensor, ...allowed: DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new OpError(op, `expected ${allowed.join(' or ')}, got ${t.dtype} tensor ${shapeStr(t.shape)}`);
  }
}

export function expectRank(op: string, t: Tensor, min: number, max = min): void {
  if (t.rank < min || t.rank > max) {
    const want = min === max ? `${min}` : `${min}..${max}`;
    throw new OpError(op, `expected a rank-${want} tensor, got ${shapeStr(t.shape)}`);
  }
}

/** Normalises a possibly negative axis. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new OpError(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Dispatches a 1-D kernel over n invocations. */
export function run1d<F extends string>(ctx: GpuContext, kernel: Kernel<F>, n: number, uniforms: Uniforms<F>, ranges: readonly BufferRange[]): void {
  const wg = kernel.workgroupSize ?? 256;
  ctx.dispatch(kernel, uniforms, ranges, ctx.grid1d(Math.ceil(n / wg)));
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy-style broadcast of two shapes, or a clear error naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new OpError(op, `shapes ${shapeStr(a)} and ${shapeStr(b)} cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Row-major strides of `shape` laid out against `outShape` (0 where broadcast). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const oi = rank - shape.length + i;
    strides[oi] = shape[i] === 1 && outShape[oi] !== 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

export function pad(values: readonly number[], len: number, fill = 1): number[] {
  const out = values.slice();
  while (out.length < len) out.push(fill);
  return out;
}

/**
 * Drops dims of extent 1 and merges adjacent dims that are contiguous for every operand, so
 * broadcast kernels stay within their maximum rank.
 */
export function coalesce(shape: readonly number[], strides: readonly number[][]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k][last] === s[i] * shape[i])) {
      dims[last] *= shape[i];
      strides.forEach((s, k) => (st[k][last] = s[i]));
    } else {
      dims.push(shape[i]);
      strides.forEach((s, k) => st[k].push(s[i]));
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    st.forEach((s) => s.push(1));
  }
  return { shape: dims, strides: st };
}
