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
 * `--data OUT --split test` for evaluation. Training takes the data root (trainingSplits).
 *
 * Builds since the build id carry it in dataset.json and in each split's index.json meta; a
 * split whose id differs from its manifest's is refused (a mix of two builds), as is a split the
 * manifest does not list (left over from an earlier build) and a manifest that says incomplete.
 * Folders built before build ids (no id anywhere) still load.
 */
import { existsSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
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

/** The top-level manifest, checked loosely (format, splits, build id, completeness). */
export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: 1;
  splits: Partial<Record<SplitName, { dir: string; studies: number; records: number; byKind: Record<string, number> }>>;
  /** Shared with every split's index.json meta; absent in folders built before build ids. */
  buildId?: string;
  /** false only in a build that has not finished (data.js writes it so first). */
  complete?: boolean;
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
  if (o['buildId'] !== undefined && typeof o['buildId'] !== 'string') throw new DatasetError(path, '"buildId" must be a string');
  if (o['complete'] === false) throw new DatasetError(path, 'says the build is incomplete (data.js build stopped before its end); build the folder again');
  return o as unknown as DatasetManifest;
}

/** The build id in a split's index.json meta (undefined before build ids). */
function splitBuildId(index: ShardIndex): string | undefined {
  const id = index.meta['buildId'];
  return typeof id === 'string' ? id : undefined;
}

/**
 * Throws unless the split folder `splitDir`, named `name`, belongs to the build that `root`'s
 * manifest describes: listed there, and with the same build id.
 */
function checkSplitOfBuild(root: string, manifest: DatasetManifest, name: SplitName, splitDir: string, index: ShardIndex): void {
  const manifestPath = join(root, DATASET_FILE);
  if (!manifest.splits[name]) {
    throw new DatasetError(splitDir, `is not part of the build described by ${manifestPath} (left over from an earlier build); build the folder again`);
  }
  const want = manifest.buildId;
  const got = splitBuildId(index);
  if (want !== got) {
    throw new DatasetError(splitDir, `is from another build than ${manifestPath} (build ${got ?? 'without id'}, manifest ${want ?? 'without id'}); build the folder again`);
  }
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
  // The manifest the split must agree with, where there is one.
  let built: { root: string; manifest: DatasetManifest } | null = null;
  if (existsSync(join(root, INDEX_FILE))) {
    splitDir = root;
    const guess = basename(root);
    const fromName = (SPLIT_NAMES as readonly string[]).includes(guess) ? (guess as SplitName) : undefined;
    if (split !== undefined && fromName !== undefined && split !== fromName) {
      throw new DatasetError(dir, `is the "${fromName}" split folder, but --split ${split} was asked for; pass its parent folder instead`);
    }
    name = fromName ?? split;
    const parent = dirname(root);
    if (fromName && existsSync(join(parent, DATASET_FILE))) built = { root: parent, manifest: await readManifest(parent) };
  } else if (existsSync(join(root, DATASET_FILE))) {
    const manifest = await readManifest(root);
    built = { root, manifest };
    name = split ?? 'test';
    const entry = manifest.splits[name];
    const listed = Object.keys(manifest.splits);
    if (!entry) throw new DatasetError(dir, `has no "${name}" split (built: ${listed.length ? listed.join(', ') : 'none'})`);
    splitDir = join(root, typeof entry.dir === 'string' ? entry.dir : name);
    if (!existsSync(join(splitDir, INDEX_FILE))) throw new DatasetError(splitDir, `the "${name}" split listed in ${DATASET_FILE} has no ${INDEX_FILE}`);
  } else {
    throw new DatasetError(dir, `not a data folder: neither ${DATASET_FILE} nor ${INDEX_FILE} is there (build one with: node dist/data.js build ...)`);
  }
  const reader = await openShards<EvalRecord>(splitDir);
  if (built && name) checkSplitOfBuild(built.root, built.manifest, name, splitDir, reader.index);
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

export interface TrainingSplits {
  /** The folder whose records are trained on. */
  train: string;
  /** The validation split of the same build, when it has one. */
  validation: string | null;
}

/**
 * The split folders a fine-tuning run reads from `--data DIR`: DIR/train and DIR/validation of
 * a built data folder, each checked (listed in dataset.json, same build, every shard present at
 * its size) before any work. A split folder of a built data folder given as DIR is refused: it
 * would train on that split (validation or test data) with no validation. A bare shard folder
 * (index.json, no dataset.json around it) is trained on as it is, as are folders built before
 * dataset.json listed its splits.
 */
export async function trainingSplits(dir: string): Promise<TrainingSplits> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new DatasetError(dir, 'no such data folder (build one with: node dist/data.js build ...)');
  if (!statSync(root).isDirectory()) throw new DatasetError(dir, 'not a folder; pass the folder node dist/data.js build wrote');
  if (existsSync(join(root, DATASET_FILE))) {
    const manifest = await readManifest(root);
    const listed = Object.keys(manifest.splits);
    if (!manifest.splits.train) throw new DatasetError(dir, `has no "train" split (built: ${listed.length ? listed.join(', ') : 'none'})`);
    const open = async (name: SplitName) => {
      const splitDir = join(root, manifest.splits[name]!.dir ?? name);
      const reader = await openShards(splitDir);
      checkSplitOfBuild(root, manifest, name, splitDir, reader.index);
      return join(dir, manifest.splits[name]!.dir ?? name);
    };
    return { train: await open('train'), validation: manifest.splits.validation ? await open('validation') : null };
  }
  if (existsSync(join(root, INDEX_FILE))) {
    const parent = dirname(root);
    const index = (await openShards(root)).index;
    if (existsSync(join(parent, DATASET_FILE)) || index.meta['dataset'] === DATASET_FORMAT) {
      const what = typeof index.meta['split'] === 'string' ? `the "${index.meta['split']}" split folder` : 'a split folder';
      throw new DatasetError(dir, `is ${what} of a data folder; pass the data root (--data ${dirname(dir)}): training reads its train/ and checks on its validation/`);
    }
    const val = join(root, 'validation');
    return { train: dir, validation: existsSync(join(val, INDEX_FILE)) ? join(dir, 'validation') : null };
  }
  const train = join(root, 'train');
  if (existsSync(join(train, INDEX_FILE))) {
    // data.js writes dataset.json last (before build ids: in place), so its splits without it
    // are a build that stopped halfway; hand-made shard folders carry no such mark.
    if ((await openShards(train)).index.meta['dataset'] === DATASET_FORMAT) {
      throw new DatasetError(dir, `has train/ from node dist/data.js build but no ${DATASET_FILE}: that build did not finish; build the folder again`);
    }
    const val = join(root, 'validation');
    return { train: join(dir, 'train'), validation: existsSync(join(val, INDEX_FILE)) ? join(dir, 'validation') : null };
  }
  throw new DatasetError(dir, `not a data folder: no ${DATASET_FILE}, ${INDEX_FILE} or train/${INDEX_FILE} (build one with: node dist/data.js build ...)`);
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
