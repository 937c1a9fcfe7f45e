/**
 * GPU time of a stretch of work from timestamp queries, when the adapter has `timestamp-query`:
 * an empty compute pass submitted before the work writes one timestamp, another submitted after
 * it the second (a queue runs its submissions in order). Browsers may round timestamps (Chromium
 * to 100 us unless its WebGPU developer features are on), so short spans read coarse.
 * bench/run.ts times kernels the same way in Node.
 */
import type { GpuContext } from './lib-entry.js';

export class GpuTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private spans = 0;
  private open = false;
  private static readonly MAX_SPANS = 64;

  private constructor(private readonly ctx: GpuContext) {
    this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: 2 * GpuTimer.MAX_SPANS });
    this.resolved = ctx.device.createBuffer({ size: 16 * GpuTimer.MAX_SPANS, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  /** A timer, or null when the device has no timestamp queries. */
  static create(ctx: GpuContext): GpuTimer | null {
    return ctx.hasFeature('timestamp-query') ? new GpuTimer(ctx) : null;
  }

  /** Starts a span (spans past the query set's capacity go untimed). */
  begin(): void {
    if (this.open || this.spans >= GpuTimer.MAX_SPANS) return;
    this.mark(2 * this.spans);
    this.open = true;
  }

  end(): void {
    if (!this.open) return;
    this.mark(2 * this.spans + 1);
    this.spans++;
    this.open = false;
  }

  private mark(index: number): void {
    this.ctx.flush(); // what the context has encoded goes before the timestamp
    const enc = this.ctx.device.createCommandEncoder();
    enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: index } }).end();
    this.ctx.device.queue.submit([enc.finish()]);
  }

  /** Milliseconds of each span since the last call. */
  async take(): Promise<number[]> {
    const n = 2 * this.spans;
    this.spans = 0;
    if (n === 0) return [];
    const enc = this.ctx.device.createCommandEncoder();
    enc.resolveQuerySet(this.querySet, 0, n, this.resolved, 0);
    this.ctx.flush();
    this.ctx.device.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await this.ctx.read({ buffer: this.resolved, offset: 0, size: n * 8 }, n * 8));
    const out: number[] = [];
    for (let i = 0; i < n; i += 2) out.push(Number(t[i + 1] - t[i]) / 1e6);
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolved.destroy();
  }
}
