import { record } from '../autograd.js';
import { OpError } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import { l2NormalizeBackwardKernel, l2NormalizeKernel } from '../../kernels/layernorm.js';
import { ctxOf, expectDtype, normAxis } from './util.js';
import { rowSpec, runRows } from './reduce.js';

/**
 * x / max(||x||_2, eps) along `axis` (PyTorch's F.normalize with p = 2). One fused kernel each
 * way; a middle axis is walked with a stride instead of being transposed.
 */
export function l2Normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  const op = 'l2Normalize';
  const ctx = ctxOf(op, x);
  expectDtype(op, x, 'f32');
  const a = normAxis(op, axis, x.rank);
  if (!(eps > 0) || !Number.isFinite(eps)) throw new OpError(op, `eps must be a finite number > 0, got ${eps}`);
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < a; i++) outer *= x.shape[i];
  for (let i = a + 1; i < x.rank; i++) inner *= x.shape[i];
  const r = x.shape[a];
  const rows = outer * inner;
  const strided = inner > 1;
  const vec4 = !strided && r % 4 === 0;
  const spec = rowSpec(ctx, rows, vec4, strided);
  const len = vec4 ? r / 4 : r;
  const extent = strided ? { rows, len, inner } : { rows, len };
  const y = empty(ctx, x.shape);
  const nrm = empty(ctx, [rows]);
  if (rows > 0 && r > 0) {
    ctx.withOp(op, () => runRows(ctx, l2NormalizeKernel(spec), spec.variant, extent, { eps },
      [x.range(op), y.range(op), nrm.range(op)]));
  }
  record(op, y, [x], [y, nrm], (g, [ys, ns]) => {
    const dx = empty(ctx, x.shape);
    if (rows > 0 && r > 0) {
      runRows(ctx, l2NormalizeBackwardKernel(spec), spec.variant, extent, { eps },
        [ys.range(op), ns.range(op), g.range(op), dx.range(op)]);
    }
    return [dx];
  });
  nrm.dispose();
  return y;
}
