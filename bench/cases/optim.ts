import type { GpuContext } from '../../src/engine/context.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { fill } from '../../src/engine/ops/elementwise.js';
import { AdamW, type StepOptions } from '../../src/engine/optim/index.js';
import type { BenchCase } from '../case.js';

/**
 * One AdamW step, gradient gathering included. Two sets of gradient tensors alternate, so every
 * step copies them into the arenas as a training step would (the optimizer skips the copy when
 * it sees the same gradient tensors again). Bytes per parameter: gather 8 (read + write), update
 * 28 (read p, g, m, v; write p, m, v); clipping adds 4 (the norm reads the gradients once).
 * Memory is allocated on the first (warm-up) run, so filtered-out cases cost nothing.
 */
function adamwCase(ctx: GpuContext, kernel: string, shape: string, groups: number[][][], opts: StepOptions): BenchCase {
  const n = groups.flat().reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  let params: Tensor[] = [];
  let gradSets: Tensor[][] = [];
  let opt: AdamW | null = null;
  let k = 0;
  return {
    kernel,
    shape: `${shape} (${(n / 1e6).toFixed(2)}M params)`,
    bytes: n * (36 + (opts.maxGradNorm !== undefined ? 4 : 0)),
    run: () => {
      if (!opt) {
        const specs = groups.map((shapes, gi) => ({
          name: `g${gi}`,
          params: shapes.map((s) => {
            const p = fill(ctx, s, 0.01);
            p.requiresGrad = true;
            params.push(p);
            return p;
          }),
        }));
        opt = new AdamW(ctx, specs, { lr: 1e-4 });
        gradSets = [0.001, -0.002].map((v) => params.map((p) => fill(ctx, p.shape, v)));
      }
      const set = gradSets[k++ % 2];
      params.forEach((p, i) => (p.grad = set[i]));
      opt.step(opts);
    },
    dispose: () => {
      for (const p of params) p.grad = null;
      for (const t of gradSets.flat()) t.dispose();
      opt?.dispose();
      for (const p of params) p.dispose();
      params = [];
      gradSets = [];
      opt = null;
    },
  };
}

export function optimCases(ctx: GpuContext): BenchCase[] {
  // LoRA r = 8 on q, k, v, out of a ViT-B/32 text encoder (width 512): per layer 4 x (A 8x512,
  // B 512x8), one group per layer as NAST scales each layer's gradients.
  const lora = Array.from({ length: 12 }, () => Array.from({ length: 4 }, () => [[8, 512], [512, 8]]).flat());
  const big = [[[10_000_000]]];
  return [
    adamwCase(ctx, 'optim.adamw', 'LoRA r8 ViT-B/32 text, 12 groups', lora, {}),
    adamwCase(ctx, 'optim.adamw.clip', 'LoRA r8 ViT-B/32 text, 12 groups', lora, { maxGradNorm: 1 }),
    adamwCase(ctx, 'optim.adamw', '1 group', big, {}),
    adamwCase(ctx, 'optim.adamw.clip', '1 group', big, { maxGradNorm: 1 }),
  ];
}
