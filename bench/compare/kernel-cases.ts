/**
 * The kernels both engines have, at the shapes our training runs: each case sets up the same
 * inputs on both sides and gives one `run` that encodes the work once (no readback).
 */
import type { GpuContext } from '../../src/engine/context.js';
import { noGrad, tensor, type Tensor } from '../../src/engine/index.js';
import { add, attentionBackward, attentionForward, fill, layerNorm, matmul, softmax } from '../../src/engine/ops/index.js';
import { AdamW } from '../../src/engine/optim/index.js';
import type { Tf } from './peer-tfjs.js';

export interface Runner {
  run(): void;
  dispose(): void;
}

export interface KernelCase {
  case: string;
  shape: string;
  /** Useful work of one run, for the rate column (flops or bytes moved). */
  flops?: number;
  bytes?: number;
  ours(ctx: GpuContext): Runner;
  tfjs(tf: Tf): Runner;
  /** How the peer's side differs (unfused ops, a missing optimizer). */
  peerNote?: string;
}

function hostData(n: number, seed: number, amp = 0.5): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.377 + seed * 1.7) * amp;
  return a;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function ourTensors(ctx: GpuContext, shapes: readonly number[][]): Tensor[] {
  return shapes.map((s, i) => tensor(ctx, hostData(size(s), i + 1), s));
}

function matmulCase(M: number, N: number, K: number, what: string): KernelCase {
  return {
    case: 'matmul', shape: `${M}x${N}x${K} ${what}`, flops: 2 * M * N * K,
    ours: (ctx) => {
      const [a, b] = ourTensors(ctx, [[M, K], [K, N]]);
      return { run: () => noGrad(() => matmul(a, b)).dispose(), dispose: () => { a.dispose(); b.dispose(); } };
    },
    tfjs: (tf) => {
      const a = tf.tensor(hostData(M * K, 1), [M, K]);
      const b = tf.tensor(hostData(K * N, 2), [K, N]);
      return { run: () => tf.matMul(a, b).dispose(), dispose: () => { a.dispose(); b.dispose(); } };
    },
  };
}

/** Causal attention as a tfjs user writes it: scores, mask, softmax, weighted sum. */
function tfAttention(tf: Tf, q: import('@tensorflow/tfjs-core').Tensor, k: import('@tensorflow/tfjs-core').Tensor, v: import('@tensorflow/tfjs-core').Tensor, mask: import('@tensorflow/tfjs-core').Tensor, scale: number) {
  const s = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask);
  return tf.matMul(tf.softmax(s), v);
}

export function kernelCases(): KernelCase[] {
  const [B, H, T, D] = [32, 8, 77, 64];
  const attnShape = [B, H, T, D];
  const attnFlops = 4 * B * H * T * T * D;
  const causalMask = (tf: Tf) => {
    const m = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
    return tf.tensor(m, [T, T]);
  };
  const rows = 2464;
  const width = 512;
  const nAdam = 12 * 4 * 2 * 8 * 512;
  return [
    matmulCase(1024, 1024, 1024, 'square'),
    matmulCase(2464, 2048, 512, '(ViT-B/32 text fc1, batch 32)'),
    matmulCase(6336, 64, 64, '(tiny CLIP q/k/v/o, 6336 token rows)'),
    matmulCase(6336, 8, 64, '(tiny CLIP LoRA down, r 8)'),
    {
      case: 'softmax', shape: `${rows}x${width}`, bytes: 8 * rows * width,
      ours: (ctx) => {
        const [x] = ourTensors(ctx, [[rows, width]]);
        return { run: () => noGrad(() => softmax(x)).dispose(), dispose: () => x.dispose() };
      },
      tfjs: (tf) => {
        const x = tf.tensor(hostData(rows * width, 1), [rows, width]);
        return { run: () => tf.softmax(x).dispose(), dispose: () => x.dispose() };
      },
    },
    {
      case: 'layer norm', shape: `${rows}x${width}`, bytes: 8 * rows * width,
      peerNote: 'tfjs: moments + arithmetic (it has no layer-norm kernel)',
      ours: (ctx) => {
        const [x, g, b] = ourTensors(ctx, [[rows, width], [width], [width]]);
        return { run: () => noGrad(() => layerNorm(x, g, b)).dispose(), dispose: () => [x, g, b].forEach((t) => t.dispose()) };
      },
      tfjs: (tf) => {
        const x = tf.tensor(hostData(rows * width, 1), [rows, width]);
        const g = tf.tensor(hostData(width, 2), [width]);
        const b = tf.tensor(hostData(width, 3), [width]);
        return {
          run: () => tf.tidy(() => {
            const { mean, variance } = tf.moments(x, -1, true);
            return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
          }).dispose(),
          dispose: () => [x, g, b].forEach((t) => t.dispose()),
        };
      },
    },
    {
      case: 'add', shape: `${rows}x2048`, bytes: 12 * rows * 2048,
      ours: (ctx) => {
        const [a, b] = ourTensors(ctx, [[rows, 2048], [rows, 2048]]);
        return { run: () => noGrad(() => add(a, b)).dispose(), dispose: () => { a.dispose(); b.dispose(); } };
      },
      tfjs: (tf) => {
        const a = tf.tensor(hostData(rows * 2048, 1), [rows, 2048]);
        const b = tf.tensor(hostData(rows * 2048, 2), [rows, 2048]);
        return { run: () => tf.add(a, b).dispose(), dispose: () => { a.dispose(); b.dispose(); } };
      },
    },
    {
      case: 'attention forward', shape: `${B}x${H}x${T}x${D} causal`, flops: attnFlops,
      peerNote: 'tfjs: unfused (matMul, mask, softmax, matMul)',
      ours: (ctx) => {
        const ts = ourTensors(ctx, [attnShape, attnShape, attnShape]);
        return {
          run: () => { const r = attentionForward(ts[0], ts[1], ts[2], { causal: true }); r.out.dispose(); r.lse.dispose(); },
          dispose: () => ts.forEach((t) => t.dispose()),
        };
      },
      tfjs: (tf) => {
        const [q, k, v] = [1, 2, 3].map((s) => tf.tensor(hostData(size(attnShape), s), attnShape));
        const mask = causalMask(tf);
        return {
          run: () => tf.tidy(() => tfAttention(tf, q, k, v, mask, 1 / Math.sqrt(D))).dispose(),
          dispose: () => [q, k, v, mask].forEach((t) => t.dispose()),
        };
      },
    },
    {
      case: 'attention forward+backward', shape: `${B}x${H}x${T}x${D} causal`, flops: 3.5 * attnFlops,
      peerNote: 'tfjs: tf.grads of the unfused attention',
      ours: (ctx) => {
        const ts = ourTensors(ctx, [attnShape, attnShape, attnShape, attnShape]);
        return {
          run: () => {
            const { out, lse } = attentionForward(ts[0], ts[1], ts[2], { causal: true });
            const g = attentionBackward(ts[0], ts[1], ts[2], out, lse, ts[3], { causal: true });
            for (const t of [out, lse, g.dq, g.dk, g.dv]) t?.dispose();
          },
          dispose: () => ts.forEach((t) => t.dispose()),
        };
      },
      tfjs: (tf) => {
        const [q, k, v, dy] = [1, 2, 3, 4].map((s) => tf.tensor(hostData(size(attnShape), s), attnShape));
        const mask = causalMask(tf);
        const grads = tf.grads((a, b, c) => tfAttention(tf, a, b, c, mask, 1 / Math.sqrt(D)) as never);
        return {
          run: () => grads([q, k, v], dy as never).forEach((t) => t.dispose()),
          dispose: () => [q, k, v, dy, mask].forEach((t) => t.dispose()),
        };
      },
    },
    {
      case: 'optimizer step', shape: `${(nAdam / 1e6).toFixed(2)}M params in 96 tensors`, bytes: 28 * nAdam,
      peerNote: 'tfjs: tf.train.adam (it has no AdamW; decoupled decay would add kernels)',
      ours: (ctx) => {
        const shapes = Array.from({ length: 96 }, (_, i) => (i % 2 ? [512, 8] : [8, 512]));
        const params = shapes.map((s) => { const p = fill(ctx, s, 0.01); p.requiresGrad = true; return p; });
        const grads = shapes.map((s) => fill(ctx, s, 0.001));
        const opt = new AdamW(ctx, [{ name: 'lora', params }], { lr: 1e-4 });
        return {
          run: () => { params.forEach((p, i) => (p.grad = grads[i])); opt.step(); },
          dispose: () => { params.forEach((p) => { p.grad = null; p.dispose(); }); grads.forEach((g) => g.dispose()); opt.dispose(); },
        };
      },
      tfjs: (tf) => {
        const shapes = Array.from({ length: 96 }, (_, i) => (i % 2 ? [512, 8] : [8, 512]));
        const vars = shapes.map((s, i) => tf.variable(tf.fill(s, 0.01), true, `p${i}`));
        const grads = shapes.map((s) => tf.fill(s, 0.001));
        const opt = tf.train.adam(1e-4);
        const named = vars.map((v, i) => ({ name: v.name, tensor: grads[i] }));
        return {
          run: () => opt.applyGradients(named),
          dispose: () => { vars.forEach((v) => v.dispose()); grads.forEach((g) => g.dispose()); opt.dispose(); },
        };
      },
    },
  ];
}
