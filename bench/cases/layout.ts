import type { GpuContext } from '../../src/engine/context.js';
import { empty, tensor } from '../../src/engine/tensor.js';
import { embedding, permute, transpose } from '../../src/engine/ops/index.js';
import type { BenchCase } from '../case.js';

/**
 * Data movement at CLIP text-encoder sizes (batch 32, 77 tokens, 8 heads of 64, vocabulary
 * 49408 x 512). Bytes are those read plus those written. `layout.copy-ref` is a plain buffer
 * copy of the transpose's bytes: the bandwidth a copy can reach on this adapter.
 */
export function layoutCases(ctx: GpuContext): BenchCase[] {
  const n = 32 * 77 * 512;
  const x3 = empty(ctx, [32 * 8, 77, 64]);
  const x4 = empty(ctx, [32, 77, 8, 64]);
  const dst = empty(ctx, [n]);
  const vocab = 49408;
  const weight = empty(ctx, [vocab, 512]);
  let seed = 12345;
  const ids = tensor(ctx, Array.from({ length: 32 * 77 }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % vocab;
  }), [32, 77], 'i32');
  return [
    {
      kernel: 'layout.copy-ref', shape: `${n} f32`, bytes: n * 8,
      run: () => ctx.copy(x3.range('bench'), dst.range('bench'), n * 4), dispose: () => dst.dispose(),
    },
    {
      kernel: 'layout.transpose', shape: '256x77x64 -> 256x64x77', bytes: n * 8,
      run: () => transpose(x3).dispose(), dispose: () => x3.dispose(),
    },
    {
      kernel: 'layout.permute', shape: '32x77x8x64 -> 32x8x77x64', bytes: n * 8,
      run: () => permute(x4, [0, 2, 1, 3]).dispose(), dispose: () => x4.dispose(),
    },
    {
      kernel: 'layout.embedding', shape: '32x77 ids of 49408x512', bytes: n * 8 + 32 * 77 * 4,
      run: () => embedding(weight, ids).dispose(), dispose: () => { weight.dispose(); ids.dispose(); },
    },
  ];
}
