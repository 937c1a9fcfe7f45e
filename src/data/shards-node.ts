/**
 * Shards on disk (Node). The writer streams records into shards of N, writing each file to a
 * temporary name in the same folder and renaming it, and writes index.json last the same way:
 * a folder with an index.json is complete. An older index.json is removed before the first new
 * shard is written, so a crash halfway leaves no index rather than an index that names files
 * of mixed generations; shard files of the older index that the new one does not name are
 * removed after the new index is in place.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { FileReadError, MAX_BINARY_BYTES, MAX_CONFIG_BYTES, readFailure, readRegularFile, readRegularText, regularFileSize } from '../io/read-file-node.js';
import {
  INDEX_FILE, ShardError, ShardReader, encodeShard, makeShardIndex, parseShardIndex,
  type ShardEntry, type ShardIndex,
} from './shards.js';

export interface WriteShardsOptions {
  /** Records per shard (default 1024). */
  recordsPerShard?: number;
  /** Free-form description stored in index.json (source files, seed, split, builder version...). */
  meta?: Record<string, unknown>;
  /** zlib level 0-9 (default 6). */
  level?: number;
}

// Re-exported: the CLIs import it from here.
export { writeFileAtomic };

const shardName = (k: number) => `shard-${String(k).padStart(5, '0')}.nsh`;

async function readOldIndex(dir: string): Promise<ShardIndex | undefined> {
  try {
    return parseShardIndex(await readRegularText(join(dir, INDEX_FILE), MAX_CONFIG_BYTES, 'a shard index'), join(dir, INDEX_FILE));
  } catch {
    return undefined; // absent or unreadable: nothing of ours to clean up
  }
}

export async function writeShards<T>(dir: string, records: Iterable<T> | AsyncIterable<T>, options: WriteShardsOptions = {}): Promise<ShardIndex> {
  const perShard = options.recordsPerShard ?? 1024;
  if (!Number.isInteger(perShard) || perShard < 1) throw new RangeError(`writeShards: recordsPerShard must be a positive integer, got ${perShard}`);
  await mkdir(dir, { recursive: true });
  const old = await readOldIndex(dir);
  await rm(join(dir, INDEX_FILE), { force: true });

  const entries: ShardEntry[] = [];
  let pending: T[] = [];
  const flush = async () => {
    const file = shardName(entries.length);
    const { bytes, entry } = encodeShard(pending, options.level === undefined ? {} : { level: options.level });
    await writeFileAtomic(join(dir, file), bytes);
    entries.push({ file, ...entry });
    pending = [];
  };
  for await (const r of records as AsyncIterable<T>) {
    pending.push(r);
    if (pending.length === perShard) await flush();
  }
  if (pending.length) await flush();

  const index = makeShardIndex(entries, options.meta ?? {});
  await writeFileAtomic(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
  if (old) {
    const keep = new Set(entries.map((e) => e.file));
    for (const s of old.shards) if (!keep.has(s.file)) await rm(join(dir, s.file), { force: true });
  }
  return index;
}

/**
 * Opens a shard folder: reads and checks index.json and that every shard file it names exists
 * with the size it records, so a missing or truncated file fails here, naming it.
 */
export async function openShards<T = unknown>(dir: string): Promise<ShardReader<T>> {
  const indexPath = join(dir, INDEX_FILE);
  let text: string;
  try {
    text = await readRegularText(indexPath, MAX_CONFIG_BYTES, 'a shard index');
  } catch (e) {
    const err = e as FileReadError;
    throw new ShardError(indexPath, err.code ? `cannot read the shard index (${err.code})` : readFailure(e));
  }
  const index = parseShardIndex(text, indexPath);
  for (const s of index.shards) {
    const path = join(dir, s.file);
    let size: number;
    try {
      size = regularFileSize(path);
    } catch (e) {
      const err = e as FileReadError;
      throw new ShardError(path, `named in ${indexPath} but ${err.code ? `cannot be read (${err.code})` : readFailure(e)}`);
    }
    if (size !== s.bytes) {
      throw new ShardError(path, `${size < s.bytes ? 'truncated' : 'wrong size'}: ${size} bytes, ${indexPath} says ${s.bytes}`);
    }
  }
  return new ShardReader<T>(index, async (file) => {
    const path = join(dir, file);
    try {
      const buf = await readRegularFile(path, MAX_BINARY_BYTES, 'a data shard');
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw new ShardError(path, readFailure(e));
    }
  }, (file) => join(dir, file));
}
