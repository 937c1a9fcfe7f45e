/**
 * Record shards, browser-safe part: encode and decode one shard, the index format, and a reader
 * that streams batches given any way to load a shard's bytes (files in Node, fetch in a browser).
 *
 * Shard file (little-endian):
 *   0  "NSHD"   magic
 *   4  u32      format version (1)
 *   8  u32      record count
 *   12 u32      payload byte length
 *   16 u32      CRC-32 (IEEE) of the payload
 *   20 payload  zlib (fflate) of one msgpack array holding the records
 * The header makes a shard check itself: truncation, a flipped bit or a file from another index
 * is caught before any record is used. msgpack (msgpackr, no record extension) keeps records
 * readable from other languages; Uint8Array fields (image bytes) round-trip as Uint8Array, copied
 * out of the shard so that keeping one record does not pin a whole decoded shard.
 *
 * index.json: { format: "negclip-shards", version: 1, records, shards: [{file, records, bytes,
 * checksum: "crc32:xxxxxxxx"}], meta }.
 */
import { Packr } from 'msgpackr';
import { unzlibSync, zlibSync } from 'fflate';
import { seededRandom, shuffleInPlace } from './splits.js';

export const SHARD_FORMAT = 'negclip-shards';
export const SHARD_FORMAT_VERSION = 1;
export const SHARD_MAGIC = 'NSHD';
export const SHARD_HEADER_BYTES = 20;
export const INDEX_FILE = 'index.json';

export interface ShardEntry {
  file: string;
  records: number;
  /** Size of the whole shard file, header included. */
  bytes: number;
  /** "crc32:" + 8 lower-case hex digits of the payload's CRC-32. */
  checksum: string;
}

export interface ShardIndex {
  format: typeof SHARD_FORMAT;
  version: number;
  records: number;
  shards: ShardEntry[];
  meta: Record<string, unknown>;
}

export class ShardError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'ShardError';
  }
}

const packr = new Packr({ useRecords: false, moreTypes: true, copyBuffers: true });

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, the zip/PNG one). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const checksumText = (crc: number) => `crc32:${crc.toString(16).padStart(8, '0')}`;

export interface EncodeOptions {
  /** zlib level 0-9 (default 6). Already-compressed images gain little above 1. */
  level?: number;
}

/** One shard's bytes and its index entry (without the file name). */
export function encodeShard(records: readonly unknown[], options: EncodeOptions = {}): { bytes: Uint8Array; entry: Omit<ShardEntry, 'file'> } {
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`encodeShard: level must be an integer 0-9, got ${level}`);
  const packed = packr.pack(records as unknown[]);
  const payload = zlibSync(packed, { level: level as 0 });
  const crc = crc32(payload);
  const bytes = new Uint8Array(SHARD_HEADER_BYTES + payload.length);
  const view = new DataView(bytes.buffer);
  for (let k = 0; k < 4; k++) bytes[k] = SHARD_MAGIC.charCodeAt(k);
  view.setUint32(4, SHARD_FORMAT_VERSION, true);
  view.setUint32(8, records.length, true);
  view.setUint32(12, payload.length, true);
  view.setUint32(16, crc, true);
  bytes.set(payload, SHARD_HEADER_BYTES);
  return { bytes, entry: { records: records.length, bytes: bytes.length, checksum: checksumText(crc) } };
}

/**
 * The records of one shard. `file` names the shard in errors; `expected` (its index entry) is
 * cross-checked when given, so a shard swapped in from another data set is refused.
 */
export function decodeShard<T = unknown>(bytes: Uint8Array, file: string, expected?: Omit<ShardEntry, 'file'>): T[] {
  if (bytes.length < SHARD_HEADER_BYTES) {
    throw new ShardError(file, `truncated: ${bytes.length} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte shard header`);
  }
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (magic !== SHARD_MAGIC) throw new ShardError(file, `not a shard (magic ${JSON.stringify(magic)}, expected "${SHARD_MAGIC}")`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== SHARD_FORMAT_VERSION) throw new ShardError(file, `shard format version ${version}; this reader knows version ${SHARD_FORMAT_VERSION}`);
  const count = view.getUint32(8, true);
  const length = view.getUint32(12, true);
  const crc = view.getUint32(16, true);
  const have = bytes.length - SHARD_HEADER_BYTES;
  if (have < length) throw new ShardError(file, `truncated: payload is ${have} bytes, header says ${length}`);
  if (have > length) throw new ShardError(file, `${have - length} unexpected bytes after the payload`);
  if (expected) {
    if (expected.bytes !== bytes.length) throw new ShardError(file, `index says ${expected.bytes} bytes, file has ${bytes.length}`);
    if (expected.records !== count) throw new ShardError(file, `index says ${expected.records} records, shard header says ${count}`);
    if (expected.checksum !== checksumText(crc)) throw new ShardError(file, `index checksum ${expected.checksum} does not match the shard header's ${checksumText(crc)}`);
  }
  const payload = bytes.subarray(SHARD_HEADER_BYTES);
  const actual = crc32(payload);
  if (actual !== crc) throw new ShardError(file, `checksum mismatch: payload has ${checksumText(actual)}, header says ${checksumText(crc)} (corrupted)`);
  let packed: Uint8Array;
  try {
    packed = unzlibSync(payload);
  } catch (e) {
    throw new ShardError(file, `cannot decompress (${(e as Error).message})`);
  }
  let records: unknown;
  try {
    records = packr.unpack(packed);
  } catch (e) {
    throw new ShardError(file, `cannot decode msgpack (${(e as Error).message})`);
  }
  if (!Array.isArray(records)) throw new ShardError(file, 'payload is not a list of records');
  if (records.length !== count) throw new ShardError(file, `header says ${count} records, payload holds ${records.length}`);
  return records as T[];
}

/** A shard file name that cannot point outside the shard folder. */
export function isPlainFileName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name !== '.' && name !== '..';
}

/** Checks an index (text or parsed) and returns it typed; `file` names it in errors. */
export function parseShardIndex(input: string | unknown, file = INDEX_FILE): ShardIndex {
  let json: unknown = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (e) {
      throw new ShardError(file, `not valid JSON (${(e as Error).message})`);
    }
  }
  const bad = (msg: string): never => { throw new ShardError(file, msg); };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('expected a JSON object');
  const o = json as Record<string, unknown>;
  if (o['format'] !== SHARD_FORMAT) bad(`"format" is ${JSON.stringify(o['format'])}, expected "${SHARD_FORMAT}"`);
  if (o['version'] !== SHARD_FORMAT_VERSION) bad(`"version" is ${JSON.stringify(o['version'])}; this reader knows version ${SHARD_FORMAT_VERSION}`);
  if (!Array.isArray(o['shards'])) bad('"shards" must be a list');
  const meta = o['meta'] ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) bad('"meta" must be an object');
  const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  const files = new Set<string>();
  const shards = (o['shards'] as unknown[]).map((s, k): ShardEntry => {
    const where = `shards[${k}]`;
    if (typeof s !== 'object' || s === null) return bad(`${where} must be an object`);
    const e = s as Record<string, unknown>;
    if (typeof e['file'] !== 'string' || !isPlainFileName(e['file'])) bad(`${where}.file must be a plain file name, got ${JSON.stringify(e['file'])}`);
    if (files.has(e['file'] as string)) bad(`${where}.file "${e['file']}" is listed twice`);
    files.add(e['file'] as string);
    if (!isCount(e['records'])) bad(`${where}.records must be a non-negative integer`);
    if (!isCount(e['bytes'])) bad(`${where}.bytes must be a non-negative integer`);
    if (typeof e['checksum'] !== 'string' || !/^crc32:[0-9a-f]{8}$/.test(e['checksum'])) bad(`${where}.checksum must look like "crc32:0123abcd"`);
    return { file: e['file'] as string, records: e['records'] as number, bytes: e['bytes'] as number, checksum: e['checksum'] as string };
  });
  const total = shards.reduce((a, s) => a + s.records, 0);
  if (o['records'] !== total) bad(`"records" is ${JSON.stringify(o['records'])} but the shards hold ${total}`);
  return { format: SHARD_FORMAT, version: SHARD_FORMAT_VERSION, records: total, shards, meta: meta as Record<string, unknown> };
}

export function makeShardIndex(shards: ShardEntry[], meta: Record<string, unknown> = {}): ShardIndex {
  return { format: SHARD_FORMAT, version: SHARD_FORMAT_VERSION, records: shards.reduce((a, s) => a + s.records, 0), shards, meta };
}

export interface BatchOptions {
  /** Epoch number; with shuffle, each epoch has its own order. Default 0. */
  epoch?: number;
  /** Default 0. */
  seed?: number | string;
  /** Default true. */
  shuffle?: boolean;
  /** Drop a last batch smaller than batchSize (default false: every record appears once). */
  dropLast?: boolean;
}

/** Loads one shard file's bytes (Node: readFile; browser: fetch + arrayBuffer). */
export type ShardLoader = (file: string) => Promise<Uint8Array>;

/**
 * Streams records from shards with bounded memory: one decoded shard plus less than one batch
 * of carried-over records at a time.
 *
 * Shuffle (per epoch, from seed and epoch): the shard order is permuted, and each shard's
 * records are permuted as the shard is loaded; batches run across shard boundaries. It is a
 * two-level shuffle, not a global one: records of one shard stay near each other within an
 * epoch, so write shards from records in random order (or with a mix of sources per shard)
 * when that matters. Every record appears exactly once per epoch (the last batch may be short
 * unless dropLast). Without shuffle, records come in index order.
 */
export class ShardReader<T = unknown> {
  /** `nameOf` turns a shard's file name into what errors show (Node: the full path). */
  constructor(readonly index: ShardIndex, private readonly load: ShardLoader, private readonly nameOf: (file: string) => string = (f) => f) {}

  get size(): number {
    return this.index.records;
  }

  /** The records of shard k, checked against the index. */
  async readShard(k: number): Promise<T[]> {
    const entry = this.index.shards[k];
    if (!entry) throw new RangeError(`readShard: no shard ${k} (there are ${this.index.shards.length})`);
    const bytes = await this.load(entry.file);
    return decodeShard<T>(bytes, this.nameOf(entry.file), entry);
  }

  async *batches(batchSize: number, options: BatchOptions = {}): AsyncGenerator<T[], void, undefined> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}`);
    const shuffle = options.shuffle ?? true;
    const random = seededRandom('shard-batches', options.seed ?? 0, options.epoch ?? 0);
    const order = this.index.shards.map((_, k) => k);
    if (shuffle) shuffleInPlace(order, random);
    let carry: T[] = [];
    for (const k of order) {
      const records = await this.readShard(k);
      if (shuffle) shuffleInPlace(records, random);
      let start = 0;
      if (carry.length) {
        start = Math.min(batchSize - carry.length, records.length);
        carry = carry.concat(records.slice(0, start));
        if (carry.length < batchSize) continue;
        yield carry;
        carry = [];
      }
      for (; start + batchSize <= records.length; start += batchSize) yield records.slice(start, start + batchSize);
      carry = records.slice(start);
    }
    if (carry.length && !options.dropLast) yield carry;
  }

  /** Every record in index order (holds them all: for small sets and tests). */
  async readAll(): Promise<T[]> {
    const out: T[] = [];
    for (let k = 0; k < this.index.shards.length; k++) for (const r of await this.readShard(k)) out.push(r);
    return out;
  }
}
