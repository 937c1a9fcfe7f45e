/**
 * Node file access for safetensors: the header is read with two small reads, then each tensor's
 * byte range is read on demand with a positional read into that tensor's own buffer, so a
 * 1.7 GB checkpoint is never held twice (nor once, as a whole). Sharded checkpoints
 * (`model.safetensors.index.json`) open every shard's header up front, so a bad shard fails early.
 */
import { existsSync, statSync } from 'node:fs';
import { type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { writeAtomicWith } from '../io/atomic-write-node.js';
import { FileReadError, MAX_CONFIG_BYTES, openRegular, readRegularText } from '../io/read-file-node.js';
import {
  SafetensorsError, SafetensorsHeaderView, asFloat32, decodeTensor, missingKey, parseHeader, planSafetensors, readHeaderLength,
  type DecodedTensor, type SafetensorsHeader, type SafetensorsSource, type TensorInfo, type TensorToWrite,
} from './safetensors.js';

async function readExactly(fh: FileHandle, length: number, position: number, source: string, key?: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(source, key, `file ended after ${position + done} bytes while reading ${length} bytes at ${position} (truncated or changed while open?)`);
    }
    done += bytesRead;
  }
  return buf;
}

/** One .safetensors file on disk. Call close() when done (or use loadSafetensorsFile). */
export class SafetensorsFile extends SafetensorsHeaderView implements SafetensorsSource {
  private constructor(private fh: FileHandle | undefined, header: SafetensorsHeader, source: string) {
    super(header, source);
  }

  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    let size: number;
    try {
      ({ fh, size } = await openRegular(path));
    } catch (e) {
      const err = e as FileReadError;
      throw new SafetensorsError(path, undefined, err.code ? `cannot open (${err.code})` : err.reason ?? err.message);
    }
    try {
      const first8 = size >= 8 ? await readExactly(fh, 8, 0, path) : new Uint8Array(0);
      const n = readHeaderLength(first8, size, path);
      const header = parseHeader(await readExactly(fh, n, 8, path), size, path);
      return new SafetensorsFile(fh, header, path);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** The tensor's raw little-endian bytes, in a buffer of their own. */
  async readBytes(key: string): Promise<Uint8Array> {
    const info = this.info(key);
    if (!this.fh) throw new SafetensorsError(this.source, key, 'file is closed');
    return readExactly(this.fh, info.end - info.begin, this.header.dataStart + info.begin, this.source, key);
  }
  async readTensor(key: string): Promise<DecodedTensor> {
    return decodeTensor(this.info(key), await this.readBytes(key), this.source);
  }
  async read(key: string): Promise<Float32Array> {
    return asFloat32(await this.readTensor(key), this.source);
  }
  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/** A checkpoint split over shards by `model.safetensors.index.json` ({weight_map: {key: file}}). */
export class ShardedSafetensors implements SafetensorsSource {
  private constructor(
    readonly source: string,
    private readonly shards: Map<string, SafetensorsFile>,
    private readonly where: Map<string, SafetensorsFile>,
    /** The index's own "metadata" (e.g. total_size). */
    readonly indexMetadata: Readonly<Record<string, unknown>>,
  ) {}

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    const src = indexPath;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readRegularText(indexPath, MAX_CONFIG_BYTES, 'a JSON index'));
    } catch (e) {
      throw new SafetensorsError(src, undefined, e instanceof FileReadError ? e.reason : `index is not valid JSON (${(e as Error).message})`);
    }
    const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
    if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
      throw new SafetensorsError(src, undefined, 'index has no "weight_map" object');
    }
    const dir = dirname(indexPath);
    const files = new Map<string, string>();
    for (const [key, file] of Object.entries(weightMap as Record<string, unknown>)) {
      // Shards live beside the index; a path that climbs out of the folder is not a shard name.
      if (typeof file !== 'string' || file === '' || isAbsolute(file) || normalize(file).split(sep).includes('..')) {
        throw new SafetensorsError(src, key, `weight_map names ${JSON.stringify(file)}, expected a shard file name beside the index`);
      }
      files.set(key, file);
    }
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const file of new Set(files.values())) shards.set(file, await SafetensorsFile.open(join(dir, file)));
      const where = new Map<string, SafetensorsFile>();
      for (const [key, file] of files) {
        const shard = shards.get(file)!;
        if (!shard.has(key)) throw new SafetensorsError(shard.source, key, `is listed in ${basename(indexPath)} but not in this shard`);
        where.set(key, shard);
      }
      const meta = (parsed as { metadata?: unknown }).metadata;
      const indexMeta = meta !== null && typeof meta === 'object' ? (meta as Record<string, unknown>) : {};
      return new ShardedSafetensors(src, shards, where, indexMeta);
    } catch (e) {
      await Promise.all([...shards.values()].map((s) => s.close()));
      throw e;
    }
  }

  /** The first shard's __metadata__ (HF writes the same {"format": "pt"} in each). */
  get metadata(): Readonly<Record<string, string>> {
    return this.shards.values().next().value?.metadata ?? {};
  }
  keys(): string[] {
    return [...this.where.keys()];
  }
  has(key: string): boolean {
    return this.where.has(key);
  }
  private shard(key: string): SafetensorsFile {
    const s = this.where.get(key);
    if (!s) throw missingKey(this.source, key, this.where.size);
    return s;
  }
  info(key: string): TensorInfo {
    return this.shard(key).info(key);
  }
  shape(key: string): readonly number[] {
    return this.info(key).shape;
  }
  readTensor(key: string): Promise<DecodedTensor> {
    return this.shard(key).readTensor(key);
  }
  read(key: string): Promise<Float32Array> {
    return this.shard(key).read(key);
  }
  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((s) => s.close()));
  }
}

export type OpenedSafetensors = SafetensorsFile | ShardedSafetensors;

const INDEX_NAME = 'model.safetensors.index.json';

/**
 * Opens a .safetensors file, a `*.safetensors.index.json`, or a folder holding
 * model.safetensors or model.safetensors.index.json.
 */
export async function openSafetensors(pathOrDir: string): Promise<OpenedSafetensors> {
  if (!existsSync(pathOrDir)) throw new SafetensorsError(pathOrDir, undefined, 'no such file or folder');
  if (statSync(pathOrDir).isDirectory()) {
    const single = join(pathOrDir, 'model.safetensors');
    if (existsSync(single)) return SafetensorsFile.open(single);
    const index = join(pathOrDir, INDEX_NAME);
    if (existsSync(index)) return ShardedSafetensors.open(index);
    throw new SafetensorsError(pathOrDir, undefined, `no weights found; looked for ${single} and ${index}`);
  }
  return pathOrDir.endsWith('.json') ? ShardedSafetensors.open(pathOrDir) : SafetensorsFile.open(pathOrDir);
}

/** Reads every tensor (or those `keys`) of a file, folder or index, and closes it. */
export async function loadSafetensorsFile(pathOrDir: string, keys?: readonly string[]): Promise<Map<string, DecodedTensor>> {
  const f = await openSafetensors(pathOrDir);
  try {
    const out = new Map<string, DecodedTensor>();
    for (const k of keys ?? f.keys()) out.set(k, await f.readTensor(k));
    return out;
  } finally {
    await f.close();
  }
}

/**
 * Writes atomically: a temporary file beside the target, flushed to disk, then renamed over it,
 * so a crash never leaves a half-written checkpoint under the real name. Tensors are written one
 * at a time, never as one big buffer.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planSafetensors(tensors, metadata);
  await writeAtomicWith(path, async (fh) => {
    const writeAll = async (buf: Uint8Array) => {
      for (let off = 0; off < buf.byteLength; ) off += (await fh.write(buf, off, buf.byteLength - off)).bytesWritten;
    };
    await writeAll(plan.head);
    for (const e of plan.entries) await writeAll(e.bytes());
  });
}
