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
  /**
   * 'bhtd' (default): q [batch, heads, Tq, head_dim], k and v [batch, heads, Tk, head_dim].
   * 'bthd': token-major q [batch, Tq, heads, head_dim] (a [batch, Tq, heads * head_dim]
   * projection reshaped, no copy), k and v alike; the output has q's layout.
   */
  layout?: 'bhtd' | 'bthd';
}

/** `batch` sequences of `length` tokens each, stored one after another in a packed batch. */
export interface PackedSegment {
  batch: number;
  length: number;
}

export type PackedAttentionOptions = Pick<AttentionOptions, 'scale' | 'causal'>;

function chooseVariant(ctx: GpuContext, headDim: number): AttnVariant {
  return attnVariant(ctx.tuning.attention.impl, headDim, attentionSubgroup(ctx.tuning));
}

/** The kernel variant attention runs on `ctx` for this head dim, e.g. 'register.sg8' (benchmarks print it). */
export function attentionVariantName(ctx: GpuContext, headDim: number): string {
  return attnVariantName(chooseVariant(ctx, headDim));
}

/** One dispatch's worth of sequences: a (b, h) grid over rows addressed by the uniforms. */
interface Part {
  bh: number;
  tq: number;
  tk: number;
  uniforms: Uniforms<AttnField>;
}

interface Plan {
  ctx: GpuContext;
  d: number;
  /** Row stride in bound elements (D / 4 for vec4 rows, else D) and vec4 slots per row. */
  rs: number;
  nv: number;
  /** Rows of D in q (and in lse): the row-term kernel's range. */
  qRows: number;
  variant: AttnVariant;
  parts: Part[];
  mask: Tensor | undefined;
}

const OP = 'attention';

/** Row addressing of one side: base + b * bs + h * hs + t * js. */
interface Side { b: number; bs: number; hs: number; js: number }

function part(heads: number, batch: number, tq: number, tk: number, q: Side, k: Side, common: Omit<Uniforms<AttnField>, 'bh' | 'tq' | 'tk' | 'qb' | 'qbs' | 'qhs' | 'qjs' | 'kb' | 'kbs' | 'khs' | 'kjs'>): Part {
  return {
    bh: batch * heads, tq, tk,
    uniforms: { ...common, bh: batch * heads, tq, tk, qb: q.b, qbs: q.bs, qhs: q.hs, qjs: q.js, kb: k.b, kbs: k.bs, khs: k.hs, kjs: k.js },
  };
}

function commonUniforms(ctx: GpuContext, heads: number, d: number, scale: number | undefined, causal: boolean | undefined, mask: Tensor | undefined) {
  const s = scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(s)) throw new OpError(OP, `scale must be a finite number, got ${s}`);
  const variant = chooseVariant(ctx, d);
  const rs = variant.vec4 ? d / 4 : d;
  const nv = Math.ceil(d / 4);
  return { variant, rs, nv, common: { heads, d, rs, nv, scale: s, causal: causal ? 1 : 0, hasMask: mask ? 1 : 0, maskFloat: mask?.dtype === 'f32' ? 1 : 0 } };
}

function plan(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Plan {
  const mask = opts.keyPaddingMask;
  const ctx = mask ? ctxOf(OP, q, k, v, mask) : ctxOf(OP, q, k, v);
  for (const t of [q, k, v]) {
    expectRank(OP, t, 4);
    expectDtype(OP, t, 'f32');
  }
  const layout = opts.layout ?? 'bhtd';
  if (layout !== 'bhtd' && layout !== 'bthd') throw new OpError(OP, `layout must be 'bhtd' or 'bthd', got ${String(layout)}`);
  const tm = layout === 'bthd';
  const [batch, qa, qb, d] = q.shape;
  const [heads, tq] = tm ? [qb, qa] : [qa, qb];
  const tk = tm ? k.shape[1] : k.shape[2];
  const shapes = `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`;
  const kHeads = tm ? k.shape[2] : k.shape[1];
  if (k.shape[0] !== batch || kHeads !== heads || k.shape[3] !== d || v.shape.some((x, i) => x !== k.shape[i])) {
    const dims = tm ? '[batch, Tq, heads, head_dim] and k, v [batch, Tk, heads, head_dim]' : '[batch, heads, Tq, head_dim] and k, v [batch, heads, Tk, head_dim]';
    throw new OpError(OP, `expected q ${dims} alike; got ${shapes}`);
  }
  if (q.size === 0 || tk === 0) throw new OpError(OP, `empty inputs are not supported: ${shapes}`);
  if (d > ATTN_MAX_HEAD_DIM) throw new OpError(OP, `head_dim ${d} above the supported maximum ${ATTN_MAX_HEAD_DIM} (${shapes})`);
  if (mask) {
    expectDtype(OP, mask, 'i32', 'u32', 'f32');
    if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== tk) {
      throw new OpError(OP, `keyPaddingMask ${shapeStr(mask.shape)} must be [batch, Tk] = [${batch}, ${tk}] for ${shapes}`);
    }
  }
  const { variant, rs, nv, common } = commonUniforms(ctx, heads, d, opts.scale, opts.causal, mask);
  const side = (t: number): Side => (tm ? { b: 0, bs: t * heads, hs: 1, js: heads } : { b: 0, bs: heads * t, hs: t, js: 1 });
  return { ctx, d, rs, nv, qRows: batch * heads * tq, variant, mask, parts: [part(heads, batch, tq, tk, side(tq), side(tk), common)] };
}

function planPacked(q: Tensor, k: Tensor, v: Tensor, segments: readonly PackedSegment[], opts: PackedAttentionOptions): Plan {
  const op = 'packedAttention';
  const ctx = ctxOf(op, q, k, v);
  for (const t of [q, k, v]) {
    expectRank(op, t, 3);
    expectDtype(op, t, 'f32');
  }
  const shapes = `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`;
  if ([k, v].some((t) => t.shape.some((x, i) => x !== q.shape[i]))) {
    throw new OpError(op, `expected q, k and v alike, [tokens, heads, head_dim]; got ${shapes}`);
  }
  const [n, heads, d] = q.shape;
  if (q.size === 0) throw new OpError(op, `empty inputs are not supported: ${shapes}`);
  if (d > ATTN_MAX_HEAD_DIM) throw new OpError(op, `head_dim ${d} above the supported maximum ${ATTN_MAX_HEAD_DIM} (${shapes})`);
  const { variant, rs, nv, common } = commonUniforms(ctx, heads, d, opts.scale, opts.causal, undefined);
  const parts: Part[] = [];
  let row = 0;
  segments.forEach((s, i) => {
    if (!Number.isInteger(s.batch) || s.batch < 1 || !Number.isInteger(s.length) || s.length < 1) {
      throw new OpError(op, `segments[${i}] = {batch: ${s.batch}, length: ${s.length}}: both must be integers >= 1`);
    }
    const side: Side = { b: row * heads, bs: s.length * heads, hs: 1, js: heads };
    parts.push(part(heads, s.batch, s.length, s.length, side, side, common));
    row += s.batch * s.length;
  });
  if (row !== n) throw new OpError(op, `segments hold ${row} tokens but q has ${n} (${shapes})`);
  return { ctx, d, rs, nv, qRows: n * heads, variant, mask: undefined, parts };
}

/** Workgroups (row blocks, b*h folded into y and z within the per-dimension limit). */
function grid(p: Plan, part: Part, rows: number): number[] {
  const maxWg = p.ctx.device.limits.maxComputeWorkgroupsPerDimension;
  const blocks = Math.ceil(rows / attnRowsPerGroup(p.variant));
  if (blocks > maxWg) throw new OpError(OP, `sequence of ${rows} rows needs more than ${maxWg} workgroups`);
  return [blocks, Math.min(part.bh, maxWg), Math.ceil(part.bh / maxWg)];
}

/** Without a mask the kernels never read M; any bound buffer does. */
function maskRange(p: Plan, q: Tensor): BufferRange {
  return (p.mask ?? q).range(OP);
}

function forwardPlanned(p: Plan, q: Tensor, k: Tensor, v: Tensor): { out: Tensor; lse: Tensor } {
  const out = empty(p.ctx, q.shape);
  const lse = empty(p.ctx, [p.qRows]);
  p.ctx.withOp(OP, () => {
    for (const part of p.parts) {
      p.ctx.dispatch(attentionForwardKernel(p.variant), part.uniforms,
        [q.range(OP), k.range(OP), v.range(OP), maskRange(p, q), out.range(OP), lse.range(OP)], grid(p, part, part.tq));
    }
  });
  return { out, lse };
}

/** Forward without autograd: the output and the per-row log-sum-exp [batch*heads*Tq] backward needs. */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): { out: Tensor; lse: Tensor } {
  return forwardPlanned(plan(q, k, v, opts), q, k, v);
}

/**
 * Backward without autograd, by recomputation from q, k, v, the forward's output and lse.
 * Returns null for gradients not asked for.
 */
export function attentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gradOut: Tensor, opts: AttentionOptions = {},
  want: { q: boolean; kv: boolean } = { q: true, kv: true },
): { dq: Tensor | null; dk: Tensor | null; dv: Tensor | null } {
  return backwardPlanned(plan(q, k, v, opts), q, k, v, out, lse, gradOut, want);
}

function backwardPlanned(
  p: Plan, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gradOut: Tensor, want: { q: boolean; kv: boolean },
): { dq: Tensor | null; dk: Tensor | null; dv: Tensor | null } {
  const op = `${OP}.backward`;
  for (const [name, t] of [['out', out], ['gradOut', gradOut]] as const) {
    if (t.shape.join() !== q.shape.join()) throw new OpError(op, `${name} ${shapeStr(t.shape)} does not match q ${shapeStr(q.shape)}`);
  }
  const rows = p.qRows;
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
      const g = empty(ctx, q.shape);
      dq = g;
      for (const part of p.parts) ctx.dispatch(attentionBackwardQKernel(p.variant), part.uniforms, [...common, g.range(op)], grid(p, part, part.tq));
    }
    if (want.kv) {
      const gk = empty(ctx, k.shape);
      const gv = empty(ctx, v.shape);
      dk = gk;
      dv = gv;
      for (const part of p.parts) {
        ctx.dispatch(attentionBackwardKVKernel(p.variant), part.uniforms, [...common, gk.range(op), gv.range(op)], grid(p, part, part.tk));
      }
    }
  });
  ld.dispose();
  return { dq, dk, dv };
}

/**
 * Fused multi-head attention softmax(scale * q k^T + masks) v for q [batch, heads, Tq, head_dim]
 * and k, v [batch, heads, Tk, head_dim] (f32, head_dim <= 128), or token-major with `layout:
 * 'bthd'`. A query row whose every key is
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

/**
 * Self-attention over a packed batch of sequences of different lengths: q, k and v are [tokens,
 * heads, head_dim] (a [tokens, heads * head_dim] projection reshaped), holding `segments` one
 * after another, each `batch` sequences of `length` tokens; no sequence attends to another and
 * nothing is padded. One kernel dispatch per segment and pass. Differentiable in q, k and v.
 */
export function packedAttention(q: Tensor, k: Tensor, v: Tensor, segments: readonly PackedSegment[], opts: PackedAttentionOptions = {}): Tensor {
  const p = planPacked(q, k, v, segments, opts);
  const { out, lse } = forwardPlanned(p, q, k, v);
  const y = record('packedAttention', out, [q, k, v], [q, k, v, out, lse], (g, s) => {
    const [qs, ks, vs, os, ls] = s;
    const { dq, dk, dv } = backwardPlanned(planPacked(qs, ks, vs, segments, opts), qs, ks, vs, os, ls, g,
      { q: q.requiresGrad, kv: k.requiresGrad || v.requiresGrad });
    return [dq, dk, dv];
  });
  lse.dispose();
  return y;
}
