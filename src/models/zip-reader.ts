/**
 * A read-only zip reader for PyTorch checkpoints (`torch.save` writes a zip of `data.pkl` and one
 * entry per storage, stored uncompressed and 64-byte aligned). Only the central directory is
 * read up front; an entry's bytes are read when asked for, at their offset, so a 1 GB checkpoint
 * is never held whole (nor twice). ZIP64 archives (over 4 GB or 65535 entries) are supported;
 * deflated entries are inflated with fflate. Browser-safe: the bytes come through RandomAccess.
 */
import { inflateSync } from 'fflate';

/** Bytes of a file, read at offsets (Node: a file handle; browser: an ArrayBuffer). */
export interface RandomAccess {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export class ZipError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** A RandomAccess over bytes in memory. */
export function bytesAccess(bytes: Uint8Array): RandomAccess {
  return {
    size: bytes.length,
    async read(offset, length) {
      return bytes.subarray(offset, offset + length);
    },
  };
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function u64(v: DataView, at: number, source: string): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(source, `a ZIP64 size or offset (${n}) is beyond what can be addressed`);
  return Number(n);
}

export class ZipArchive {
  private constructor(readonly source: string, private readonly access: RandomAccess, readonly entries: Map<string, ZipEntry>) {}

  /** Reads the central directory; throws a ZipError naming the file when it is not a zip. */
  static async open(access: RandomAccess, source: string): Promise<ZipArchive> {
    const tailLength = Math.min(access.size, 22 + 65535 + 20);
    if (access.size < 22) throw new ZipError(source, `${access.size} bytes is too short for a zip archive`);
    const tail = await access.read(access.size - tailLength, tailLength);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let at = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === EOCD) {
        at = i;
        break;
      }
    }
    if (at < 0) throw new ZipError(source, 'no zip end-of-central-directory record (not a zip archive, or truncated)');
    let count = tv.getUint16(at + 10, true);
    let cdSize = tv.getUint32(at + 12, true);
    let cdOffset = tv.getUint32(at + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = at - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== ZIP64_LOCATOR) throw new ZipError(source, 'ZIP64 sizes without a ZIP64 locator');
      const recOffset = u64(tv, loc + 8, source);
      const rec = await access.read(recOffset, 56);
      const rv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      if (rec.length < 56 || rv.getUint32(0, true) !== ZIP64_EOCD) throw new ZipError(source, 'bad ZIP64 end-of-central-directory record');
      count = u64(rv, 32, source);
      cdSize = u64(rv, 40, source);
      cdOffset = u64(rv, 48, source);
    }
    if (cdOffset + cdSize > access.size) throw new ZipError(source, `the central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (${access.size} bytes): truncated?`);
    const cd = await access.read(cdOffset, cdSize);
    const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries = new Map<string, ZipEntry>();
    const decoder = new TextDecoder();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cv.getUint32(p, true) !== CENTRAL) throw new ZipError(source, `central directory entry ${i} is malformed`);
      const method = cv.getUint16(p + 10, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let size = cv.getUint32(p + 24, true);
      const nameLength = cv.getUint16(p + 28, true);
      const extraLength = cv.getUint16(p + 30, true);
      const commentLength = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLength));
      // ZIP64 extra field: the 8-byte values of the fields that read 0xFFFFFFFF, in this order.
      let e = p + 46 + nameLength;
      const end = e + extraLength;
      while (e + 4 <= end) {
        const id = cv.getUint16(e, true);
        const len = cv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) { size = u64(cv, q, source); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = u64(cv, q, source); q += 8; }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(cv, q, source);
        }
        e += 4 + len;
      }
      entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p = end + commentLength;
    }
    return new ZipArchive(source, access, entries);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Offset of an entry's data (after its local header) and its entry record. */
  private async locate(name: string): Promise<{ entry: ZipEntry; data: number }> {
    const entry = this.entries.get(name);
    if (!entry) throw new ZipError(this.source, `no entry ${JSON.stringify(name)} in the archive`);
    const h = await this.access.read(entry.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    if (h.length < 30 || hv.getUint32(0, true) !== LOCAL) throw new ZipError(this.source, `entry ${JSON.stringify(name)}: bad local header`);
    const data = entry.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (data + entry.compressedSize > this.access.size) throw new ZipError(this.source, `entry ${JSON.stringify(name)} runs past the end of the file: truncated?`);
    return { entry, data };
  }

  /** The whole (inflated) entry. */
  async read(name: string): Promise<Uint8Array> {
    const { entry, data } = await this.locate(name);
    const raw = await this.access.read(data, entry.compressedSize);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      const out = inflateSync(raw, { out: new Uint8Array(entry.size) });
      if (out.length !== entry.size) throw new ZipError(this.source, `entry ${JSON.stringify(name)} inflates to ${out.length} bytes, not ${entry.size}`);
      return out;
    }
    throw new ZipError(this.source, `entry ${JSON.stringify(name)} uses compression method ${entry.method} (only stored and deflated are read)`);
  }

  /** `length` bytes at `offset` inside a stored entry, without reading the rest of it. */
  async readRange(name: string, offset: number, length: number): Promise<Uint8Array> {
    const { entry, data } = await this.locate(name);
    if (entry.method !== 0) return (await this.read(name)).subarray(offset, offset + length);
    if (offset < 0 || offset + length > entry.size) throw new ZipError(this.source, `entry ${JSON.stringify(name)}: bytes ${offset}..${offset + length} are outside its ${entry.size}`);
    return this.access.read(data + offset, length);
  }
}
