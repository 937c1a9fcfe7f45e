import { record } from '../autograd.js';
import type { BufferRange, GpuContext } from '../context.js';
import { empty, Tensor } from '../tensor.js';
import type { Kernel, Uniforms } from '../../kernels/kernel.js';
import {
  broadcastScalarKernel, maxBackwardKernel, reduceAxisPlan, sumFinalKernel, sumPartialsKernel,
  ROW_LANE_WG, type ReduceOp, type RowLeadField, type RowSpec, type RowVariant,
} from '../../kernels/reduce.js';
import { ctxOf, expectDtype, normAxis, run1d } from './util.js';
import { affine } from './elementwise.js';
import { broadcastTo } from './shape.js';

function split(shape: readonly number[], axis: number): { outer: number; r: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  return { outer, r: shape[axis], inner };
}

function reduceRaw(op: ReduceOp, x: Tensor, axis: number, keepDims: boolean): Tensor {
  const ctx = ctxOf(op, x);
  expectDtype(op, x, 'f32');
  const a = normAxis(op, axis, x.rank);
  const { outer, r, inner } = split(x.shape, a);
  const outShape = keepDims ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  const y = empty(ctx, outShape);
  const plan = reduceAxisPlan(op, outer, r, inner);
  ctx.withOp(op, () => run1d(ctx, plan.kernel, plan.n, plan.uniforms, [x.range(op), y.range(op)]));
  return y;
}

/**
 * The row-kernel shape for `rows` rows on this adapter. A workgroup runs on one CPU thread, so
 * with few rows the 'lane' variant uses workgroups of 8 (one SIMD width on lavapipe) to give
 * every core some rows.
 */
export function rowSpec(ctx: GpuContext, rows: number, vec4: boolean, strided = false): RowSpec {
  const variant = ctx.tuning.rows;
  return { variant, vec4, strided, laneWg: rows >= 4 * ROW_LANE_WG ? ROW_LANE_WG : 8 };
}

/** The leading uniforms of a row kernel: row count, row length, and the stride of strided rows. */
export interface RowExtent {
  rows: number;
  len: number;
  inner?: number;
}

/** Dispatches a row kernel of `variant` over `rows` rows; `fields` are the kernel's own uniforms. */
export function runRows<F extends string>(
  ctx: GpuContext, kernel: Kernel<RowLeadField | F>, variant: RowVariant, extent: RowExtent,
  fields: Uniforms<Exclude<F, RowLeadField>>, ranges: readonly BufferRange[],
): void {
  const strided = (kernel.fields as readonly string[]).includes('inner');
  if (strided !== (extent.inner !== undefined)) throw new Error(`${kernel.name}: ${strided ? 'strided rows need' : 'contiguous rows take no'} an inner stride`);
  const groups = variant === 'lane' ? Math.ceil(extent.rows / (kernel.workgroupSize ?? ROW_LANE_WG)) : extent.rows;
  const lead = strided ? { rows: extent.rows, len: extent.len, inner: extent.inner } : { rows: extent.rows, len: extent.len };
  ctx.dispatch(kernel, { ...lead, ...fields } as Uniforms<RowLeadField | F>, ranges, ctx.grid1d(groups));
}

/**
 * sum(x) * scale over every element into a new [] tensor, in two stages (partials, then one
 * workgroup's fixed-order tree): deterministic, and parallel where one invocation walking all
 * n elements was not. Each partial covers at least 64 vectors so small tensors stay cheap.
 */
function sumAllRaw(op: string, x: Tensor, scale: number): Tensor {
  const ctx = ctxOf(op, x);
  expectDtype(op, x, 'f32');
  const y = empty(ctx, []);
  const n4 = Math.floor(x.size / 4);
  const tail = x.size - n4 * 4;
  const maxParts = ctx.tuning.sumParts;
  const parts = Math.max(1, Math.min(maxParts, Math.ceil(n4 / 64)));
  const p = empty(ctx, [parts]);
  ctx.withOp(op, () => {
    const r = x.range(op);
    // A vec4 binding must cover one whole vector. A tensor under 4 elements is all tail, so the
    // view is never read: bind y's (pooled, 16-byte) buffer, which this dispatch does not write.
    const r4 = n4 > 0 ? { ...r, size: n4 * 16 } : { ...y.range(op), size: 16 };
    run1d(ctx, sumPartialsKernel(), parts, { n4, tail, parts }, [r4, r, p.range(op)]);
    ctx.dispatch(sumFinalKernel(), { parts, scale }, [p.range(op), y.range(op)], [1]);
  });
  p.dispose();
  return y;
}

/** A tensor of `shape` filled with g[0] * scale (g is a one-element tensor on the GPU). */
function broadcastScalar(g: Tensor, shape: readonly number[], scale: number): Tensor {
  const ctx = g.ctx;
  const y = empty(ctx, shape);
  run1d(ctx, broadcastScalarKernel(), y.size, { n: y.size, scale }, [g.range('broadcast'), y.range('broadcast')]);
  return y;
}

/** Sum over one axis, or over all elements when `axis` is omitted (a scalar of shape []). */
export function sum(x: Tensor, axis?: number, keepDims = false): Tensor {
  if (axis === undefined) {
    const y = sumAllRaw('sum', x, 1);
    return record('sum', y, [x], [], (g) => [broadcastScalar(g, x.shape, 1)]);
  }
  const a = normAxis('sum', axis, x.rank);
  const y = reduceRaw('sum', x, a, keepDims);
  return record('sum', y, [x], [], (g) => [broadcastTo(g, x.shape, a, keepDims)]);
}

export function mean(x: Tensor, axis?: number, keepDims = false): Tensor {
  if (axis === undefined) {
    const scale = 1 / Math.max(1, x.size);
    const y = sumAllRaw('mean', x, scale);
    return record('mean', y, [x], [], (g) => [broadcastScalar(g, x.shape, scale)]);
  }
  const a = normAxis('mean', axis, x.rank);
  const y = reduceRaw('mean', x, a, keepDims);
  const r = x.shape[a];
  return record('mean', y, [x], [], (g) => {
    return [affine(broadcastTo(g, x.shape, a, keepDims), 1 / r, 0)];
  });
}

/** Max over an axis; the gradient flows to the first maximal element. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  const a = normAxis('max', axis, x.rank);
  const y = reduceRaw('max', x, a, keepDims);
  return record('max', y, [x], [x, y], (g, [xs, ys]) => {
    const ctx = xs.ctx;
    const { outer, r, inner } = split(xs.shape, a);
    const dx = empty(ctx, xs.shape);
    run1d(ctx, maxBackwardKernel(), outer * inner, { n: outer * inner, r, inner },
      [xs.range('max'), ys.range('max'), g.range('max'), dx.range('max')]);
    return [dx];
  });
}
