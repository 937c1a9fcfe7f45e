import { record } from '../autograd.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import { softmaxBackwardKernel, softmaxKernel, type SoftmaxKind } from '../../kernels/softmax.js';
import type { RowSpec } from '../../kernels/reduce.js';
import { ctxOf, expectDtype } from './util.js';
import { rowSpec, runRows } from './reduce.js';
import type { GpuContext } from '../context.js';

/** Rows and row length of a tensor reduced over its last dim, and the row kernel shape. */
export function lastDimRows(ctx: GpuContext, op: string, x: Tensor): { rows: number; d: number; len: number; spec: RowSpec } {
  if (x.rank < 1) throw new OpError(op, `expected a tensor of rank >= 1, got ${shapeStr(x.shape)}`);
  const d = x.shape[x.rank - 1];
  const rows = d === 0 ? 0 : x.size / d;
  const vec4 = d % 4 === 0;
  return { rows, d, len: vec4 ? d / 4 : d, spec: rowSpec(ctx, rows, vec4) };
}

function softmaxOp(kind: SoftmaxKind, op: string, x: Tensor): Tensor {
  const ctx = ctxOf(op, x);
  expectDtype(op, x, 'f32');
  const { rows, len, spec } = lastDimRows(ctx, op, x);
  const y = empty(ctx, x.shape);
  if (rows > 0) {
    ctx.withOp(op, () => runRows(ctx, softmaxKernel(kind, spec), spec.variant, { rows, len }, {}, [x.range(op), y.range(op)]));
  }
  return record(op, y, [x], [y], (g, [ys]) => {
    const dx = empty(ctx, x.shape);
    if (rows > 0) {
      runRows(ctx, softmaxBackwardKernel(kind, spec), spec.variant, { rows, len }, {}, [ys.range(op), g.range(op), dx.range(op)]);
    }
    return [dx];
  });
}

/** Softmax over the last dim, numerically stable (the row max is subtracted first). */
export const softmax = (x: Tensor): Tensor => softmaxOp('softmax', 'softmax', x);

/** log(softmax(x)) over the last dim, computed as x - max - log(sum(exp(x - max))). */
export const logSoftmax = (x: Tensor): Tensor => softmaxOp('log_softmax', 'logSoftmax', x);
