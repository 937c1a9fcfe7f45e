import { BufferPool } from './pool.js';
import { GpuError } from './errors.js';
import { requestGpuDevice, type AdapterSummary } from './adapter.js';
import type { Kernel, Uniforms } from '../kernels/kernel.js';
import type { Tensor } from './tensor.js';
import { WaitPacer, type PendingWork } from './dawn-wait.js';
import { decideTuning, type Tuning, type TuningOverride } from './tuning.js';

/** A storage binding: a buffer range a kernel reads or writes. */
export interface BufferRange {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

interface PipelineEntry {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Names the layout in bind-group cache keys. */
  id: number;
}

export interface ContextOptions {
  /** Forced kernel choices (tests, benchmarks); the adapter decides the rest. */
  tuning?: TuningOverride;
  /** Where `tuning` came from, for its error messages (e.g. the environment variable's name). */
  tuningSource?: string;
}

const UNIFORM_SLOT = 256;
const UNIFORM_ARENA_SLOTS = 4096;
/**
 * Bind groups kept for reuse. createBindGroup cost 55 us per call on dawn.node + lavapipe
 * (2026-12-02), about 30 ms of a tiny-model NAST step's 554 dispatches; a training loop binds the
 * same pooled buffers step after step. Cleared when full rather than tracked per buffer: buffer
 * ids are never reused, so an entry naming a destroyed buffer is merely dead, never hit.
 */
const BIND_GROUP_CACHE_MAX = 8192;

/**
 * One GPUDevice with its buffer pool, pipeline cache and the open command encoder.
 * Ops encode dispatches and return at once (eager API, lazy submission); `flush()` submits,
 * and reading back is the only point where the host waits for the GPU.
 */
export class GpuContext {
  readonly pool: BufferPool;
  /** Tensor scopes, innermost last: every tensor made is registered in the innermost. */
  readonly scopes: Set<Tensor>[] = [];
  /** When true, each op is submitted and checked on its own, so errors name the exact op. */
  debug = false;
  /** Number of submissions so far (for tests and benchmarks of batching). */
  submissions = 0;
  dispatches = 0;
  /** Bind groups created (the rest of `dispatches` reused a cached one). */
  bindGroupsCreated = 0;

  private pipelines = new Map<string, PipelineEntry>();
  // Memoised kernels are the same object every dispatch: found without hashing their WGSL.
  private pipelinesByKernel = new WeakMap<Kernel, PipelineEntry>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchOps: string[] = [];
  private pendingErrors: Promise<string | null>[] = [];
  private uncaptured: string[] = [];
  private lostInfo: string | null = null;
  private uniformArena: GPUBuffer;
  private uniformHost = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_ARENA_SLOTS);
  private uniformSlots = 0;
  private readbackPool: GPUBuffer[] = [];
  private opStack: string[] = [];
  private uploadStaging: GPUBuffer[] = [];
  private pacer = new WaitPacer();
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private nextPipelineId = 1;

  /** Every kernel-selection decision for this adapter (see tuning.ts). */
  tuning: Tuning;
  /** The override `tuning` was decided with (the context option, or the last setTuning). */
  tuningOverride: TuningOverride;

  constructor(readonly device: GPUDevice, readonly info: AdapterSummary, opts: ContextOptions = {}) {
    this.tuningOverride = opts.tuning ?? {};
    this.tuning = decideTuning(info, this.tuningOverride, opts.tuningSource);
    this.pool = new BufferPool(device, device.limits.maxBufferSize);
    this.uniformArena = device.createBuffer({
      size: UNIFORM_SLOT * UNIFORM_ARENA_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.lost.then((i) => {
      this.lostInfo = `${i.reason}: ${i.message}`;
    });
    device.addEventListener('uncapturederror', (ev) => {
      this.uncaptured.push((ev as GPUUncapturedErrorEvent).error.message);
    });
  }

  static async create(gpu: GPU, opts: ContextOptions = {}): Promise<GpuContext> {
    const { device, summary } = await requestGpuDevice(gpu);
    return new GpuContext(device, summary, opts);
  }

  /**
   * Replaces the tuning override (the adapter's defaults with `override` applied; `{}` restores
   * the defaults). Kernels already built stay cached; the next dispatch uses the new choice.
   */
  setTuning(override: TuningOverride, source = 'setTuning'): void {
    this.tuning = decideTuning(this.info, override, source);
    this.tuningOverride = override;
  }

  /** Runs `fn` (sync or async) with `override` on top of the current one, then restores it. */
  withTuning<T>(override: TuningOverride, fn: () => T): T {
    const prev = this.tuningOverride;
    this.setTuning({ ...prev, ...override }, 'withTuning');
    let r: T;
    try {
      r = fn();
    } catch (e) {
      this.setTuning(prev);
      throw e;
    }
    if (r instanceof Promise) return r.finally(() => this.setTuning(prev)) as T;
    this.setTuning(prev);
    return r;
  }

  hasFeature(name: string): boolean {
    return this.device.features.has(name);
  }

  /** One line for logs and benchmark output. */
  adapterInfo(): string {
    const i = this.info;
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ') || 'unknown adapter';
    const kind = i.cpuBacked ? 'CPU-backed' : 'GPU';
    return `${name} (${kind}${i.compatibilityMode ? ', compatibility mode' : ''}; features: ${i.features.join(', ') || 'none'})`;
  }

  /** Names the op being encoded, so GPU errors point at it. */
  withOp<T>(name: string, fn: () => T): T {
    this.opStack.push(name);
    try {
      return fn();
    } finally {
      this.opStack.pop();
    }
  }

  private checkAlive(): void {
    if (this.lostInfo) throw new GpuError(`GPU device lost (${this.lostInfo}); create a new context`);
  }

  private pipelineFor(kernel: Kernel): PipelineEntry {
    let entry = this.pipelinesByKernel.get(kernel) ?? this.pipelines.get(kernel.wgsl);
    if (entry) {
      this.pipelinesByKernel.set(kernel, entry);
      return entry;
    }
    const entries: GPUBindGroupLayoutEntry[] = [];
    let b = 0;
    if (kernel.uniforms.length > 0) {
      // Dynamic: the arena slot is an offset at setBindGroup, so the bind group can be reused.
      entries.push({ binding: b++, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } });
    }
    for (const access of kernel.storage) {
      entries.push({
        binding: b++,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: access === 'rw' ? 'storage' : 'read-only-storage' },
      });
    }
    const layout = this.device.createBindGroupLayout({ label: kernel.name, entries });
    const module = this.device.createShaderModule({ label: kernel.name, code: kernel.wgsl });
    const pipeline = this.device.createComputePipeline({
      label: kernel.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    entry = { pipeline, layout, id: this.nextPipelineId++ };
    this.pipelines.set(kernel.wgsl, entry);
    this.pipelinesByKernel.set(kernel, entry);
    return entry;
  }

  private beginBatch(): GPUCommandEncoder {
    if (!this.encoder) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.encoder = this.device.createCommandEncoder();
    }
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.beginBatch().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private writeUniforms<F extends string>(kernel: Kernel<F>, values: Uniforms<F>): number {
    // Checked without allocating: this runs for every dispatch.
    let count = 0;
    for (const _ in values) count++;
    let ok = count === kernel.fields.length;
    for (let i = 0; ok && i < kernel.fields.length; i++) ok = typeof values[kernel.fields[i]] === 'number';
    if (!ok) {
      const given = Object.keys(values);
      const missing = kernel.fields.filter((f) => typeof values[f] !== 'number');
      const extra = given.filter((k) => !(kernel.fields as readonly string[]).includes(k));
      throw new Error(`${kernel.name}: uniforms ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `unknown ${extra.join(', ')}` : ''} (fields: ${kernel.fields.join(', ')})`);
    }
    if (this.uniformSlots === UNIFORM_ARENA_SLOTS) this.flush();
    const slot = this.uniformSlots++;
    const view = new DataView(this.uniformHost, slot * UNIFORM_SLOT, UNIFORM_SLOT);
    kernel.uniforms.forEach((t, i) => {
      const v = values[kernel.fields[i]];
      if (t === 'f32') view.setFloat32(i * 4, v, true);
      else if (t === 'i32') view.setInt32(i * 4, v, true);
      else view.setUint32(i * 4, v >>> 0, true);
    });
    return slot * UNIFORM_SLOT;
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buffer, id);
    }
    return id;
  }

  /** The bind group of these ranges (and the uniform arena, when `uniformSize` > 0), cached. */
  private bindGroupFor(entry: PipelineEntry, uniformSize: number, storage: readonly BufferRange[]): GPUBindGroup {
    const sizes = storage.map((r) => Math.max(4, Math.ceil(r.size / 4) * 4));
    let key = `${entry.id}`;
    storage.forEach((r, i) => { key += `|${this.bufferId(r.buffer)}:${r.offset}:${sizes[i]}`; });
    let group = this.bindGroups.get(key);
    if (group) return group;
    const entries: GPUBindGroupEntry[] = [];
    let b = 0;
    if (uniformSize > 0) entries.push({ binding: b++, resource: { buffer: this.uniformArena, offset: 0, size: uniformSize } });
    storage.forEach((r, i) => entries.push({ binding: b++, resource: { buffer: r.buffer, offset: r.offset, size: sizes[i] } }));
    group = this.device.createBindGroup({ layout: entry.layout, entries });
    this.bindGroupsCreated++;
    if (this.bindGroups.size >= BIND_GROUP_CACHE_MAX) this.bindGroups.clear();
    this.bindGroups.set(key, group);
    return group;
  }

  /**
   * Encodes one dispatch. `storage` ranges bind from binding 1 (or 0 without uniforms), in the
   * kernel's declared order.
   */
  dispatch<F extends string>(kernel: Kernel<F>, uniforms: Uniforms<F>, storage: readonly BufferRange[], workgroups: readonly number[]): void {
    this.checkAlive();
    if (storage.length !== kernel.storage.length) {
      throw new Error(`${kernel.name}: expected ${kernel.storage.length} storage bindings, got ${storage.length}`);
    }
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(`${kernel.name}: dispatch ${x}x${y}x${z} exceeds ${maxWg} workgroups per dimension`);
    }
    const entry = this.pipelineFor(kernel);
    const hasUniforms = kernel.uniforms.length > 0;
    const offset = hasUniforms ? this.writeUniforms(kernel, uniforms) : 0;
    const bindGroup = this.bindGroupFor(entry, hasUniforms ? Math.max(16, kernel.uniforms.length * 4 + 15 & ~15) : 0, storage);
    const pass = this.computePass();
    pass.setPipeline(entry.pipeline);
    if (hasUniforms) pass.setBindGroup(0, bindGroup, [offset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    this.batchOps.push(this.opStack[this.opStack.length - 1] ?? kernel.name);
    if (this.debug) this.flush();
  }

  /** Splits `groups` workgroups into an (x, y) grid within the per-dimension limit. */
  grid1d(groups: number): [number, number] {
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= maxWg) return [Math.max(groups, 0), 1];
    const y = Math.ceil(groups / maxWg);
    return [Math.ceil(groups / y), y];
  }

  copy(src: BufferRange, dst: BufferRange, size: number): void {
    this.checkAlive();
    if (size === 0) return;
    this.endPass();
    this.beginBatch().copyBufferToBuffer(src.buffer, src.offset, dst.buffer, dst.offset, Math.ceil(size / 4) * 4);
    this.batchOps.push(this.opStack[this.opStack.length - 1] ?? 'copy');
  }

  upload(dst: BufferRange, data: Uint8Array): void {
    this.checkAlive();
    if (!this.encoder) {
      this.device.queue.writeBuffer(dst.buffer, dst.offset, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    // queue.writeBuffer would run before the encoded (unsubmitted) work, which may still read
    // the old contents of this pooled buffer; a staging copy keeps the order of the stream.
    const size = Math.ceil(data.byteLength / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(data);
    staging.unmap();
    this.copy({ buffer: staging, offset: 0, size }, dst, size);
    this.uploadStaging.push(staging);
  }

  /** Submits everything encoded so far. Cheap when nothing is pending. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.uniformSlots > 0) {
      this.device.queue.writeBuffer(this.uniformArena, 0, this.uniformHost, 0, this.uniformSlots * UNIFORM_SLOT);
      this.uniformSlots = 0;
    }
    const cmd = this.encoder.finish();
    this.encoder = null;
    this.device.queue.submit([cmd]);
    this.submissions++;
    for (const b of this.uploadStaging) b.destroy();
    this.uploadStaging = [];
    const ops = this.batchOps;
    this.batchOps = [];
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    const describe = (kind: string) => (e: GPUError | null) =>
      e ? `${kind} in a batch of ${ops.length} ops (${summarizeOps(ops)}): ${e.message}` : null;
    this.pendingErrors.push(validation.then(describe('WebGPU validation error')));
    this.pendingErrors.push(oom.then(describe('GPU out of memory')));
    if (this.debug) {
      // Debug mode surfaces errors at the op that caused them.
      void this.device.queue.onSubmittedWorkDone();
    }
  }

  /** Throws the first GPU error reported since the last check. */
  async checkErrors(): Promise<void> {
    const pending = this.pendingErrors;
    this.pendingErrors = [];
    const msgs = (await Promise.all(pending)).filter((m): m is string => m !== null);
    msgs.push(...this.uncaptured.splice(0));
    this.checkAlive();
    if (msgs.length > 0) throw new GpuError(msgs.join('\n'));
  }

  /** Submits pending work and waits for the GPU to finish it. */
  async sync(): Promise<void> {
    const work = this.unwaitedWork('sync');
    this.flush();
    await this.pacer.wait(work, () => this.device.queue.onSubmittedWorkDone());
    await this.checkErrors();
  }

  /** Copies a buffer range to the host. The only place the host waits on GPU results. */
  async read(src: BufferRange, size: number): Promise<ArrayBuffer> {
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    const idx = this.readbackPool.findIndex((b) => b.size >= bytes);
    const staging = idx >= 0
      ? this.readbackPool.splice(idx, 1)[0]
      : this.device.createBuffer({ size: BufferPool.bucket(bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(src, { buffer: staging, offset: 0, size: bytes }, bytes);
    const work = this.unwaitedWork(`read ${bytes} B`);
    this.flush();
    try {
      await this.pacer.wait(work, () => staging.mapAsync(GPUMapMode.READ, 0, bytes));
    } catch (e) {
      await this.checkErrors();
      throw e;
    }
    const out = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    if (this.readbackPool.length < 8) this.readbackPool.push(staging);
    else staging.destroy();
    await this.checkErrors();
    return out;
  }

  /**
   * The work a wait is for, named by the dispatches made since the last finished wait (how
   * many, and the ops of the open batch), so that repeated work, such as a training step or a
   * benchmark iteration, finds its previous wait times.
   */
  private unwaitedWork(kind: string): PendingWork {
    const dispatches = this.dispatches;
    return { key: `${kind} ${dispatches - this.pacer.dispatchesDone}: ${summarizeOps(this.batchOps)}`, dispatches };
  }

  destroy(): void {
    this.pool.trim();
    for (const b of this.readbackPool) b.destroy();
    this.bindGroups.clear();
    this.uniformArena.destroy();
    this.device.destroy();
  }
}

function summarizeOps(ops: string[]): string {
  const counts = new Map<string, number>();
  for (const o of ops) counts.set(o, (counts.get(o) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n > 1 ? `${k} x${n}` : k)).join(', ');
}
