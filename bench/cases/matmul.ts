import type { GpuContext } from '../../src/engine/context.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { fill, linear, matmul, matmulVariantName, setMatmulVariant } from '../../src/engine/ops/index.js';
import { noGrad } from '../../src/engine/autograd.js';
import type { BenchCase } from '../case.js';

export async function matmulCases(ctx: GpuContext): Promise<BenchCase[]> {
  const variant = matmulVariantName(ctx);
  const made: Tensor[] = [];
  const t = (shape: number[], v = 0.01) => {
    const x = fill(ctx, shape, v);
    made.push(x);
    return x;
  };
  const n = 1024;
  const a = t([n, n]);
  const b = t([n, n]);
  const flops = 2 * n * n * n;
  const cases: BenchCase[] = [
    {
      // The baseline the tuned kernel is compared with; about 1.5 GFLOP/s on lavapipe, so a
      // couple of iterations give a steady figure.
      kernel: 'matmul.naive', shape: `${n}x${n}x${n}`, flops, iterations: 2,
      run: () => {
        setMatmulVariant(ctx, 'naive');
        try {
          noGrad(() => matmul(a, b)).dispose();
        } finally {
          setMatmulVariant(ctx, null);
        }
      },
      dispose: () => {},
    },
    {
      kernel: `matmul.${variant}`, shape: `${n}x${n}x${n}`, flops, baseline: 'matmul.naive',
      run: () => noGrad(() => matmul(a, b)).dispose(),
      dispose: () => {},
    },
  ];
  // CLIP ViT-B/32 training shapes through linear (weights [out, in], the HF layout) with bias.
  const clip: [string, number, number, number][] = [
    ['text MLP fc1', 32 * 77, 2048, 512],
    ['vision MLP fc1', 32 * 50, 3072, 768],
    ['text attention proj', 32 * 77, 512, 512],
  ];
  for (const [what, M, N, K] of clip) {
    const x = t([M, K]);
    const w = t([N, K]);
    const bias = t([N]);
    cases.push({
      kernel: `matmul.${variant}`, shape: `${M}x${N}x${K}`, flops: 2 * M * N * K, note: `${what}: linear + bias`,
      run: () => noGrad(() => linear(x, w, bias)).dispose(),
      dispose: () => {},
    });
  }
  // The last case to run frees the shared inputs.
  const last = cases[cases.length - 1];
  last.dispose = () => {
    for (const x of made) x.dispose();
  };
  return cases;
}
