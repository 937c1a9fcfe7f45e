/**
 * Built data folders on disk (Node), as `node dist/data.js build` writes them:
 *
 *   OUT/dataset.json          manifest: source, seed, kinds, splits with their counts, skipped rows
 *   OUT/{train,validation,test}/
 *       index.json + shard-NNNNN.nsh   the split's records (all kinds, each with `kind`)
 *       probe.jsonl           probe pairs {"image","caption","foil"} (when probe pairs were built)
 *   OUT/images/               rendered PNGs (miniature world only)
 *
 * A split folder is self-contained: every image path inside it (records and probe.jsonl) is
 * relative to that split folder (or absolute), so `--data OUT/test` works as well as
 * `--data OUT --split test`.
 */
import { existsSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { FileReadError, MAX_CONFIG_BYTES, readRegularText } from '../io/read-file-node.js';
import { INDEX_FILE, type ShardIndex, type ShardReader } from './shards.js';
import { openShards } from './shards-node.js';
import { SPLIT_NAMES, type SplitName } from './splits.js';
import type { EvalRecord } from './records.js';

export const DATASET_FILE = 'dataset.json';
export const DATASET_FORMAT = 'negclip-dataset';
export const PROBE_FILE = 'probe.jsonl';
/** Per split: one {"image", "labels": {attribute: 0|1}} line per image, for linear probes of the image tower. */
export const ATTRIBUTES_FILE = 'attributes.jsonl';

export class DatasetError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'DatasetError';
  }
}

/** "val" and "valid" are accepted for "validation". */
export function parseSplitName(name: string): SplitName {
  const n = name.trim().toLowerCase();
  if (n === 'val' || n === 'valid' || n === 'validation') return 'validation';
  if (n === 'train' || n === 'test') return n;
  throw new RangeError(`unknown split ${JSON.stringify(name)} (expected train, val or test)`);
}

/** The top-level manifest, checked loosely (format and splits). */
export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: 1;
  splits: Partial<Record<SplitName, { dir: string; studies: number; records: number; byKind: Record<string, number> }>>;
  [key: string]: unknown;
}

export async function readManifest(root: string): Promise<DatasetManifest> {
  const path = join(root, DATASET_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readRegularText(path, MAX_CONFIG_BYTES, 'a JSON manifest'));
  } catch (e) {
    throw new DatasetError(path, e instanceof FileReadError ? e.reason : `not valid JSON (${(e as Error).message})`);
  }
  const o = json as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o['format'] !== DATASET_FORMAT) {
    throw new DatasetError(path, `"format" must be "${DATASET_FORMAT}"`);
  }
  if (typeof o['splits'] !== 'object' || o['splits'] === null) throw new DatasetError(path, '"splits" must be an object');
  return o as unknown as DatasetManifest;
}

export interface DatasetSplit {
  /** The split folder (holds index.json). */
  dir: string;
  split: SplitName | undefined;
  index: ShardIndex;
  reader: ShardReader<EvalRecord>;
  /** Absolute path of a record's (or probe line's) image. */
  resolveImage(image: string): string;
  /** Every record, optionally of some kinds only (holds them all: evaluation-sized data). */
  readRecords(kinds?: readonly string[]): Promise<EvalRecord[]>;
}

/**
 * Opens one split of a data folder: `dir` is either a split folder (with index.json) or a data
 * folder (with dataset.json), in which case `split` (default "test") picks the subfolder.
 */
export async function openDatasetSplit(dir: string, split?: SplitName): Promise<DatasetSplit> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new DatasetError(dir, 'no such data folder (build one with: node dist/data.js build ...)');
  if (!statSync(root).isDirectory()) throw new DatasetError(dir, 'not a folder; pass the folder node dist/data.js build wrote');
  let splitDir: string;
  let name: SplitName | undefined = split;
  if (existsSync(join(root, INDEX_FILE))) {
    splitDir = root;
    const guess = basename(root);
    const fromName = (SPLIT_NAMES as readonly string[]).includes(guess) ? (guess as SplitName) : undefined;
    if (split !== undefined && fromName !== undefined && split !== fromName) {
      throw new DatasetError(dir, `is the "${fromName}" split folder, but --split ${split} was asked for; pass its parent folder instead`);
    }
    name = fromName ?? split;
  } else if (existsSync(join(root, DATASET_FILE))) {
    const manifest = await readManifest(root);
    name = split ?? 'test';
    const entry = manifest.splits[name];
    const built = Object.keys(manifest.splits);
    if (!entry) throw new DatasetError(dir, `has no "${name}" split (built: ${built.length ? built.join(', ') : 'none'})`);
    splitDir = join(root, typeof entry.dir === 'string' ? entry.dir : name);
    if (!existsSync(join(splitDir, INDEX_FILE))) throw new DatasetError(splitDir, `the "${name}" split listed in ${DATASET_FILE} has no ${INDEX_FILE}`);
  } else {
    throw new DatasetError(dir, `not a data folder: neither ${DATASET_FILE} nor ${INDEX_FILE} is there (build one with: node dist/data.js build ...)`);
  }
  const reader = await openShards<EvalRecord>(splitDir);
  const resolveImage = (image: string) => (isAbsolute(image) ? image : join(splitDir, image));
  return {
    dir: splitDir,
    split: name,
    index: reader.index,
    reader,
    resolveImage,
    async readRecords(kinds) {
      const all = await reader.readAll();
      return kinds ? all.filter((r) => kinds.includes(r.kind)) : all;
    },
  };
}

/**
 * Throws one error naming how many of the images are missing and the first few, with the folder
 * they were resolved against.
 */
export async function checkImagesExist(split: Pick<DatasetSplit, 'dir' | 'resolveImage'>, images: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const im of images) {
    const p = split.resolveImage(im);
    const ok = await stat(p).then((s) => s.isFile(), () => false);
    if (!ok) missing.push(im);
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).map((m) => JSON.stringify(m)).join(', ');
    throw new DatasetError(split.dir, `${missing.length} of ${images.length} images are missing (paths are relative to this folder): ${shown}${missing.length > 3 ? ', ...' : ''}`);
  }
}

/** Image paths are stored with forward slashes so a data folder moves between systems. */
export function portablePath(p: string): string {
  return p.split(/[\\/]+/).join('/');
}
