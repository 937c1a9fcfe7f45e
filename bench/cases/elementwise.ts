import type { GpuContext } from '../../src/engine/context.js';
import { empty } from '../../src/engine/tensor.js';
import { add, gelu, sumTo } from '../../src/engine/ops/index.js';
import type { BenchCase } from '../case.js';

export function elementwiseCases(ctx: GpuContext): BenchCase[] {
  const n = 32 * 77 * 2048;
  const a = empty(ctx, [32 * 77, 2048]);
  const b = empty(ctx, [32 * 77, 2048]);
  const bias = empty(ctx, [2048]);
  const cases: BenchCase[] = [
    {
      kernel: 'elementwise.add', shape: `${32 * 77}x2048`, bytes: n * 12,
      run: () => add(a, b).dispose(), dispose: () => {},
    },
    {
      kernel: 'elementwise.add.broadcast', shape: `${32 * 77}x2048+2048`, bytes: n * 8,
      run: () => add(a, bias).dispose(), dispose: () => {},
    },
    {
      kernel: 'elementwise.gelu', shape: `${32 * 77}x2048`, bytes: n * 8,
      run: () => gelu(a).dispose(), dispose: () => {},
    },
    {
      // The bias gradient of a linear layer: column sums.
      kernel: 'elementwise.sumTo', shape: `${32 * 77}x2048->2048`, bytes: n * 4,
      run: () => sumTo(a, [2048]).dispose(), dispose: () => { a.dispose(); b.dispose(); bias.dispose(); },
    },
  ];
  return cases;
}
