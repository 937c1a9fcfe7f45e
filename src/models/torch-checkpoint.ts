/**
 * PyTorch checkpoints as a weight source, read without Python and without running anything:
 * the zip format of `torch.save` (PyTorch >= 1.6; `<name>/data.pkl` and `<name>/data/<key>`
 * storages), through the restricted unpickler of torch-pickle.ts. What it accepts:
 *   - a plain state dict (Hugging Face `pytorch_model.bin`, an OpenAI / open_clip state dict);
 *   - a training checkpoint with the state dict under "state_dict" (open_clip, NegBench), whose
 *     keys may carry DistributedDataParallel's "module." prefix (stripped).
 * A tensor is read from its storage when asked for, honouring storage offset and strides, and
 * converted to f32 (f16, bf16, f64 and integer storages). Browser-safe: bytes come through a
 * RandomAccess.
 */
import { getFloat16 } from '@petamoriken/float16';
import type { WeightSource } from './clip-weights.js';
import { ZipArchive, ZipError, type RandomAccess } from './zip-reader.js';
import { DTYPE_BYTES, TorchPickleError, torchStorage, unpickle, type PickleValue, type TensorRef } from './torch-pickle.js';

/** The first bytes of the legacy (pre-1.6, non-zip) torch.save format: a pickled magic number. */
function isLegacyTorch(head: Uint8Array): boolean {
  return head[0] === 0x80 && head[1] >= 2 && head[1] <= 5;
}

function isTensor(v: PickleValue): v is TensorRef {
  return typeof v === 'object' && v !== null && !(v instanceof Map) && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as TensorRef).kind === 'tensor';
}

/** The state dict inside a checkpoint object: the object itself, or its "state_dict" entry. */
function stateDictOf(obj: PickleValue, source: string): Map<PickleValue, PickleValue> {
  if (!(obj instanceof Map)) throw new TorchPickleError(source, 'the checkpoint is not a dict (a state dict, or a training checkpoint with "state_dict")');
  const inner = obj.get('state_dict');
  if (inner instanceof Map) return inner;
  if (inner !== undefined) throw new TorchPickleError(source, '"state_dict" is not a dict');
  return obj;
}

export class TorchCheckpoint implements WeightSource {
  private constructor(
    readonly source: string,
    private readonly zip: ZipArchive,
    private readonly prefix: string,
    private readonly tensors: Map<string, TensorRef>,
    /** Top-level entries of a training checkpoint other than the state dict ("epoch", "name", ...), numbers and strings only. */
    readonly extras: Record<string, number | string>,
  ) {}

  static async open(access: RandomAccess, source: string): Promise<TorchCheckpoint> {
    const head = await access.read(0, Math.min(4, access.size));
    if (isLegacyTorch(head)) {
      throw new TorchPickleError(source, 'the legacy (pre-1.6, non-zip) torch.save format is not read: re-save it with torch.save(torch.load(path), path) in PyTorch >= 1.6, or convert it to safetensors; nothing was run');
    }
    if (!(head[0] === 0x50 && head[1] === 0x4b)) throw new ZipError(source, 'not a PyTorch checkpoint (neither a zip archive from torch.save nor safetensors)');
    const zip = await ZipArchive.open(access, source);
    const pkl = zip.names().find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pkl) throw new ZipError(source, `no <name>/data.pkl in the archive (entries: ${zip.names().slice(0, 5).join(', ')}): not written by torch.save`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const obj = unpickle(await zip.read(pkl), source, (pid) => torchStorage(pid, source));
    const dict = stateDictOf(obj, source);
    const tensors = new Map<string, TensorRef>();
    const strip = [...dict.keys()].every((k) => typeof k === 'string' && k.startsWith('module.'));
    for (const [k, v] of dict) {
      if (typeof k !== 'string') throw new TorchPickleError(source, `a state-dict key that is not a string (${typeof k})`);
      if (!isTensor(v)) continue;
      tensors.set(strip ? k.slice('module.'.length) : k, v);
    }
    if (tensors.size === 0) throw new TorchPickleError(source, 'no tensors in the state dict');
    const extras: Record<string, number | string> = {};
    if (obj instanceof Map && obj.has('state_dict')) {
      for (const [k, v] of obj) if (typeof k === 'string' && (typeof v === 'number' || typeof v === 'string')) extras[k] = v;
    }
    for (const [k, t] of tensors) {
      const entry = `${prefix}data/${t.storage.key}`;
      if (!zip.entries.has(entry)) throw new ZipError(source, `${k}: its storage ${entry} is not in the archive`);
      if (t.shape.length !== t.stride.length) throw new TorchPickleError(source, `${k}: ${t.shape.length} sizes but ${t.stride.length} strides`);
      // The farthest element the view reaches must lie inside the storage.
      const last = t.shape.some((s) => s === 0) ? t.offset : t.offset + t.shape.reduce((s, n, i) => s + (n - 1) * t.stride[i], 0);
      if (t.offset < 0 || t.stride.some((s) => s < 0) || last >= Math.max(1, t.storage.numel)) {
        throw new TorchPickleError(source, `${k}: the view (offset ${t.offset}, size [${t.shape}], stride [${t.stride}]) runs outside its storage of ${t.storage.numel} elements`);
      }
    }
    return new TorchCheckpoint(source, zip, prefix, tensors, extras);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  private ref(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (!t) throw new TorchPickleError(this.source, `no tensor ${key}`);
    return t;
  }

  shape(key: string): readonly number[] {
    return this.ref(key).shape;
  }

  dtype(key: string): string {
    return this.ref(key).storage.dtype;
  }

  /** The tensor in row-major order as f32. Only the storage bytes the view spans are read. */
  async read(key: string): Promise<Float32Array> {
    const t = this.ref(key);
    const bytes = DTYPE_BYTES[t.storage.dtype];
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (n === 0) return out;
    const first = t.offset;
    const last = t.offset + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
    const raw = await this.zip.readRange(`${this.prefix}data/${t.storage.key}`, first * bytes, (last - first + 1) * bytes);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const get = element(t.storage.dtype, view);
    const rank = t.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let at = 0;
    for (let i = 0; i < n; i++) {
      out[i] = get(at * bytes);
      // Odometer over the shape, moving `at` by the strides.
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        at += t.stride[d];
        if (idx[d] < t.shape[d]) break;
        at -= t.stride[d] * t.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }
}

function element(dtype: TensorRef['storage']['dtype'], v: DataView): (byteOffset: number) => number {
  switch (dtype) {
    case 'F32': return (o) => v.getFloat32(o, true);
    case 'F16': return (o) => getFloat16(v, o, true);
    case 'BF16': {
      // bf16 is the upper half of an f32.
      const scratch = new DataView(new ArrayBuffer(4));
      return (o) => {
        scratch.setUint32(0, v.getUint16(o, true) << 16, false);
        return scratch.getFloat32(0, false);
      };
    }
    case 'F64': return (o) => v.getFloat64(o, true);
    case 'I64': return (o) => Number(v.getBigInt64(o, true));
    case 'I32': return (o) => v.getInt32(o, true);
    case 'I16': return (o) => v.getInt16(o, true);
    case 'I8': return (o) => v.getInt8(o);
    case 'U8': case 'BOOL': return (o) => v.getUint8(o);
  }
}
