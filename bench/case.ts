import type { GpuContext } from '../src/engine/context.js';

/**
 * One benchmark row: `run` encodes the work once (no readback); the runner submits and waits.
 * Give `flops` for compute-bound kernels (GFLOP/s is reported) or `bytes` moved for
 * memory-bound ones (GB/s).
 */
export interface BenchCase {
  kernel: string;
  shape: string;
  flops?: number;
  bytes?: number;
  run(): void;
  dispose(): void;
  /** A remark printed beside the result (e.g. which kernel variant ran). */
  note?: string;
  /**
   * The kernel of an earlier row with the same shape to compare with: the row then shows how
   * many times faster it is (e.g. 'matmul.naive').
   */
  baseline?: string;
  /** Measure exactly this many iterations after the warm-up, whatever the time budget (slow kernels). */
  iterations?: number;
}

export type CaseFactory = ((ctx: GpuContext) => BenchCase[] | Promise<BenchCase[]>) & {
  /** The kernel names the factory makes, when building its cases is costly (lets --only skip it). */
  kernels?: readonly string[];
};
