import { record } from '../autograd.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import type { GpuContext } from '../context.js';
import { layerNormBackwardKernel, layerNormKernel, layerNormParamGradKernel } from '../../kernels/layernorm.js';
import { reduceAxisPlan } from '../../kernels/reduce.js';
import { ctxOf, expectDtype, run1d } from './util.js';
import { runRows } from './reduce.js';
import { lastDimRows } from './softmax.js';

/**
 * dgamma = sum over rows of g * xhat, dbeta = sum over rows of g. Rows are split into chunks so
 * there are enough invocations for the adapter (a few hundred on CPUs, thousands on GPUs); the
 * chunk partials are then summed in a second, fixed-order pass.
 */
function paramGrads(ctx: GpuContext, x: Tensor, g: Tensor, mean: Tensor, rstd: Tensor, rows: number, d: number): [Tensor, Tensor] {
  const op = 'layerNorm';
  const vec4 = d % 4 === 0;
  const cols = vec4 ? d / 4 : d;
  const target = ctx.tuning.paramGradInvocations;
  const chunkRows = Math.max(1, Math.ceil(rows / Math.max(1, Math.ceil(target / cols))));
  const chunks = Math.max(1, Math.ceil(rows / chunkRows));
  const dgamma = empty(ctx, [d]);
  const dbeta = empty(ctx, [d]);
  const pg = chunks === 1 ? dgamma : empty(ctx, [chunks, d]);
  const pb = chunks === 1 ? dbeta : empty(ctx, [chunks, d]);
  const n = chunks * cols;
  run1d(ctx, layerNormParamGradKernel(vec4), n, { rows, cols, chunkRows, n },
    [x.range(op), g.range(op), mean.range(op), rstd.range(op), pg.range(op), pb.range(op)]);
  if (chunks > 1) {
    const plan = reduceAxisPlan('sum', 1, chunks, d);
    for (const [p, out] of [[pg, dgamma], [pb, dbeta]]) {
      run1d(ctx, plan.kernel, plan.n, plan.uniforms, [p.range(op), out.range(op)]);
    }
  }
  return [dgamma, dbeta];
}

/**
 * Layer norm over the last dim: (x - mean) / sqrt(var + eps) * gamma + beta, with the biased
 * variance (as PyTorch's LayerNorm). gamma and beta have shape [D], D the last dim of x.
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const ctx = ctxOf(op, x, gamma, beta);
  for (const t of [x, gamma, beta]) expectDtype(op, t, 'f32');
  const { rows, d, len, spec } = lastDimRows(ctx, op, x);
  for (const [name, p] of [['gamma', gamma], ['beta', beta]] as const) {
    if (p.rank !== 1 || p.shape[0] !== d) {
      throw new OpError(op, `${name} ${shapeStr(p.shape)} does not match the last dim of x ${shapeStr(x.shape)} (expected [${d}])`);
    }
  }
  if (d === 0) throw new OpError(op, `x ${shapeStr(x.shape)} has an empty last dim`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new OpError(op, `eps must be a finite number >= 0, got ${eps}`);

  const y = empty(ctx, x.shape);
  const mean = empty(ctx, [rows]);
  const rstd = empty(ctx, [rows]);
  if (rows > 0) {
    ctx.withOp(op, () => runRows(ctx, layerNormKernel(spec), spec.variant, { rows, len }, { eps },
      [x.range(op), gamma.range(op), beta.range(op), y.range(op), mean.range(op), rstd.range(op)]));
  }
  record(op, y, [x, gamma, beta], [x, gamma, mean, rstd], (g, [xs, gs, ms, rs], pending) => {
    const out: (Tensor | null)[] = [null, null, null];
    if (x.requiresGrad) {
      // The gradient x's other consumers gave (the residual stream's) rides in the store.
      const acc = rows > 0 ? pending.take(0) : null;
      const dx = empty(ctx, x.shape);
      if (rows > 0) {
        runRows(ctx, layerNormBackwardKernel(spec), spec.variant, { rows, len }, { addend: acc ? 1 : 0 },
          [xs.range(op), g.range(op), gs.range(op), ms.range(op), rs.range(op), (acc ?? g).range(op), dx.range(op)]);
      }
      out[0] = dx;
    }
    if (gamma.requiresGrad || beta.requiresGrad) {
      const [dgamma, dbeta] = paramGrads(ctx, xs, g, ms, rs, rows, d);
      if (gamma.requiresGrad) out[1] = dgamma;
      if (beta.requiresGrad) out[2] = dbeta;
    }
    return out;
  });
  mean.dispose();
  rstd.dispose();
  return y;
}
