import type { BufferRange, GpuContext } from './context.js';
import { bytesPerElement, decodeHost, encodeHost, type DType, type HostArray, type HostData } from './dtype.js';
import { OpError, shapeStr } from './errors.js';
import type { GradNode } from './autograd.js';

/**
 * Reference-counted GPU memory behind one or more tensors (a reshape shares it). Pooled
 * storages return their buffer to the pool when the last reference goes; arena storages are
 * views into a buffer someone else owns (an optimizer's flat parameter arena).
 */
export class Storage {
  private refs = 1;

  constructor(
    readonly ctx: GpuContext,
    readonly buffer: GPUBuffer,
    readonly offset: number,
    readonly byteSize: number,
    private readonly pooled: boolean,
  ) {}

  get range(): BufferRange {
    return { buffer: this.buffer, offset: this.offset, size: this.byteSize };
  }

  get alive(): boolean {
    return this.refs > 0;
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0 && this.pooled) this.ctx.pool.release(this.buffer);
  }
}

let nextId = 1;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(op: string, shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new OpError(op, `invalid shape ${shapeStr(shape)}`);
  }
}

export class Tensor {
  readonly id = nextId++;
  /** Set for tensors that autograd should compute a gradient for. */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it was recorded for autograd. */
  node: GradNode | null = null;
  /** How many live autograd nodes take this tensor as an input (they keep its node alive). */
  graphUses = 0;
  name?: string;
  private store: Storage | null;

  constructor(readonly ctx: GpuContext, readonly shape: readonly number[], readonly dtype: DType, storage: Storage) {
    this.store = storage;
    const scopes = ctx.scopes;
    if (scopes.length > 0) scopes[scopes.length - 1].add(this);
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get byteSize(): number {
    return this.size * bytesPerElement(this.dtype);
  }

  get disposed(): boolean {
    return this.store === null;
  }

  /** The storage, or a clear error if this tensor was disposed. */
  storageFor(op: string): Storage {
    if (!this.store) {
      throw new OpError(op, `tensor${this.name ? ` '${this.name}'` : ''} ${shapeStr(this.shape)} ${this.dtype} was used after dispose()`);
    }
    return this.store;
  }

  /** The bound buffer range for kernels. */
  range(op: string): BufferRange {
    const s = this.storageFor(op);
    return { buffer: s.buffer, offset: s.offset, size: Math.max(4, this.byteSize) };
  }

  /** A second handle on the same storage (used by reshape and by autograd's saved tensors). */
  alias(shape: readonly number[] = this.shape): Tensor {
    const s = this.storageFor('alias');
    s.retain();
    return new Tensor(this.ctx, shape, this.dtype, s);
  }

  /**
   * Frees this handle; the memory returns to the pool when no handle or saved tensor uses it.
   * The autograd node stays while a live node consumes this tensor (a graph outlives the
   * intermediate handles a scope disposes); once nothing does, it is released with its saved
   * tensors, so a forward whose results are all disposed without backward leaks nothing.
   */
  dispose(): void {
    if (!this.store) return;
    this.store.release();
    this.store = null;
    if (this.node && this.graphUses === 0) this.node.release();
    for (const s of this.ctx.scopes) s.delete(this);
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /**
   * Moves this handle onto `storage` (taking over the caller's reference) and releases the old
   * one. For owners of flat arenas (the optimizer) that gather parameters into one buffer; other
   * handles on the old storage (aliases) keep the old memory.
   */
  rebind(storage: Storage): void {
    const old = this.storageFor('rebind');
    if (storage.byteSize < this.byteSize) {
      throw new OpError('rebind', `storage of ${storage.byteSize} bytes cannot hold ${shapeStr(this.shape)} ${this.dtype}`);
    }
    this.store = storage;
    old.release();
  }

  /** Keeps this tensor alive past the scope it was made in. */
  keep(): this {
    for (const s of this.ctx.scopes) s.delete(this);
    return this;
  }

  /** Reads the tensor back. f16 comes back widened to Float32Array. The only sync point. */
  async toArray(): Promise<HostArray> {
    const s = this.storageFor('toArray');
    const bytes = await this.ctx.read(s.range, this.byteSize);
    return decodeHost(bytes, this.size, this.dtype);
  }

  /** Reads a one-element tensor as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new OpError('item', `expected a tensor of one element, got ${shapeStr(this.shape)}`);
    return (await this.toArray())[0];
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** An uninitialised tensor from the pool. */
export function empty(ctx: GpuContext, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  checkShape('empty', shape);
  const bytes = Math.max(4, Math.ceil((sizeOf(shape) * bytesPerElement(dtype)) / 4) * 4);
  const buf = ctx.pool.acquire(bytes);
  return new Tensor(ctx, shape, dtype, new Storage(ctx, buf, 0, bytes, true));
}

/** A tensor holding host data (converted to `dtype`). */
export function tensor(ctx: GpuContext, data: HostData, shape?: readonly number[], dtype: DType = 'f32'): Tensor {
  const shp = shape ?? [data.length];
  checkShape('tensor', shp);
  if (sizeOf(shp) !== data.length) {
    throw new OpError('tensor', `${data.length} values do not fill shape ${shapeStr(shp)}`);
  }
  const t = empty(ctx, shp, dtype);
  ctx.upload(t.range('tensor'), encodeHost(data, dtype));
  return t;
}

/** A view of a region of a buffer someone else owns (never returned to the pool). */
export function viewTensor(ctx: GpuContext, buffer: GPUBuffer, offset: number, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const bytes = Math.ceil((sizeOf(shape) * bytesPerElement(dtype)) / 4) * 4;
  return new Tensor(ctx, shape, dtype, new Storage(ctx, buffer, offset, bytes, false));
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those it returns (found in
 * arrays and plain objects of the result) and those kept with `keep()`.
 */
export function scope<T>(ctx: GpuContext, fn: () => T): T {
  const made = new Set<Tensor>();
  ctx.scopes.push(made);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    ctx.scopes.pop();
    for (const t of made) t.dispose();
    throw e;
  }
  ctx.scopes.pop();
  if (result instanceof Promise) {
    throw new Error('scope(fn): fn returned a Promise; use scopeAsync');
  }
  closeScope(ctx, made, result);
  return result;
}

/** `scope` for async functions. Do not interleave two async scopes on one context. */
export async function scopeAsync<T>(ctx: GpuContext, fn: () => Promise<T>): Promise<T> {
  const made = new Set<Tensor>();
  ctx.scopes.push(made);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    ctx.scopes.splice(ctx.scopes.lastIndexOf(made), 1);
    for (const t of made) t.dispose();
    throw e;
  }
  ctx.scopes.splice(ctx.scopes.lastIndexOf(made), 1);
  closeScope(ctx, made, result);
  return result;
}

function closeScope(ctx: GpuContext, made: Set<Tensor>, result: unknown): void {
  const keep = new Set<Tensor>();
  collectTensors(result, keep, 0);
  for (const t of made) {
    if (keep.has(t)) continue;
    t.dispose();
  }
  // Returned tensors belong to the enclosing scope now.
  const outer = ctx.scopes[ctx.scopes.length - 1];
  if (outer) for (const t of keep) if (made.has(t)) outer.add(t);
}

function collectTensors(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, out, depth + 1);
    return;
  }
  if (v instanceof Map) {
    for (const x of v.values()) collectTensors(x, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v as Record<string, unknown>)) collectTensors(x, out, depth + 1);
  }
}
