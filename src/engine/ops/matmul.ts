import { isGradEnabled, record, type FusedActivationGrad, type PendingGrads } from '../autograd.js';
import type { GpuContext, BufferRange } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, scope, sizeOf, type Tensor } from '../tensor.js';
import {
  ACTIVATIONS, matmulKernel, matmulWorkgroups, PRE_READ_GRAD, PRE_WRITE, splitReduceKernel, vec4Ok, type Activation, type MatmulPlan, type MatmulProblem,
} from '../../kernels/matmul.js';
import { matmulSubgroup, regblockKnobs } from '../tuning.js';
import { unaryKernel } from '../../kernels/elementwise.js';
import { ctxOf, expectDtype, run1d, sameShape } from './util.js';
import { sumTo } from './elementwise.js';
import { reshape } from './shape.js';

export type { Activation, MatmulPlan, MatmulProblem, MatmulVariant } from '../../kernels/matmul.js';

export interface MatmulOptions {
  /** Use A^T: `a` is [..., K, M]. */
  transA?: boolean;
  /** Use B^T: `b` is [..., N, K] (the Hugging Face Linear weight layout). */
  transB?: boolean;
  /** [N], added to every row before the activation. */
  bias?: Tensor;
  activation?: Activation;
  /** Scale of the product, applied before bias and addend (default 1). */
  alpha?: number;
  /**
   * Added before the activation, shaped like the output (a residual stream, or a LoRA branch's
   * up-projection): fused into the store, so it costs no dispatch of its own.
   */
  addend?: Tensor;
}

/** The variant matmul dispatches on `ctx`, e.g. 'regblock.sg8' (benchmarks print it). */
export function matmulVariantName(ctx: GpuContext): string {
  const t = ctx.tuning;
  if (t.matmul.variant !== 'regblock') return t.matmul.variant;
  const sg = matmulSubgroup(t);
  return sg ? `regblock.sg${sg}` : 'regblock';
}

/** The plan matmul dispatches for a [batch] x [M, K] @ [K, N] problem on `ctx`. */
export function matmulPlanFor(
  ctx: GpuContext, transA: boolean, transB: boolean, M: number, N: number, K: number, batch = 1,
): MatmulPlan {
  const tuning = ctx.tuning;
  if (tuning.matmul.variant !== 'regblock') {
    return { variant: tuning.matmul.variant, transA, transB, vec4: false, subgroup: 0, swap: false, splits: 1, kChunk: K };
  }
  const subgroup = matmulSubgroup(tuning);
  const t = regblockKnobs(tuning, M, N, K, batch);
  const swap = t.swap ?? false;
  // The kernel's view: with swap, A' = op(B)^T [N, K] and B' = op(A)^T [K, M].
  const [kA, kB, kM, kN] = swap ? [!transB, !transA, N, M] : [transA, transB, M, N];
  // A transposed store writes vec4s along C's rows, whose stride is the kernel's M.
  const vec4 = K > 0 && vec4Ok(kA, kM, kN, K) && (!swap || kM % 4 === 0);
  if (t.rows !== undefined && subgroup > 0 && t.rows % subgroup !== 0) {
    throw new Error(`matmul: ${t.rows} rows per invocation do not suit subgroup size ${subgroup}`);
  }
  const splits = Math.max(1, Math.min(t.splits ?? 1, Math.ceil(K / 4)));
  const kChunk = splits > 1 ? 4 * Math.ceil(K / (4 * splits)) : K;
  return {
    variant: 'regblock', transA: kA, transB: kB, vec4, subgroup, rows: t.rows, cols: t.cols, transC: swap,
    swap, splits: splits > 1 ? Math.ceil(K / kChunk) : 1, kChunk,
  };
}

const dummies = new WeakMap<GpuContext, { read: BufferRange; write: BufferRange }>();

/** Bindings for an absent bias / pre-activation output (kept out of the pool's accounting). */
function dummyRanges(ctx: GpuContext): { read: BufferRange; write: BufferRange } {
  let d = dummies.get(ctx);
  if (!d) {
    const make = () => ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    d = { read: { buffer: make(), offset: 0, size: 16 }, write: { buffer: make(), offset: 0, size: 16 } };
    dummies.set(ctx, d);
  }
  return d;
}

/**
 * Encodes one batched product into `out` (and `pre`). Shapes are already validated; `a` and `b`
 * are only read through their storage. With `preMode` 'read-grad', `pre` is the saved
 * pre-activation of `act` and the product is multiplied by act'(pre) instead of activated.
 */
function encode(
  op: string, a: Tensor, b: Tensor, p: MatmulProblem, out: Tensor, bias: Tensor | null, act: Activation, pre: Tensor | null,
  alpha = 1, addend: Tensor | null = null, preMode: 'write' | 'read-grad' = 'write',
): void {
  const ctx = out.ctx;
  if (p.M === 0 || p.N === 0 || p.batch === 0) return;
  const shaped = matmulPlanFor(ctx, p.transA, p.transB, p.M, p.N, p.K, p.batch);
  const { splits } = shaped;
  const d = dummyRanges(ctx);
  // With swap the kernel multiplies op(B)^T [N, K] by op(A)^T [K, M].
  const [x, y, xBatched, yBatched, M, N] = shaped.swap
    ? [b, a, p.bBatched, p.aBatched, p.N, p.M]
    : [a, b, p.aBatched, p.bBatched, p.M, p.N];
  // The kernel's operands as stored: an f16 one (a frozen weight) is widened as it is loaded.
  const plan: MatmulPlan = { ...shaped, ...(x.dtype === 'f16' ? { elemA: 'f16' } : {}), ...(y.dtype === 'f16' ? { elemB: 'f16' } : {}) };
  const actIndex = ACTIVATIONS.indexOf(act);
  const strides = { strideA: xBatched ? M * p.K : 0, strideB: yBatched ? p.K * N : 0, strideC: p.M * p.N };
  const biasRange = bias ? bias.range(op) : d.read;
  const preRange = pre ? pre.range(op) : d.write;
  const preFlag = pre ? (preMode === 'read-grad' ? PRE_READ_GRAD : PRE_WRITE) : 0;
  const addRange = addend ? addend.range(op) : d.read;
  if (splits === 1) {
    const uniforms = { M, N, K: p.K, ...strides, act: actIndex, bias: bias ? 1 : 0, pre: preFlag, splits: 1, kChunk: plan.kChunk, alpha, addend: addend ? 1 : 0 };
    const ranges = [x.range(op), y.range(op), biasRange, out.range(op), preRange, addRange];
    ctx.dispatch(matmulKernel(plan), uniforms, ranges, matmulWorkgroups(plan, M, N, p.batch));
    return;
  }
  // Split-K: raw partial sums per slice of K, then one pass adds them up with the epilogue.
  const part = empty(ctx, [p.batch * splits * p.M * p.N]);
  const uniforms = { M, N, K: p.K, ...strides, act: 0, bias: 0, pre: 0, splits, kChunk: plan.kChunk, alpha: 1, addend: 0 };
  ctx.dispatch(matmulKernel(plan), uniforms, [x.range(op), y.range(op), d.read, part.range(op), d.write, d.read], matmulWorkgroups(plan, M, N, p.batch));
  const v4 = p.N % 4 === 0;
  const w = v4 ? 4 : 1;
  const total = (p.batch * p.M * p.N) / w;
  run1d(ctx, splitReduceKernel(v4), total,
    { slab: (p.M * p.N) / w, total, cols: p.N / w, splits, act: actIndex, bias: bias ? 1 : 0, pre: preFlag, alpha, addend: addend ? 1 : 0 },
    [part.range(op), d.read, biasRange, out.range(op), preRange, addRange]);
  part.dispose();
}

/**
 * Raw product for backward (times alpha, plus `addend`): no bias, never recorded. With `dact`,
 * multiplied by the derivative of an activation at its saved pre-activation (same layout as
 * the product): the gradient for an input that came out of that activation, at its input.
 */
function product(
  a: Tensor, b: Tensor, p: MatmulProblem, outShape: readonly number[], alpha = 1, addend: Tensor | null = null,
  dact: FusedActivationGrad | null = null,
): Tensor {
  const out = empty(a.ctx, outShape);
  if (dact) encode('matmul', a, b, p, out, null, dact.activation as Activation, dact.pre, alpha, addend, 'read-grad');
  else encode('matmul', a, b, p, out, null, 'none', null, alpha, addend);
  return out;
}

function describe(t: Tensor, trans: boolean): string {
  return `${shapeStr(t.shape)}${trans ? ' (transposed)' : ''}`;
}

/**
 * C = act(alpha * op(A) @ op(B) + bias + addend) over batches. `a` is [..., M, K] ([..., K, M] with transA),
 * `b` is [..., K, N] ([..., N, K] with transB). Batch dims must be equal, or one operand is
 * 2-D and is shared across the other's batch (weights).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  const { transA = false, transB = false, activation = 'none', alpha = 1 } = opts;
  const bias = opts.bias ?? null;
  const addend = opts.addend ?? null;
  const ctx = ctxOf(op, a, b, ...(bias ? [bias] : []), ...(addend ? [addend] : []));
  if (!Number.isFinite(alpha)) throw new OpError(op, `alpha must be a finite number, got ${alpha}`);
  for (const [name, t] of [['a', a], ['b', b]] as const) {
    expectDtype(op, t, 'f32', 'f16');
    if (t.dtype !== 'f16') continue;
    if (!ctx.hasFeature('shader-f16')) throw new OpError(op, `${name} ${shapeStr(t.shape)} is f16, which needs the 'shader-f16' feature this adapter lacks`);
    if (t.requiresGrad) throw new OpError(op, `${name} ${shapeStr(t.shape)} is f16 and requires a gradient: f16 operands are frozen weights (train in f32)`);
  }
  if (a.rank < 2 || b.rank < 2) {
    throw new OpError(op, `expected tensors of rank >= 2, got a ${shapeStr(a.shape)} and b ${shapeStr(b.shape)}`);
  }
  if (!ACTIVATIONS.includes(activation)) {
    throw new OpError(op, `unknown activation '${activation}' (expected ${ACTIVATIONS.join(', ')})`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const Ka = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (Ka !== Kb) {
    throw new OpError(op, `inner dimensions differ: a ${describe(a, transA)} has K=${Ka}, b ${describe(b, transB)} has K=${Kb}`);
  }
  const K = Ka;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  if (batchA.length > 0 && batchB.length > 0 && !sameShape(batchA, batchB)) {
    throw new OpError(op, `batch dimensions ${shapeStr(batchA)} of a ${shapeStr(a.shape)} and ${shapeStr(batchB)} of b ${shapeStr(b.shape)} differ (equal batch dims, or a 2-D operand shared across the batch)`);
  }
  if (bias) {
    expectDtype(op, bias, 'f32');
    if (bias.rank !== 1 || bias.shape[0] !== N) {
      throw new OpError(op, `bias ${shapeStr(bias.shape)} does not match N=${N} of a ${describe(a, transA)} @ b ${describe(b, transB)}`);
    }
  }
  const batchDims = batchA.length > 0 ? batchA : batchB;
  const batch = sizeOf(batchDims);
  const outShape = [...batchDims, M, N];
  if (addend) {
    expectDtype(op, addend, 'f32');
    if (!sameShape(addend.shape, outShape)) {
      throw new OpError(op, `addend ${shapeStr(addend.shape)} does not match the output ${shapeStr(outShape)} of a ${describe(a, transA)} @ b ${describe(b, transB)}`);
    }
  }

  const training = isGradEnabled() && (a.requiresGrad || b.requiresGrad || (bias?.requiresGrad ?? false) || (addend?.requiresGrad ?? false));
  const out = empty(ctx, outShape);
  const pre = training && activation !== 'none' ? empty(ctx, outShape) : null;
  // Shared weights under a batched, untransposed A: one tall product over batch * M rows.
  const flat = batchA.length > 0 && batchB.length === 0 && !transA;
  const p: MatmulProblem = flat
    ? { transA, transB, M: batch * M, N, K, batch: 1, aBatched: false, bBatched: false }
    : { transA, transB, M, N, K, batch, aBatched: batchA.length > 0, bBatched: batchB.length > 0 };
  ctx.withOp(op, () => encode(op, a, b, p, out, bias, activation, pre, alpha, addend));

  // Inputs: a, b, then bias and addend where given (their gradients in the same order).
  const inputs = [a, b, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  const saved = pre ? [a, b, pre] : [a, b];
  const y = record(op, out, inputs, saved, (g, [as, bs, ps], pending) => {
    // A consumer whose gradient product took our activation into its epilogue handed in dL/dpre.
    const gz = ps && !pending.activationApplied ? activationGrad(activation, ps, g) : g;
    const grads: (Tensor | null)[] = [
      a.requiresGrad ? gradA(as, bs, gz, p, alpha, pending) : null,
      b.requiresGrad ? gradB(as, bs, gz, p, alpha) : null,
    ];
    if (bias) grads.push(bias.requiresGrad ? sumTo(gz, [N]) : null);
    if (addend) grads.push(addend.requiresGrad ? gz.alias() : null);
    return grads;
  }, pre ? { activation, savedIndex: 2 } : undefined);
  pre?.dispose();
  return y;
}

/** dL/dz = act'(z) * g, through the elementwise family's derivative kernels. */
function activationGrad(act: Activation, z: Tensor, g: Tensor): Tensor {
  if (act === 'none') throw new Error('unreachable');
  const ctx = z.ctx;
  const out = empty(ctx, z.shape);
  run1d(ctx, unaryKernel(act, true), z.size, { n: z.size, p0: 0, p1: 0 }, [z.range('matmul'), g.range('matmul'), out.range('matmul')]);
  return out;
}

/**
 * dA from dZ [batch, M, N]: !transA: dA = dZ @ op(B)^T; transA: dA = op(B) @ dZ^T. A gradient
 * for an operand shared across a batch is the sum over the batch.
 */
function gradA(a: Tensor, b: Tensor, gz: Tensor, p: MatmulProblem, alpha: number, pending: PendingGrads): Tensor {
  const { M, N, K, batch, transA, transB } = p;
  const q: MatmulProblem = transA
    ? { transA: transB, transB: true, M: K, N: M, K: N, batch, aBatched: p.bBatched, bBatched: true }
    : { transA: false, transB: !transB, M, N: K, K: N, batch, aBatched: true, bBatched: p.bBatched };
  const direct = p.aBatched || batch === 1;
  // dA laid out as A: the gradient A's other consumers gave rides in the epilogue (no add), and
  // where A came out of an activation that only this product consumes, so does its derivative.
  const dact = direct ? pending.activation(0) : null;
  const acc = direct && !dact ? pending.take(0) : null;
  const t = transA ? product(b, gz, q, [batch, K, M], alpha, acc, dact) : product(gz, b, q, [batch, M, K], alpha, acc, dact);
  return direct ? t.alias(a.shape) : sumTo(t, a.shape);
}

/** dB from dZ: !transB: dB = op(A)^T @ dZ; transB: dB = dZ^T @ op(A). */
function gradB(a: Tensor, b: Tensor, gz: Tensor, p: MatmulProblem, alpha: number): Tensor {
  const { M, N, K, batch, transA, transB } = p;
  // After a flat (tall) forward, the batch sum is part of the K = batch * M contraction.
  const q: MatmulProblem = transB
    ? { transA: true, transB: transA, M: N, N: K, K: M, batch, aBatched: true, bBatched: p.aBatched }
    : { transA: !transA, transB: false, M: K, N, K: M, batch, aBatched: p.aBatched, bBatched: true };
  const outRows = transB ? N : K;
  const outCols = transB ? K : N;
  const t = product(transB ? gz : a, transB ? a : gz, q, [batch, outRows, outCols], alpha);
  return p.bBatched || batch === 1 ? t.alias(b.shape) : sumTo(t, b.shape);
}

/**
 * y = act(alpha * x @ weight^T + bias + addend) with the Hugging Face Linear layout:
 * weight [out, in], x [..., in] -> [..., out]; the addend is shaped like y.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, activation: Activation = 'none', extra: { alpha?: number; addend?: Tensor } = {}): Tensor {
  if (weight.rank !== 2) {
    throw new OpError('linear', `weight must be [out, in], got ${shapeStr(weight.shape)} (input ${shapeStr(x.shape)})`);
  }
  if (x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new OpError('linear', `input ${shapeStr(x.shape)} does not end in in_features=${weight.shape[1]} of weight ${shapeStr(weight.shape)}`);
  }
  if (x.rank >= 2) return matmul(x, weight, { transB: true, bias, activation, ...extra });
  return scope(x.ctx, () => {
    const d2 = extra.addend ? reshape(extra.addend, [1, extra.addend.size]) : undefined;
    const y2 = matmul(reshape(x, [1, x.shape[0]]), weight, { transB: true, bias, activation, alpha: extra.alpha, addend: d2 });
    return reshape(y2, [weight.shape[0]]);
  });
}
