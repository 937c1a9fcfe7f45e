/**
 * Size-bucketed pool of storage buffers. Buffers go back to the pool deterministically when
 * their last tensor is disposed; the pool never waits on the garbage collector.
 *
 * A bucket hands out its oldest free buffer (lowest creation number), not the last one freed:
 * then which buffer a request gets depends only on which are free, not on the order they were
 * freed in, so a training loop's steps get the same buffers every step and the context's cached
 * bind groups are hit (with last-freed-first the buffers rotate from step to step, and 85-90% of
 * a tiny-model NAST step's bind groups had to be made again).
 */
export class BufferPool {
  /** Per bucket, free buffers sorted by creation number, highest first (pop gives the oldest). */
  private free = new Map<number, GPUBuffer[]>();
  private order = new WeakMap<GPUBuffer, number>();
  private created = 0;
  private liveBytesNow = 0;
  private peak = 0;
  private cachedBytes = 0;
  private liveCount = 0;

  constructor(private readonly device: GPUDevice, private readonly maxBufferSize: number) {}

  /** Rounds a request up to its bucket: powers of two up to 64 KiB, then quarter steps. */
  static bucket(bytes: number): number {
    const b = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (b <= 65536) return 2 ** Math.ceil(Math.log2(b));
    const p = 2 ** Math.floor(Math.log2(b));
    const step = p / 4;
    return Math.ceil(b / step) * step;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.bucket(bytes);
    if (size > this.maxBufferSize) {
      throw new RangeError(
        `buffer of ${bytes} bytes exceeds the device's maxBufferSize (${this.maxBufferSize})`,
      );
    }
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.cachedBytes -= size;
    } else {
      buf = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.order.set(buf, this.created++);
    }
    this.liveBytesNow += size;
    this.liveCount++;
    if (this.liveBytesNow > this.peak) this.peak = this.liveBytesNow;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.liveBytesNow -= size;
    this.liveCount--;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    const n = this.order.get(buf) ?? -1;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.order.get(list[mid]) ?? -1) > n) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buf);
    this.cachedBytes += size;
  }

  /** Destroys every cached (unused) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.cachedBytes = 0;
  }

  get liveBytes(): number { return this.liveBytesNow; }
  get liveBuffers(): number { return this.liveCount; }
  get peakBytes(): number { return this.peak; }
  get cached(): number { return this.cachedBytes; }
  resetPeak(): void { this.peak = this.liveBytesNow; }
}
