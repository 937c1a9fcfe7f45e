/**
 * GPU time of stretches of work from timestamp queries, when the adapter has `timestamp-query`:
 * an empty compute pass submitted just before the work writes one timestamp, another submitted
 * just after it the second (a queue runs its submissions in order). On lavapipe they read the
 * CPU clock as the queue reaches them, so a span is the work plus the queue's handling of its
 * submission. Browsers may round timestamps (Chromium to 100 us unless its WebGPU developer
 * features are on), so short spans read coarse, possibly as zero.
 */
import type { GpuContext } from './context.js';

export class GpuTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private spans = 0;
  private open = false;

  private constructor(private readonly ctx: GpuContext, private readonly maxSpans: number) {
    this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: 2 * maxSpans });
    this.resolved = ctx.device.createBuffer({ size: 16 * maxSpans, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  /** A timer for up to `maxSpans` spans between takes, or null when the device has no timestamp queries. */
  static create(ctx: GpuContext, maxSpans = 64): GpuTimer | null {
    if (!Number.isInteger(maxSpans) || maxSpans < 1) throw new RangeError(`GpuTimer.create: maxSpans must be a positive integer, got ${maxSpans}`);
    return ctx.hasFeature('timestamp-query') ? new GpuTimer(ctx, maxSpans) : null;
  }

  /** Starts a span (spans past the query set's capacity go untimed). */
  begin(): void {
    if (this.open || this.spans >= this.maxSpans) return;
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

  /** Milliseconds of each span ended since the last call, in order. */
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
