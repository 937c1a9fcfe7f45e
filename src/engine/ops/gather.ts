/**
 * index_select and embedding lookup, with scatter-add as their backward.
 *
 * Index values live on the GPU, so they are not range-checked on the host: an index outside
 * [0, axisLen) yields a row of NaN in the forward (so the mistake shows up in the loss) and
 * contributes nothing to the gradient.
 */
import { record } from '../autograd.js';
import type { GpuContext } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, sizeOf, type Tensor } from '../tensor.js';
import { gatherKernel, scatterAddKernel, NAN_BITS } from '../../kernels/gather.js';
import { ctxOf, expectDtype, expectRank, normAxis, run1d } from './util.js';
import { zeros } from './elementwise.js';

function split(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

function expectIndices(op: string, x: Tensor, idx: Tensor): void {
  if (idx.dtype !== 'i32') {
    throw new OpError(op, `indices must be i32, got ${idx.dtype} tensor ${shapeStr(idx.shape)} (indexing ${shapeStr(x.shape)})`);
  }
}

/** y[o, j, q] = x[o, idx[j], q] for x viewed as [outer, axisLen, inner]; y has `outShape`. */
function gatherRaw(op: string, x: Tensor, axis: number, idx: Tensor, outShape: readonly number[]): Tensor {
  const ctx = x.ctx;
  const y = empty(ctx, outShape);
  const [outer, axisLen, inner] = split(x.shape, axis);
  const nIdx = idx.size;
  if (y.size === 0) return y;
  const v = inner % 4 === 0 ? 4 : 1;
  const words = inner / v;
  const ch = ctx.tuning.copyChunk;
  const chunks = Math.ceil(words / ch);
  const n = outer * nIdx * chunks;
  ctx.withOp(op, () => run1d(ctx, gatherKernel(v === 4, ch), n, { n, chunks, nIdx, axisLen, inner: words, nan: NAN_BITS },
    [x.range(op), idx.range(op), y.range(op)]));
  return y;
}

/** The adjoint of gatherRaw: zeros of `shape` with g's rows added at idx (duplicates sum). */
function scatterAddRaw(ctx: GpuContext, op: string, g: Tensor, axis: number, idx: Tensor, shape: readonly number[]): Tensor {
  const y = zeros(ctx, shape);
  const [outer, axisLen, inner] = split(shape, axis);
  const nIdx = idx.size;
  if (g.size === 0) return y;
  const ch = ctx.tuning.copyChunk;
  const chunks = Math.ceil(inner / ch);
  const n = outer * nIdx * chunks;
  ctx.withOp(op, () => run1d(ctx, scatterAddKernel(ch), n, { n, chunks, nIdx, axisLen, inner },
    [g.range(op), idx.range(op), y.range(op)]));
  return y;
}

/**
 * Rows of `x` along `axis` picked by `indices` (i32, rank 1): y.shape[axis] = indices.length.
 * An index outside [0, x.shape[axis]) gives NaN there and no gradient.
 */
export function indexSelect(x: Tensor, axis: number, indices: Tensor): Tensor {
  ctxOf('indexSelect', x, indices);
  expectDtype('indexSelect', x, 'f32');
  expectIndices('indexSelect', x, indices);
  expectRank('indexSelect', indices, 1);
  const a = normAxis('indexSelect', axis, x.rank);
  const outShape = x.shape.map((d, i) => (i === a ? indices.size : d));
  const y = gatherRaw('indexSelect', x, a, indices, outShape);
  const xShape = x.shape;
  return record('indexSelect', y, [x, indices], [indices], (g, [idx]) =>
    [scatterAddRaw(g.ctx, 'indexSelect', g, a, idx, xShape), null]);
}

/**
 * Embedding lookup: weight [V, D], ids i32 of any shape -> [...ids.shape, D]. An id outside
 * [0, V) gives a row of NaN and no gradient. Repeated ids accumulate their gradients.
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  ctxOf('embedding', weight, ids);
  expectDtype('embedding', weight, 'f32');
  expectIndices('embedding', weight, ids);
  if (weight.rank !== 2) {
    throw new OpError('embedding', `weight must be [vocab, dim], got ${shapeStr(weight.shape)} (ids ${shapeStr(ids.shape)})`);
  }
  const y = gatherRaw('embedding', weight, 0, ids, [...ids.shape, weight.shape[1]]);
  const wShape = weight.shape;
  return record('embedding', y, [weight, ids], [ids], (g, [idx]) =>
    [scatterAddRaw(g.ctx, 'embedding', g, 0, idx, wShape), null]);
}
