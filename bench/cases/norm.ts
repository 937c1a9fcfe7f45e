import type { GpuContext } from '../../src/engine/context.js';
import { empty, tensor, type Tensor } from '../../src/engine/tensor.js';
import { noGrad } from '../../src/engine/autograd.js';
import { crossEntropy, fill, l2Normalize, layerNorm, logSoftmax, softmax, sum } from '../../src/engine/ops/index.js';
import type { BenchCase } from '../case.js';

/**
 * Row kernels (softmax, layer norm, cross-entropy, L2 normalisation) and the full-tensor sum.
 * GB/s counts the bytes an ideal kernel moves (each input read once, each output written
 * once); the softmax and layer-norm kernels actually read their input rows twice.
 */

/** Runs only the backward of the op that made `y` (its saved tensors are kept for reuse). */
function backwardOnly(y: Tensor, g: Tensor): () => void {
  return () => {
    for (const t of y.node!.backward(g)) t?.dispose();
  };
}

/** Forward only: inputs require grad (for the backward cases), so keep autograd out of it. */
const fwd = (f: () => Tensor) => () => noGrad(f).dispose();

function filled(ctx: GpuContext, shape: number[], v: number, requiresGrad = false): Tensor {
  const t = fill(ctx, shape, v);
  t.requiresGrad = requiresGrad;
  return t;
}

export function normCases(ctx: GpuContext): BenchCase[] {
  const cases: BenchCase[] = [];
  const owned: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };

  for (const [rows, d] of [[32 * 8 * 77, 77], [256, 49408]]) {
    const n = rows * d;
    const x = keep(filled(ctx, [rows, d], 0.5, true));
    cases.push({ kernel: 'norm.softmax', shape: `${rows}x${d}`, bytes: n * 8, run: fwd(() => softmax(x)), dispose: () => {} });
    cases.push({ kernel: 'norm.logSoftmax', shape: `${rows}x${d}`, bytes: n * 8, run: fwd(() => logSoftmax(x)), dispose: () => {} });
    const y = keep(softmax(x));
    const g = keep(filled(ctx, [rows, d], 1));
    cases.push({ kernel: 'norm.softmax.backward', shape: `${rows}x${d}`, bytes: n * 12, run: backwardOnly(y, g), dispose: () => {} });
  }

  for (const [rows, d] of [[32 * 77, 512], [32 * 50, 768]]) {
    const n = rows * d;
    const x = keep(filled(ctx, [rows, d], 0.25, true));
    const gamma = keep(filled(ctx, [d], 1, true));
    const beta = keep(filled(ctx, [d], 0, true));
    cases.push({ kernel: 'norm.layerNorm', shape: `${rows}x${d}`, bytes: n * 8, run: fwd(() => layerNorm(x, gamma, beta)), dispose: () => {} });
    const y = keep(layerNorm(x, gamma, beta));
    const g = keep(filled(ctx, [rows, d], 1));
    // dx reads x and g and writes dx; dgamma / dbeta read x and g again.
    cases.push({ kernel: 'norm.layerNorm.backward', shape: `${rows}x${d}`, bytes: n * 20, run: backwardOnly(y, g), dispose: () => {} });
  }

  {
    const [n, c] = [32, 32];
    const logits = keep(filled(ctx, [n, c], 0.1, true));
    const targets = keep(tensor(ctx, Array.from({ length: n }, (_, i) => i), [n], 'i32'));
    cases.push({ kernel: 'norm.crossEntropy', shape: `${n}x${c}`, bytes: n * c * 4, run: fwd(() => crossEntropy(logits, targets)), dispose: () => {} });
    const loss = keep(crossEntropy(logits, targets));
    const g = keep(filled(ctx, [], 1));
    cases.push({ kernel: 'norm.crossEntropy.backward', shape: `${n}x${c}`, bytes: n * c * 8, run: backwardOnly(loss, g), dispose: () => {} });
  }

  {
    const x = keep(filled(ctx, [32, 512], 0.5, true));
    cases.push({ kernel: 'norm.l2Normalize', shape: '32x512', bytes: 32 * 512 * 8, run: fwd(() => l2Normalize(x)), dispose: () => {} });
  }

  {
    const n = 32 * 77 * 2048;
    const x = keep(empty(ctx, [n + 3]));
    cases.push({ kernel: 'reduce.sum.all', shape: `${n + 3}`, bytes: (n + 3) * 4, run: fwd(() => sum(x)), dispose: () => {} });
  }

  // The last case frees everything the family made.
  cases[cases.length - 1].dispose = () => {
    for (const t of owned) {
      t.node?.release();
      t.dispose();
    }
  };
  return cases;
}
