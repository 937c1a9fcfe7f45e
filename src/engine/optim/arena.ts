/**
 * Flat GPU arenas for one parameter group: parameters, gradients and the two Adam moments each
 * live in one buffer, so one dispatch updates the whole group. Every parameter's slot starts at
 * a 256-byte boundary (the largest minStorageBufferOffsetAlignment WebGPU allows), because the
 * parameter tensors become views into the arena and ops bind them with their offset. Gaps and
 * tails are zero in every arena, so the update leaves them zero (m = v = g = 0 gives a zero
 * step) and kernels can run over the arena as whole vec4s.
 */
import type { BufferRange, GpuContext } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { Storage, type Tensor } from '../tensor.js';
import { fillKernel } from '../../kernels/elementwise.js';
import { run1d } from '../ops/util.js';
import { bytesPerElement } from '../dtype.js';

/** Bytes of one element of the arenas: parameters, gradients and moments are f32. */
const F32 = bytesPerElement('f32');

export const SLOT_ALIGN_BYTES = 256;
const ALIGN = SLOT_ALIGN_BYTES / F32;

export interface Slot {
  readonly param: Tensor;
  /** Offset in floats (a multiple of 64). */
  readonly offset: number;
  readonly size: number;
}

export class ParamArena {
  readonly slots: Slot[];
  /** Floats in each arena, a multiple of 64. */
  readonly length: number;
  readonly params: GPUBuffer;
  readonly grads: GPUBuffer;
  readonly m: GPUBuffer;
  readonly v: GPUBuffer;
  /** Ids of the gradient tensors last copied in (null: none, slot zeroed); undefined: never gathered. */
  private gathered: (number | null)[] | undefined;
  /** Slots of the gradient arena that may hold non-zero values. */
  private dirty: boolean[];

  constructor(private readonly ctx: GpuContext, params: readonly Tensor[], readonly label: string) {
    let off = 0;
    this.slots = params.map((p) => {
      const s = { param: p, offset: off, size: p.size };
      off += Math.ceil(p.size / ALIGN) * ALIGN;
      return s;
    });
    this.length = Math.max(ALIGN, off);
    const bytes = this.length * F32;
    const limit = Math.min(ctx.device.limits.maxStorageBufferBindingSize, ctx.device.limits.maxBufferSize);
    if (bytes > limit) {
      throw new OpError('AdamW', `${label}: ${off} floats (${bytes} bytes with alignment) exceed the device's storage binding limit of ${limit} bytes; split the parameters into several groups`);
    }
    this.params = ctx.pool.acquire(bytes);
    this.grads = ctx.pool.acquire(bytes);
    this.m = ctx.pool.acquire(bytes);
    this.v = ctx.pool.acquire(bytes);
    this.dirty = this.slots.map(() => false);
    ctx.withOp('AdamW.init', () => {
      for (const b of [this.params, this.grads, this.m, this.v]) this.zero({ buffer: b, offset: 0, size: bytes }, this.length);
      for (const s of this.slots) {
        if (s.size === 0) continue;
        const p = s.param;
        ctx.copy(p.range('AdamW'), this.slotRange(this.params, s), p.byteSize);
        p.rebind(new Storage(ctx, this.params, s.offset * F32, s.size * F32, false));
      }
    });
  }

  range(buffer: GPUBuffer): BufferRange {
    return { buffer, offset: 0, size: this.length * F32 };
  }

  private slotRange(buffer: GPUBuffer, s: Slot): BufferRange {
    return { buffer, offset: s.offset * F32, size: s.size * F32 };
  }

  private zero(r: BufferRange, n: number): void {
    run1d(this.ctx, fillKernel('f32'), n, { n, v: 0 }, [r]);
  }

  /** Throws before anything is encoded if a gradient does not fit its parameter. */
  checkGrads(): void {
    this.slots.forEach((s, i) => {
      const g = s.param.grad;
      if (!g) return;
      const p = s.param;
      if (g.dtype !== 'f32' || g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k])) {
        throw new OpError('AdamW', `${this.label} param ${i}${p.name ? ` '${p.name}'` : ''} ${shapeStr(p.shape)} f32 has a ${g.dtype} gradient ${shapeStr(g.shape)}`);
      }
      g.storageFor('AdamW');
    });
  }

  /**
   * Copies the parameters' current gradients into the gradient arena; a parameter without one
   * contributes zeros. Skipped when the same gradient tensors were gathered last time (tensors
   * are immutable once made: no op writes in place, and backward accumulates into a new
   * tensor), so `gradNorm()` followed by `step()` copies once. Returns whether it copied.
   */
  gather(): boolean {
    const ids = this.slots.map((s) => s.param.grad?.id ?? null);
    if (this.gathered && ids.every((id, i) => id === this.gathered![i])) return false;
    this.slots.forEach((s, i) => {
      if (s.size === 0) return;
      const g = s.param.grad;
      if (g) {
        this.ctx.copy(g.range('AdamW'), this.slotRange(this.grads, s), s.size * F32);
        this.dirty[i] = true;
      } else if (this.dirty[i]) {
        this.zero(this.slotRange(this.grads, s), s.size);
        this.dirty[i] = false;
      }
    });
    this.gathered = ids;
    return true;
  }

  /** m and v per parameter, read back with one copy per arena. */
  async readMoments(): Promise<{ m: Float32Array[]; v: Float32Array[] }> {
    const split = (buf: ArrayBuffer) => this.slots.map((s) => new Float32Array(buf, s.offset * F32, s.size).slice());
    const m = split(await this.ctx.read(this.range(this.m), this.length * F32));
    const v = split(await this.ctx.read(this.range(this.v), this.length * F32));
    return { m, v };
  }

  /** Uploads m and v (one array per parameter, sizes already checked). */
  writeMoments(m: readonly ArrayLike<number>[], v: readonly ArrayLike<number>[]): void {
    for (const [buf, src] of [[this.m, m], [this.v, v]] as const) {
      const host = new Float32Array(this.length);
      this.slots.forEach((s, i) => host.set(src[i], s.offset));
      this.ctx.upload(this.range(buf), new Uint8Array(host.buffer));
    }
  }

  /**
   * Moves every live parameter back into a pooled buffer of its own (with its current value)
   * and returns the arenas to the pool.
   */
  release(): void {
    this.ctx.withOp('AdamW.dispose', () => {
      for (const s of this.slots) {
        const p = s.param;
        if (p.disposed || s.size === 0) continue;
        const buf = this.ctx.pool.acquire(s.size * F32);
        this.ctx.copy(this.slotRange(this.params, s), { buffer: buf, offset: 0, size: s.size * F32 }, s.size * F32);
        p.rebind(new Storage(this.ctx, buf, 0, s.size * F32, true));
      }
    });
    for (const b of [this.params, this.grads, this.m, this.v]) this.ctx.pool.release(b);
  }
}
