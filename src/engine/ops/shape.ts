import { record } from '../autograd.js';
import type { GpuContext } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, scope, sizeOf, type Tensor } from '../tensor.js';
import { blockCopyKernel, padKernel, stridedArgs, stridedCopyKernel, LAYOUT_MAX_RANK } from '../../kernels/layout.js';
import { broadcastStrides, coalesce, ctxOf, expectDtype, normAxis, run1d, sameShape } from './util.js';
import { sumTo } from './elementwise.js';

/** Same storage, new shape (free). One dim may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  ctxOf('reshape', x);
  const s = shape.slice();
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = sizeOf(s.filter((_, i) => i !== neg));
    s[neg] = rest === 0 ? 0 : x.size / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(s) !== x.size) {
    throw new OpError('reshape', `cannot reshape ${shapeStr(x.shape)} (${x.size} elements) to ${shapeStr(shape)}`);
  }
  const y = x.alias(s);
  return record('reshape', y, [x], [], (g) => [g.alias(x.shape)]);
}

/** Layout kernels copy 32-bit words; f16 would need a 16-bit variant nothing uses yet. */
function expectWord(op: string, ...ts: Tensor[]): void {
  for (const t of ts) expectDtype(op, t, 'f32', 'i32', 'u32');
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const st: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

/**
 * y (row-major, `outShape`) = x read through `strides` (one per output dim, 0 on broadcast
 * dims). Dims are coalesced first, so any permute of a rank-6 tensor fits the kernel.
 */
function stridedCopy(op: string, x: Tensor, outShape: readonly number[], strides: readonly number[]): Tensor {
  const ctx = x.ctx;
  const y = empty(ctx, outShape, x.dtype);
  if (y.size === 0) return y;
  const c = coalesce(outShape, [strides.slice()]);
  const dims = c.shape;
  const st = c.strides[0];
  if (dims.length > LAYOUT_MAX_RANK) {
    y.dispose();
    throw new OpError(op, `${shapeStr(x.shape)} -> ${shapeStr(outShape)} needs more than ${LAYOUT_MAX_RANK} dims after merging`);
  }
  const ch = ctx.tuning.copyChunk;
  const { mode, n, uniforms } = stridedArgs(dims, st, ch);
  ctx.withOp(op, () => run1d(ctx, stridedCopyKernel(mode, ch), n, uniforms, [x.range(op), y.range(op)]));
  return y;
}

/**
 * Copies `outer` blocks of `block` elements from src (rows of `srcRow`, at `srcOff`) to dst
 * (rows of `dstRow`, at `dstOff`). One contiguous block becomes a buffer copy (a memcpy on
 * CPU adapters, a DMA on GPUs) instead of a dispatch.
 */
function blockCopy(ctx: GpuContext, op: string, src: Tensor, dst: Tensor,
  outer: number, block: number, srcRow: number, srcOff: number, dstRow: number, dstOff: number): void {
  if (outer === 0 || block === 0) return;
  if (outer === 1 || (block === srcRow && block === dstRow)) {
    const s = src.range(op);
    const d = dst.range(op);
    const bytes = outer * block * 4;
    ctx.withOp(op, () => ctx.copy(
      { buffer: s.buffer, offset: s.offset + srcOff * 4, size: bytes },
      { buffer: d.buffer, offset: d.offset + dstOff * 4, size: bytes }, bytes));
    return;
  }
  const v = [block, srcRow, srcOff, dstRow, dstOff].every((k) => k % 4 === 0) ? 4 : 1;
  const ch = ctx.tuning.copyChunk;
  const chunks = Math.ceil(block / v / ch);
  const n = outer * chunks;
  ctx.withOp(op, () => run1d(ctx, blockCopyKernel(v === 4, ch), n,
    { n, chunks, block: block / v, srcRow: srcRow / v, srcOff: srcOff / v, dstRow: dstRow / v, dstOff: dstOff / v }, [src.range(op), dst.range(op)]));
}

/** Outer extent, axis extent, inner extent of `shape` around `axis`. */
function split(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

/** Zero-pads `x` along `axis` to `len`, placing it at `start` (one pass, no fill). */
function padRaw(op: string, x: Tensor, axis: number, start: number, len: number): Tensor {
  const ctx = x.ctx;
  const outShape = x.shape.map((d, i) => (i === axis ? len : d));
  const y = empty(ctx, outShape, x.dtype);
  const [, ax, inner] = split(x.shape, axis);
  const block = ax * inner;
  const dstRow = len * inner;
  const off = start * inner;
  const v = [block, dstRow, off].every((k) => k % 4 === 0) ? 4 : 1;
  if (y.size === 0) return y;
  const ch = ctx.tuning.copyChunk;
  const chunks = Math.ceil(dstRow / v / ch);
  const n = (y.size / dstRow) * chunks;
  ctx.withOp(op, () => run1d(ctx, padKernel(v === 4, ch), n, { n, chunks, block: block / v, dstRow: dstRow / v, off: off / v }, [x.range(op), y.range(op)]));
  return y;
}

function checkPerm(op: string, x: Tensor, perm: readonly number[]): void {
  const r = x.rank;
  const ok = perm.length === r && perm.every((p) => Number.isInteger(p) && p >= 0 && p < r) && new Set(perm).size === r;
  if (!ok) throw new OpError(op, `[${perm.join(', ')}] is not a permutation of the ${r} dims of ${shapeStr(x.shape)}`);
  if (r > LAYOUT_MAX_RANK) throw new OpError(op, `${shapeStr(x.shape)} has more than ${LAYOUT_MAX_RANK} dims`);
}

/** y.shape[k] = x.shape[perm[k]]. Backward is the inverse permute. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  ctxOf('permute', x);
  expectWord('permute', x);
  checkPerm('permute', x, perm);
  const moved = perm.filter((p) => x.shape[p] !== 1);
  const identity = moved.every((p, i) => i === 0 || p > moved[i - 1]);
  const outShape = perm.map((p) => x.shape[p]);
  let y: Tensor;
  if (identity) {
    // Only size-1 dims move: the bytes are already in order.
    y = x.alias(outShape);
  } else {
    const st = rowMajorStrides(x.shape);
    y = stridedCopy('permute', x, outShape, perm.map((p) => st[p]));
  }
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return record('permute', y, [x], [], (g) => [permute(g, inv)]);
}

/** Swaps the last two dims. */
export function transpose(x: Tensor): Tensor {
  if (x.rank < 2) throw new OpError('transpose', `needs at least 2 dims, got ${shapeStr(x.shape)}`);
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return permute(x, perm);
}

/**
 * Elements [start, end) of `axis` (negative axis counts from the end). start and end must
 * satisfy 0 <= start <= end <= shape[axis]: a silent clamp would hide off-by-one bugs.
 */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ctx = ctxOf('slice', x);
  expectWord('slice', x);
  const a = normAxis('slice', axis, x.rank);
  const dim = x.shape[a];
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > dim) {
    throw new OpError('slice', `range [${start}, ${end}) out of bounds for axis ${a} of ${shapeStr(x.shape)}`);
  }
  const outShape = x.shape.map((d, i) => (i === a ? end - start : d));
  const y = empty(ctx, outShape, x.dtype);
  const [outer, ax, inner] = split(x.shape, a);
  blockCopy(ctx, 'slice', x, y, outer, (end - start) * inner, ax * inner, start * inner, (end - start) * inner, 0);
  return record('slice', y, [x], [], (g) => [padRaw('slice', g, a, start, dim)]);
}

/**
 * Zero-pads `axis` with `before` and `after` elements. Backward slices the gradient.
 */
export function padAxis(x: Tensor, axis: number, before: number, after: number): Tensor {
  ctxOf('padAxis', x);
  expectWord('padAxis', x);
  const a = normAxis('padAxis', axis, x.rank);
  if (![before, after].every((k) => Number.isInteger(k) && k >= 0)) {
    throw new OpError('padAxis', `padding (${before}, ${after}) must be non-negative integers for ${shapeStr(x.shape)}`);
  }
  const dim = x.shape[a];
  const y = padRaw('padAxis', x, a, before, dim + before + after);
  return record('padAxis', y, [x], [], (g) => [slice(g, a, before, before + dim)]);
}

/** Joins tensors along `axis`; every other dim must match. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new OpError('concat', 'needs at least one tensor');
  const ctx = ctxOf('concat', ...xs);
  expectWord('concat', ...xs);
  const first = xs[0];
  const a = normAxis('concat', axis, first.rank);
  const all = () => xs.map((t) => `${shapeStr(t.shape)} ${t.dtype}`).join(', ');
  for (const t of xs) {
    const same = t.rank === first.rank && t.dtype === first.dtype && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!same) throw new OpError('concat', `tensors must share dtype, rank and every dim but axis ${a}: ${all()}`);
  }
  const total = xs.reduce((s, t) => s + t.shape[a], 0);
  const outShape = first.shape.map((d, i) => (i === a ? total : d));
  const y = empty(ctx, outShape, first.dtype);
  const [outer, , inner] = split(outShape, a);
  const starts: number[] = [];
  let at = 0;
  for (const t of xs) {
    starts.push(at);
    const len = t.shape[a];
    blockCopy(ctx, 'concat', t, y, outer, len * inner, len * inner, 0, total * inner, at * inner);
    at += len;
  }
  return record('concat', y, xs, [], (g) =>
    xs.map((t, i) => (t.requiresGrad ? slice(g, a, starts[i], starts[i] + t.shape[a]) : null)));
}

/**
 * Numpy-style broadcast of `x` to `shape` (x's dims align to the right; each is equal or 1).
 * Backward sums the gradient back over the broadcast dims.
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  ctxOf('expand', x);
  expectWord('expand', x);
  const ok = shape.length >= x.rank && shape.every((d) => Number.isInteger(d) && d >= 0) &&
    x.shape.every((d, i) => d === 1 || d === shape[shape.length - x.rank + i]);
  if (!ok) throw new OpError('expand', `cannot broadcast ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  const y = sameShape(x.shape, shape) ? x.alias() : stridedCopy('expand', x, shape, broadcastStrides(x.shape, shape));
  const xShape = x.shape;
  return record('expand', y, [x], [], (g) => [sumTo(g, xShape)]);
}

/**
 * Broadcasts g (the result of reducing `axis` of `shape`, with or without the kept dim) back
 * to `shape`. Used by reduction backwards.
 */
export function broadcastTo(g: Tensor, shape: readonly number[], axis: number, keepDims: boolean): Tensor {
  return scope(g.ctx, () => expand(keepDims ? g.alias() : g.alias(shape.map((d, i) => (i === axis ? 1 : d))), shape));
}
