/**
 * Node file access for PyTorch checkpoints (`.pt`, `.pth`, `.bin`): the zip is read at offsets
 * through a file handle, so only the central directory, data.pkl and the tensors asked for are
 * read. Sharded Hugging Face checkpoints (`pytorch_model.bin.index.json`, {weight_map: {key:
 * file}}) open every shard up front, so a bad shard fails early.
 */
import { type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { FileReadError, MAX_CONFIG_BYTES, openRegular, readFailure, readRegularText } from '../io/read-file-node.js';
import type { WeightSource } from './clip-weights.js';
import { TorchCheckpoint } from './torch-checkpoint.js';
import { TorchPickleError } from './torch-pickle.js';
import type { RandomAccess } from './zip-reader.js';

/** A weight source holding files open: close() releases them. */
export interface OpenWeights extends WeightSource {
  close(): Promise<void>;
}

async function fileAccess(path: string): Promise<{ access: RandomAccess; fh: FileHandle }> {
  let fh: FileHandle;
  let size: number;
  try {
    ({ fh, size } = await openRegular(path));
  } catch (e) {
    const err = e as FileReadError;
    throw new TorchPickleError(path, err.code ? `cannot open (${err.code})` : readFailure(e));
  }
  const access: RandomAccess = {
    size,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new TorchPickleError(path, `file ended after ${offset + done} bytes while reading ${length} at ${offset} (truncated?)`);
        done += bytesRead;
      }
      return buf;
    },
  };
  return { access, fh };
}

/** One torch.save checkpoint on disk. */
export async function openTorchFile(path: string): Promise<OpenWeights & { checkpoint: TorchCheckpoint }> {
  const { access, fh } = await fileAccess(path);
  try {
    const checkpoint = await TorchCheckpoint.open(access, path);
    return {
      checkpoint,
      source: path,
      keys: () => checkpoint.keys(),
      shape: (k) => checkpoint.shape(k),
      read: (k) => checkpoint.read(k),
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** `pytorch_model.bin.index.json`: each key read from its shard. */
export async function openShardedTorch(indexPath: string): Promise<OpenWeights> {
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(await readRegularText(indexPath, MAX_CONFIG_BYTES, 'a JSON index'));
  } catch (e) {
    throw new TorchPickleError(indexPath, e instanceof FileReadError ? e.reason : `cannot parse (${(e as Error).message})`);
  }
  const map = index.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new TorchPickleError(indexPath, '"weight_map" must be an object of key -> shard file');
  const dir = dirname(indexPath);
  const shards = new Map<string, Awaited<ReturnType<typeof openTorchFile>>>();
  const owner = new Map<string, string>();
  try {
    for (const [k, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== 'string' || isAbsolute(file) || normalize(file).split(sep).includes('..')) {
        throw new TorchPickleError(indexPath, `weight_map["${k}"] must be a file name beside the index, got ${JSON.stringify(file)}`);
      }
      if (!shards.has(file)) shards.set(file, await openTorchFile(join(dir, file)));
      const shard = shards.get(file)!;
      if (!shard.keys().includes(k)) throw new TorchPickleError(join(dir, file), `${k} is listed for this shard in ${basename(indexPath)} but is not in it`);
      owner.set(k, file);
    }
  } catch (e) {
    await Promise.all([...shards.values()].map((s) => s.close()));
    throw e;
  }
  const shardOf = (k: string) => {
    const f = owner.get(k);
    if (!f) throw new TorchPickleError(indexPath, `no tensor ${k}`);
    return shards.get(f)!;
  };
  return {
    source: indexPath,
    keys: () => [...owner.keys()],
    shape: (k) => shardOf(k).shape(k),
    read: (k) => shardOf(k).read(k),
    close: async () => { await Promise.all([...shards.values()].map((s) => s.close())); },
  };
}
