/**
 * safetensors reader and writer, browser-safe (works on ArrayBuffer / Uint8Array; the Node file
 * access is in safetensors-node.ts). Format: u64 little-endian header length N, N bytes of JSON
 * header {key: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}, then the
 * raw little-endian data; offsets are relative to the first byte after the header.
 */
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import { duplicateTopLevelKey } from './json-keys.js';

export type SafetensorsDtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E4M3' | 'F8_E5M2' | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

/** Bytes per element of every dtype the format defines (so headers of any file validate). */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length is usually huge). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(readonly source: string, readonly key: string | undefined, message: string) {
    super(key === undefined ? `${source}: ${message}` : `${source}: tensor ${JSON.stringify(key)}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  key: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Element count (1 for a scalar, shape []). */
  numel: number;
  /** Byte range relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  source: string;
  /** Bytes of JSON (N); the data section starts at 8 + N. */
  headerLength: number;
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string>;
  /** In header order. */
  tensors: Map<string, TensorInfo>;
}

export type TensorData =
  | Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array
  | BigInt64Array | BigUint64Array;

/**
 * F32 / F16 / BF16 decode to Float32Array, F64 to Float64Array, integers to the matching typed
 * array (I64 / U64 as BigInt arrays), BOOL to Uint8Array. F8 types are validated but not decoded.
 */
export interface DecodedTensor {
  key: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** What a loaded checkpoint offers, whether in memory, one file, or shards. */
export interface SafetensorsSource {
  /** File name(s), for messages. */
  readonly source: string;
  readonly metadata: Readonly<Record<string, string>>;
  keys(): string[];
  has(key: string): boolean;
  /** Throws a SafetensorsError naming the file and key when the key is missing. */
  info(key: string): TensorInfo;
  shape(key: string): readonly number[];
  /** A float tensor (F32, F16, BF16, F64) as float32; other dtypes are an error. */
  read(key: string): Float32Array | Promise<Float32Array>;
  readTensor(key: string): DecodedTensor | Promise<DecodedTensor>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export const isFloatDtype = (d: SafetensorsDtype): boolean => d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64';

// ---------------------------------------------------------------------------------------------
// Header

/** Reads N from the first 8 bytes and checks it against the file size. */
export function readHeaderLength(first8: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || first8.byteLength < 8) {
    throw new SafetensorsError(source, undefined, `file is ${fileSize} bytes, too short for the 8-byte header length (truncated or not a safetensors file)`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(source, undefined, `header length ${n} is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file or corrupt`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(source, undefined, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated or corrupt`);
  }
  if (n < 2n) throw new SafetensorsError(source, undefined, `header length ${n} is too small for a JSON object`);
  return Number(n);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseEntry(key: string, v: unknown, dataBytes: number, source: string): TensorInfo {
  const fail = (msg: string) => new SafetensorsError(source, key, msg);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fail('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = v as Record<string, unknown>;
  if (typeof dtype !== 'string') throw fail(`dtype is ${JSON.stringify(dtype)}, expected a string`);
  if (!Object.hasOwn(DTYPE_SIZE, dtype)) throw fail(`unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) throw fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) {
    throw fail(`data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes after the header): truncated file?`);
  }
  let numel = 1;
  for (const d of shape as number[]) numel *= d;
  const size = DTYPE_SIZE[dtype as SafetensorsDtype];
  if (!Number.isSafeInteger(numel * size)) throw fail(`shape [${shape.join(', ')}] is too large`);
  if (end - begin !== numel * size) {
    throw fail(`shape [${shape.join(', ')}] of ${dtype} needs ${numel * size} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { key, dtype: dtype as SafetensorsDtype, shape: shape as number[], numel, begin, end };
}

/** Parses and validates the JSON header (the N bytes after the length). */
export function parseHeader(json: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataStart = 8 + headerLength;
  const dataBytes = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new SafetensorsError(source, undefined, 'header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, undefined, `header is not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError(source, undefined, 'header is not a JSON object');
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [key, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(source, key, 'is not an object');
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw new SafetensorsError(source, key, `value of ${JSON.stringify(mk)} is not a string`);
        metadata[mk] = mv;
      }
      continue;
    }
    tensors.set(key, parseEntry(key, v, dataBytes, source));
  }
  // Zero-byte tensors occupy nothing, so they cannot overlap anything.
  const ranges = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) {
      throw new SafetensorsError(source, cur.key,
        `data_offsets [${cur.begin}, ${cur.end}] overlap those of ${JSON.stringify(prev.key)} [${prev.begin}, ${prev.end}]`);
    }
    if (cur.begin > prev.end) {
      throw new SafetensorsError(source, cur.key, `bytes [${prev.end}, ${cur.begin}) before it belong to no tensor (the format allows no holes)`);
    }
  }
  if (ranges.length > 0 && ranges[0].begin > 0) {
    throw new SafetensorsError(source, ranges[0].key, `bytes [0, ${ranges[0].begin}) before it belong to no tensor (the format allows no holes)`);
  }
  const used = ranges.length > 0 ? ranges[ranges.length - 1].end : 0;
  if (used < dataBytes) {
    throw new SafetensorsError(source, undefined, `${dataBytes - used} bytes after the last tensor belong to none (trailing data; the format allows none)`);
  }
  const dup = duplicateTopLevelKey(text);
  if (dup !== null) throw new SafetensorsError(source, dup, 'appears twice in the header (JSON.parse would keep only the last)');
  return { source, headerLength, dataStart, fileSize, metadata, tensors };
}

/** Header of a whole file held in memory. */
export function parseHeaderFromBuffer(bytes: Uint8Array, source: string): SafetensorsHeader {
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength, source);
  return parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength, source);
}

// ---------------------------------------------------------------------------------------------
// Decoding

let f16Table: Float32Array | undefined;
function halfTable(): Float32Array {
  // 256 KiB once; a table lookup per element is ~20x faster than getFloat16 per element.
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    const dv = new DataView(new ArrayBuffer(2));
    for (let i = 0; i < 65536; i++) {
      dv.setUint16(0, i, true);
      f16Table[i] = getFloat16(dv, 0, true);
    }
  }
  return f16Table;
}

/** A typed view when the bytes are aligned for it, else a view of an aligned copy. */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.byteOffset % size === 0) return bytes;
  // Not bytes.slice(): on a Node Buffer that is a view at the same (unaligned) offset.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/**
 * Decodes one tensor from exactly its bytes. F32 and integer results are views of `bytes` when
 * it is suitably aligned (no copy): callers that mutate the data should copy it.
 */
export function decodeTensor(info: TensorInfo, bytes: Uint8Array, source: string): DecodedTensor {
  if (bytes.byteLength !== info.end - info.begin) {
    throw new SafetensorsError(source, info.key, `got ${bytes.byteLength} bytes, expected ${info.end - info.begin}`);
  }
  if (!LITTLE_ENDIAN) throw new SafetensorsError(source, info.key, 'decoding needs a little-endian host');
  const n = info.numel;
  const b = aligned(bytes, DTYPE_SIZE[info.dtype]);
  const { buffer, byteOffset } = b;
  let data: TensorData;
  switch (info.dtype) {
    case 'F32': data = new Float32Array(buffer, byteOffset, n); break;
    case 'F64': data = new Float64Array(buffer, byteOffset, n); break;
    case 'F16': {
      const raw = new Uint16Array(buffer, byteOffset, n);
      const table = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[raw[i]];
      data = out;
      break;
    }
    case 'BF16': {
      // bf16 is the top half of an f32: shifting the bits back is exact, NaNs included.
      const raw = new Uint16Array(buffer, byteOffset, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = raw[i] << 16;
      data = out;
      break;
    }
    case 'I64': data = new BigInt64Array(buffer, byteOffset, n); break;
    case 'U64': data = new BigUint64Array(buffer, byteOffset, n); break;
    case 'I32': data = new Int32Array(buffer, byteOffset, n); break;
    case 'U32': data = new Uint32Array(buffer, byteOffset, n); break;
    case 'I16': data = new Int16Array(buffer, byteOffset, n); break;
    case 'U16': data = new Uint16Array(buffer, byteOffset, n); break;
    case 'I8': data = new Int8Array(buffer, byteOffset, n); break;
    case 'U8': case 'BOOL': data = new Uint8Array(buffer, byteOffset, n); break;
    default:
      throw new SafetensorsError(source, info.key, `dtype ${info.dtype} cannot be decoded (supported: F32, F16, BF16, F64 and integer types)`);
  }
  return { key: info.key, dtype: info.dtype, shape: info.shape.slice(), data };
}

/** The float32 data of a decoded float tensor; integer tensors are an error naming the key. */
export function asFloat32(t: DecodedTensor, source: string): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.data instanceof Float64Array) return Float32Array.from(t.data);
  throw new SafetensorsError(source, t.key, `has dtype ${t.dtype}, expected a float tensor (F32, F16, BF16, F64)`);
}

export function missingKey(source: string, key: string, available: number): SafetensorsError {
  return new SafetensorsError(source, key, `is not in the file (it has ${available} tensors)`);
}

/** Names, shapes and metadata of one file's tensors, from its parsed header. */
export class SafetensorsHeaderView {
  constructor(readonly header: SafetensorsHeader, readonly source: string) {}

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }
  has(key: string): boolean {
    return this.header.tensors.has(key);
  }
  info(key: string): TensorInfo {
    const info = this.header.tensors.get(key);
    if (!info) throw missingKey(this.source, key, this.header.tensors.size);
    return info;
  }
  shape(key: string): readonly number[] {
    return this.info(key).shape;
  }
}

/** A safetensors file held in memory (the browser's ArrayBuffer, or a small file). */
export class SafetensorsBuffer extends SafetensorsHeaderView implements SafetensorsSource {
  private readonly bytes: Uint8Array;

  constructor(buf: ArrayBuffer | Uint8Array, source = 'safetensors buffer') {
    const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
    super(parseHeaderFromBuffer(bytes, source), source);
    this.bytes = bytes;
  }

  readTensor(key: string): DecodedTensor {
    const info = this.info(key);
    const start = this.header.dataStart;
    return decodeTensor(info, this.bytes.subarray(start + info.begin, start + info.end), this.source);
  }
  read(key: string): Float32Array {
    return asFloat32(this.readTensor(key), this.source);
  }
}

/** Parses a whole safetensors file held in memory. */
export function parseSafetensors(buf: ArrayBuffer | Uint8Array, source?: string): SafetensorsBuffer {
  return new SafetensorsBuffer(buf, source);
}

/** Browser helper: a fetch() Response of a .safetensors file. */
export async function safetensorsFromResponse(res: Response, source = res.url || 'response'): Promise<SafetensorsBuffer> {
  if (!res.ok) throw new SafetensorsError(source, undefined, `HTTP ${res.status} ${res.statusText}`);
  return new SafetensorsBuffer(await res.arrayBuffer(), source);
}

// ---------------------------------------------------------------------------------------------
// Writing

export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';

/**
 * A tensor to write. F16 / BF16 take raw bits as a Uint16Array, or float values (rounded to
 * nearest even; BF16 rounds from the float32 value, as torch does for an f32 tensor). I64 takes a
 * BigInt64Array or safe integers.
 */
export interface TensorToWrite {
  dtype: WritableDtype;
  shape: readonly number[];
  data: ArrayLike<number> | BigInt64Array;
}

export interface SafetensorsPlan {
  /** Length prefix + JSON header (space-padded to a multiple of 8). */
  head: Uint8Array;
  /** In file order, each with a function that produces its bytes. */
  entries: { key: string; byteLength: number; bytes: () => Uint8Array }[];
  totalBytes: number;
}

function f32ToBf16Bits(v: number, scratch: Float32Array, bits: Uint32Array): number {
  scratch[0] = v;
  const x = bits[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN, sign kept
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function tensorBytes(key: string, t: TensorToWrite, numel: number): Uint8Array {
  const d = t.data;
  const fail = (msg: string) => new SafetensorsError('serializeSafetensors', key, msg);
  switch (t.dtype) {
    case 'F32': {
      const a = d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>);
      return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    }
    case 'F16':
    case 'BF16': {
      if (d instanceof Uint16Array) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      if (d instanceof BigInt64Array) throw fail(`${t.dtype} data cannot be a BigInt64Array`);
      const out = new Uint16Array(numel);
      if (t.dtype === 'F16') {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < numel; i++) setFloat16(dv, 2 * i, Number(d[i]), true);
      } else {
        const scratch = new Float32Array(1);
        const bits = new Uint32Array(scratch.buffer);
        for (let i = 0; i < numel; i++) out[i] = f32ToBf16Bits(Number(d[i]), scratch, bits);
      }
      return new Uint8Array(out.buffer);
    }
    case 'I32': {
      if (d instanceof Int32Array) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      if (d instanceof BigInt64Array) throw fail('I32 data cannot be a BigInt64Array');
      const out = new Int32Array(numel);
      for (let i = 0; i < numel; i++) {
        const v = d[i];
        if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw fail(`element ${i} (${v}) is not an int32`);
        out[i] = v;
      }
      return new Uint8Array(out.buffer);
    }
    case 'I64': {
      if (d instanceof BigInt64Array) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      const out = new BigInt64Array(numel);
      for (let i = 0; i < numel; i++) {
        const v = d[i];
        if (!Number.isSafeInteger(v)) throw fail(`element ${i} (${v}) is not a safe integer; pass a BigInt64Array`);
        out[i] = BigInt(v);
      }
      return new Uint8Array(out.buffer);
    }
  }
}

function utf8Compare(a: string, b: string): number {
  // Code-point order equals UTF-8 byte order, which is how the reference (Rust) sorts names.
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Lays out a file: tensors grouped by element size, largest first (so every tensor starts at a
 * multiple of its element size, as in the reference writer), then by name; the header is padded
 * with spaces to a multiple of 8 bytes.
 */
export function planSafetensors(tensors: Readonly<Record<string, TensorToWrite>>, metadata?: Readonly<Record<string, string>>): SafetensorsPlan {
  const src = 'serializeSafetensors';
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(src, '__metadata__', `value of ${JSON.stringify(k)} is not a string`);
    }
  }
  const items = Object.entries(tensors).map(([key, t]) => {
    if (key === '__metadata__') throw new SafetensorsError(src, key, 'is reserved for metadata');
    if (!Object.hasOwn(DTYPE_SIZE, t.dtype) || !['F32', 'F16', 'BF16', 'I32', 'I64'].includes(t.dtype)) {
      throw new SafetensorsError(src, key, `cannot write dtype ${JSON.stringify(t.dtype)} (F32, F16, BF16, I32, I64)`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isCount)) {
      throw new SafetensorsError(src, key, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) {
      throw new SafetensorsError(src, key, `shape [${t.shape.join(', ')}] has ${numel} elements but the data has ${t.data.length}`);
    }
    return { key, t, numel, byteLength: numel * DTYPE_SIZE[t.dtype] };
  });
  items.sort((a, b) => DTYPE_SIZE[b.t.dtype] - DTYPE_SIZE[a.t.dtype] || utf8Compare(a.key, b.key));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const it of items) {
    header[it.key] = { dtype: it.t.dtype, shape: [...it.t.shape], data_offsets: [offset, offset + it.byteLength] };
    offset += it.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return {
    head,
    entries: items.map((it) => ({ key: it.key, byteLength: it.byteLength, bytes: () => tensorBytes(it.key, it.t, it.numel) })),
    totalBytes: head.byteLength + offset,
  };
}

/** A complete safetensors file in memory. */
export function serializeSafetensors(tensors: Readonly<Record<string, TensorToWrite>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const plan = planSafetensors(tensors, metadata);
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.head, 0);
  let at = plan.head.byteLength;
  for (const e of plan.entries) {
    out.set(e.bytes(), at);
    at += e.byteLength;
  }
  return out;
}
