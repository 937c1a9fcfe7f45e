import { record } from '../autograd.js';
import type { BufferRange, GpuContext } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import {
  ATTN_MAX_HEAD_DIM, attentionBackwardKVKernel, attentionBackwardQKernel, attentionForwardKernel,
  attentionRowTermKernel, attnRowsPerGroup, attnVariant, attnVariantName, type AttnField, type AttnVariant,
} from '../../kernels/attention.js';
import type { Uniforms } from '../../kernels/kernel.js';
import { attentionSubgroup } from '../tuning.js';
import { ctxOf, expectDtype, expectRank, run1d } from './util.js';

export interface AttentionOptions {
  /** Multiplies q.k; default 1 / sqrt(head_dim). */
  scale?: number;
  /** Query row i attends key j only when j <= i. */
  causal?: boolean;
  /** [batch, Tk], i32 / u32 / f32: nonzero = attend, 0 = padded key. */
  keyPaddingMask?: Tensor;
}

function chooseVariant(ctx: GpuContext, headDim: number): AttnVariant {
  return attnVariant(ctx.tuning.attention.impl, headDim, attentionSubgroup(ctx.tuning));
}

/** The kernel variant attention runs on `ctx` for this head dim, e.g. 'register.sg8' (benchmarks print it). */
export function attentionVariantName(ctx: GpuContext, headDim: number): string {
  return attnVariantName(chooseVariant(ctx, headDim));
}

interface Plan {
  ctx: GpuContext;
  batch: number;
  heads: number;
  tq: number;
  tk: number;
  d: number;
  /** Row stride in bound elements (D / 4 for vec4 rows, else D) and vec4 slots per row. */
  rs: number;
  nv: number;
  variant: AttnVariant;
  uniforms: Uniforms<AttnField>;
  mask: Tensor | undefined;
}

const OP = 'attention';

function plan(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Plan {
  const mask = opts.keyPaddingMask;
  const ctx = mask ? ctxOf(OP, q, k, v, mask) : ctxOf(OP, q, k, v);
  for (const t of [q, k, v]) {
    expectRank(OP, t, 4);
    expectDtype(OP, t, 'f32');
  }
  const [batch, heads, tq, d] = q.shape;
  const [, , tk] = k.shape;
  const shapes = `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`;
  if (k.shape[0] !== batch || k.shape[1] !== heads || k.shape[3] !== d || v.shape.some((x, i) => x !== k.shape[i])) {
    throw new OpError(OP, `expected q [batch, heads, Tq, head_dim] and k, v [batch, heads, Tk, head_dim] alike; got ${shapes}`);
  }
  if (q.size === 0 || tk === 0) throw new OpError(OP, `empty inputs are not supported: ${shapes}`);
  if (d > ATTN_MAX_HEAD_DIM) throw new OpError(OP, `head_dim ${d} above the supported maximum ${ATTN_MAX_HEAD_DIM} (${shapes})`);
  if (mask) {
    expectDtype(OP, mask, 'i32', 'u32', 'f32');
    if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== tk) {
      throw new OpError(OP, `keyPaddingMask ${shapeStr(mask.shape)} must be [batch, Tk] = [${batch}, ${tk}] for ${shapes}`);
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new OpError(OP, `scale must be a finite number, got ${scale}`);
  const variant = chooseVariant(ctx, d);
  const rs = variant.vec4 ? d / 4 : d;
  const nv = Math.ceil(d / 4);
  const uniforms = {
    bh: batch * heads, heads, tq, tk, d, rs, nv, scale, causal: opts.causal ? 1 : 0, hasMask: mask ? 1 : 0, maskFloat: mask?.dtype === 'f32' ? 1 : 0,
  };
  return { ctx, batch, heads, tq, tk, d, rs, nv, variant, uniforms, mask };
}

/** Workgroups (row blocks, b*h folded into y and z within the per-dimension limit). */
function grid(p: Plan, rows: number): number[] {
  const maxWg = p.ctx.device.limits.maxComputeWorkgroupsPerDimension;
  const bh = p.batch * p.heads;
  const blocks = Math.ceil(rows / attnRowsPerGroup(p.variant));
  if (blocks > maxWg) throw new OpError(OP, `sequence of ${rows} rows needs more than ${maxWg} workgroups`);
  return [blocks, Math.min(bh, maxWg), Math.ceil(bh / maxWg)];
}

/** Without a mask the kernels never read M; any bound buffer does. */
function maskRange(p: Plan, q: Tensor): BufferRange {
  return (p.mask ?? q).range(OP);
}

/** Forward without autograd: the output and the per-row log-sum-exp [batch*heads*Tq] backward needs. */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): { out: Tensor; lse: Tensor } {
  const p = plan(q, k, v, opts);
  const out = empty(p.ctx, q.shape);
  const lse = empty(p.ctx, [p.batch * p.heads * p.tq]);
  p.ctx.withOp(OP, () => p.ctx.dispatch(attentionForwardKernel(p.variant), p.uniforms,
    [q.range(OP), k.range(OP), v.range(OP), maskRange(p, q), out.range(OP), lse.range(OP)], grid(p, p.tq)));
  return { out, lse };
}

/**
 * Backward without autograd, by recomputation from q, k, v, the forward's output and lse.
 * Returns null for gradients not asked for.
 */
export function attentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gradOut: Tensor, opts: AttentionOptions = {},
  want: { q: boolean; kv: boolean } = { q: true, kv: true },
): { dq: Tensor | null; dk: Tensor | null; dv: Tensor | null } {
  const p = plan(q, k, v, opts);
  const op = `${OP}.backward`;
  for (const [name, t] of [['out', out], ['gradOut', gradOut]] as const) {
    if (t.shape.join() !== q.shape.join()) throw new OpError(op, `${name} ${shapeStr(t.shape)} does not match q ${shapeStr(q.shape)}`);
  }
  const rows = p.batch * p.heads * p.tq;
  if (lse.size !== rows) throw new OpError(op, `lse ${shapeStr(lse.shape)} must hold ${rows} rows`);
  const ctx = p.ctx;
  const ld = empty(ctx, [rows, 2]);
  let dq: Tensor | null = null;
  let dk: Tensor | null = null;
  let dv: Tensor | null = null;
  ctx.withOp(op, () => {
    run1d(ctx, attentionRowTermKernel(p.variant), rows, { n: rows, d: p.d, rs: p.rs, nv: p.nv },
      [out.range(op), gradOut.range(op), lse.range(op), ld.range(op)]);
    const common = [q.range(op), k.range(op), v.range(op), maskRange(p, q), gradOut.range(op), ld.range(op)];
    if (want.q) {
      dq = empty(ctx, q.shape);
      ctx.dispatch(attentionBackwardQKernel(p.variant), p.uniforms, [...common, dq.range(op)], grid(p, p.tq));
    }
    if (want.kv) {
      dk = empty(ctx, k.shape);
      dv = empty(ctx, v.shape);
      ctx.dispatch(attentionBackwardKVKernel(p.variant), p.uniforms, [...common, dk.range(op), dv.range(op)], grid(p, p.tk));
    }
  });
  ld.dispose();
  return { dq, dk, dv };
}

/**
 * Fused multi-head attention softmax(scale * q k^T + masks) v for q [batch, heads, Tq, head_dim]
 * and k, v [batch, heads, Tk, head_dim] (f32, head_dim <= 128). A query row whose every key is
 * masked outputs zeros and gets zero gradients. Differentiable in q, k and v.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const { out, lse } = attentionForward(q, k, v, opts);
  const mask = opts.keyPaddingMask;
  const inputs = mask ? [q, k, v, mask] : [q, k, v];
  const saved = mask ? [q, k, v, out, lse, mask] : [q, k, v, out, lse];
  const y = record(OP, out, inputs, saved, (g, s) => {
    const [qs, ks, vs, os, ls, ms] = s;
    const { dq, dk, dv } = attentionBackward(qs, ks, vs, os, ls, g, { ...opts, keyPaddingMask: ms },
      { q: q.requiresGrad, kv: k.requiresGrad || v.requiresGrad });
    return mask ? [dq, dk, dv, null] : [dq, dk, dv];
  });
  // The node holds its own alias of lse; this handle is only needed while recording.
  lse.dispose();
  return y;
}
