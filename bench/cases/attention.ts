import type { GpuContext } from '../../src/engine/context.js';
import { tensor, type Tensor } from '../../src/engine/tensor.js';
import { attentionBackward, attentionForward, attentionVariantName, type AttentionOptions } from '../../src/engine/ops/index.js';
import type { BenchCase } from '../case.js';

/**
 * CLIP text-encoder attention: batch 32, 8 heads, 77 tokens, head dim 64, causal.
 * Flops count the full Tq x Tk score matrix (causal masking is not discounted), the usual
 * convention: forward 4*B*H*Tq*Tk*D (q k^T and p v, 2 flops per multiply-add). Backward is
 * counted as 2.5x that (10*B*H*Tq*Tk*D: recompute q k^T, dO v^T, dV, dQ, dK), the FlashAttention
 * paper's convention; our dQ and dK/dV kernels each recompute q k^T and dO v^T, so they execute
 * 14*B*H*Tq*Tk*D, and the reported figure is the useful rate.
 */
export function attentionCases(ctx: GpuContext): BenchCase[] {
  const [B, H, T, D] = [32, 8, 77, 64];
  const n = B * H * T * D;
  const rand = (seed: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.8;
    return a;
  };
  const shape = [B, H, T, D];
  const q = tensor(ctx, rand(1), shape);
  const k = tensor(ctx, rand(2), shape);
  const v = tensor(ctx, rand(3), shape);
  const dOut = tensor(ctx, rand(4), shape);
  const opts: AttentionOptions = { causal: true };
  const { out, lse } = attentionForward(q, k, v, opts);
  const flops = 4 * B * H * T * T * D;
  const all: Tensor[] = [q, k, v, dOut, out, lse];
  return [
    {
      kernel: 'attention.forward', shape: `${B}x${H}x${T}x${D}`, flops,
      note: `causal, ${attentionVariantName(ctx, D)}`,
      run: () => {
        const r = attentionForward(q, k, v, opts);
        r.out.dispose();
        r.lse.dispose();
      },
      dispose: () => {},
    },
    {
      kernel: 'attention.backward', shape: `${B}x${H}x${T}x${D}`, flops: 2.5 * flops,
      note: `causal, ${attentionVariantName(ctx, D)}; row term + dQ + dK/dV kernels`,
      run: () => {
        const g = attentionBackward(q, k, v, out, lse, dOut, opts);
        g.dq?.dispose();
        g.dk?.dispose();
        g.dv?.dispose();
      },
      dispose: () => all.forEach((t) => t.dispose()),
    },
  ];
}
