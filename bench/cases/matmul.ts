import type { GpuContext } from '../../src/engine/context.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { fill, linear, matmul, matmulPlanFor, matmulVariantName, type Activation } from '../../src/engine/ops/index.js';
import { matmulKernel } from '../../src/kernels/matmul.js';
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
        ctx.withTuning({ matmul: 'naive' }, () => noGrad(() => matmul(a, b)).dispose());
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
  // The tiny CLIP's fine-tuning shapes (width 64, MLP 256, LoRA r = 8; the text tower sees
  // about 6336 token rows per batch of 32): forward linears (transB, bias), dX = dY W (NN),
  // dW = dY^T X (TN: a long K over the rows, tiny M and N) and the vision tower's 544 rows.
  const rows = 6336;
  const tiny: [string, boolean, boolean, number, number, number, boolean, Activation][] = [
    ['attn proj fwd', false, true, rows, 64, 64, true, 'none'],
    ['fc1 fwd + quick_gelu', false, true, rows, 256, 64, true, 'quick_gelu'],
    ['fc2 fwd', false, true, rows, 64, 256, true, 'none'],
    ['LoRA A fwd', false, true, rows, 8, 64, false, 'none'],
    ['LoRA B fwd', false, true, rows, 64, 8, false, 'none'],
    ['vision proj fwd', false, true, 544, 64, 64, true, 'none'],
    ['attn proj dX', false, false, rows, 64, 64, false, 'none'],
    ['fc1 dX', false, false, rows, 64, 256, false, 'none'],
    ['fc2 dX', false, false, rows, 256, 64, false, 'none'],
    ['LoRA dY B', false, false, rows, 8, 64, false, 'none'],
    ['LoRA dX', false, false, rows, 64, 8, false, 'none'],
    ['attn proj dW', true, false, 64, 64, rows, false, 'none'],
    ['fc1 dW', true, false, 256, 64, rows, false, 'none'],
    ['LoRA dB', true, false, 64, 8, rows, false, 'none'],
    ['LoRA dA', true, false, 8, 64, rows, false, 'none'],
  ];
  for (const [what, transA, transB, M, N, K, withBias, activation] of tiny) {
    const x = t(transA ? [K, M] : [M, K]);
    const w = t(transB ? [N, K] : [K, N]);
    const bias = withBias ? t([N]) : undefined;
    // Which kernel the shape gets (transC: operands swapped, C^T stored transposed).
    const plan = matmulPlanFor(ctx, transA, transB, M, N, K);
    const how = `${matmulKernel(plan).name}${plan.splits > 1 ? ` + split-K x${plan.splits}` : ''}`;
    cases.push({
      kernel: `matmul.${variant}`, shape: `${M}x${N}x${K}`, flops: 2 * M * N * K, note: `tiny CLIP ${what}: ${how}`,
      run: () => noGrad(() => matmul(x, w, { transA, transB, bias, activation })).dispose(),
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
