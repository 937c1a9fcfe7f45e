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
  /** A reference figure printed beside the result (e.g. the naive kernel's GFLOP/s). */
  note?: string;
}

export type CaseFactory = (ctx: GpuContext) => BenchCase[] | Promise<BenchCase[]>;
