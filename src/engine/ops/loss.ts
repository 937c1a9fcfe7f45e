import { record } from '../autograd.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import {
  crossEntropyBackwardKernel, crossEntropyReduceKernel, crossEntropyRowsKernel, NAN_BITS,
} from '../../kernels/cross-entropy.js';
import { ctxOf, expectDtype, expectRank } from './util.js';
import { rowSpec, runRows } from './reduce.js';

export interface CrossEntropyOptions {
  /**
   * Rows whose target equals this are left out: no loss, no gradient, not counted in the mean
   * (PyTorch's default, -100). If every row is ignored the loss is 0.
   */
  ignoreIndex?: number;
  /** 'mean' over counted rows (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
}

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/**
 * Cross-entropy of `logits` [N, C] against class indices `targets` [N] (i32), as a [] tensor:
 * mean over rows of logsumexp(x) - x[target].
 *
 * Targets live on the GPU, so they cannot be range-checked here without a readback. Instead a
 * target outside [0, C) that is not `ignoreIndex` makes the loss NaN (and its gradient row
 * NaN): a bad label shows up at the next logged loss instead of training on garbage.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  const ctx = ctxOf(op, logits, targets);
  const { ignoreIndex = -100, reduction = 'mean' } = opts;
  expectDtype(op, logits, 'f32');
  expectRank(op, logits, 2);
  if (targets.dtype !== 'i32') {
    throw new OpError(op, `targets must be i32 class indices, got ${targets.dtype} tensor ${shapeStr(targets.shape)}`);
  }
  const [n, c] = logits.shape;
  if (targets.rank !== 1 || targets.shape[0] !== n) {
    throw new OpError(op, `targets ${shapeStr(targets.shape)} do not match logits ${shapeStr(logits.shape)} (expected [${n}])`);
  }
  if (c === 0) throw new OpError(op, `logits ${shapeStr(logits.shape)} have no classes`);
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < I32_MIN || ignoreIndex > I32_MAX) {
    throw new OpError(op, `ignoreIndex ${ignoreIndex} is not a 32-bit integer`);
  }
  if (reduction !== 'mean' && reduction !== 'sum') throw new OpError(op, `unknown reduction '${String(reduction)}'`);

  const spec = rowSpec(ctx, n, c % 4 === 0);
  const len = spec.vec4 ? c / 4 : c;
  const rowLoss = empty(ctx, [n]);
  const lse = empty(ctx, [n]);
  // [loss, divisor]: the loss is a view of element 0; backward reads the divisor on the GPU.
  const stats = empty(ctx, [2]);
  ctx.withOp(op, () => {
    if (n > 0) {
      runRows(ctx, crossEntropyRowsKernel(spec), spec.variant, { rows: n, len }, { classes: c, ignore: ignoreIndex, nanBits: NAN_BITS },
        [logits.range(op), targets.range(op), rowLoss.range(op), lse.range(op)]);
    }
    ctx.dispatch(crossEntropyReduceKernel(), { rows: n, ignore: ignoreIndex, mean: reduction === 'mean' ? 1 : 0 },
      [rowLoss.range(op), targets.range(op), stats.range(op)], [1]);
  });
  rowLoss.dispose();
  const loss = stats.alias([]);
  record(op, loss, [logits, targets], [logits, targets, lse, stats], (g, [xs, ts, ls, st]) => {
    const dx = empty(ctx, xs.shape);
    if (n > 0) {
      runRows(ctx, crossEntropyBackwardKernel(spec), spec.variant, { rows: n, len }, { classes: c, ignore: ignoreIndex, nanBits: NAN_BITS },
        [xs.range(op), ts.range(op), ls.range(op), g.range(op), st.range(op), dx.range(op)]);
    }
    return [dx, null];
  });
  lse.dispose();
  stats.dispose();
  return loss;
}
