/**
 * Browser-safe: which of a model folder's files hold its weights, and a weight source over
 * those files held in memory, so a page loads what the Node loader (load-node.ts) loads:
 *   - model.safetensors, or model.safetensors.index.json with its shards;
 *   - pytorch_model.bin, or pytorch_model.bin.index.json with its shards;
 *   - a single .safetensors file, or a single PyTorch file (.pt, .pth, .bin, .ckpt, .tar): a state
 *     dict or an open_clip / NegBench training checkpoint.
 * In that order, as load-node picks in a folder. A single file is judged by its bytes (a .bin
 * that is really safetensors loads as such), so the name only decides which file is the weights.
 */
import type { WeightSource } from './clip-weights.js';
import { SafetensorsBuffer, SafetensorsError } from './safetensors.js';
import { TorchCheckpoint } from './torch-checkpoint.js';
import type { RandomAccess } from './zip-reader.js';

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
export const TORCH_FILE = 'pytorch_model.bin';
export const TORCH_INDEX = 'pytorch_model.bin.index.json';
/** Extensions a PyTorch checkpoint goes by; a file so named is judged as one first. */
export const TORCH_EXTENSIONS = ['.pt', '.pth', '.bin', '.ckpt', '.tar'] as const;

export const isTorchName = (p: string): boolean => TORCH_EXTENSIONS.some((x) => p.toLowerCase().endsWith(x));
const topLevel = (p: string) => !p.includes('/');

/** Whether bytes start like torch.save's output: a zip archive or a (legacy) pickle. */
export function looksLikeTorch(head: Uint8Array): boolean {
  return (head[0] === 0x50 && head[1] === 0x4b) || (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5);
}

/** Whether bytes start like safetensors: a little-endian header length, then the JSON header's "{". */
export function looksLikeSafetensors(head: Uint8Array): boolean {
  return head.length >= 9 && new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true) > 1n && head[8] === 0x7b;
}

/**
 * The error for a file named like a PyTorch checkpoint whose first bytes (`head`) are neither
 * torch.save's nor safetensors': reported as what it failed to be, not as a broken safetensors
 * header.
 */
export function notTorchError(where: string, head: Uint8Array): Error {
  const first = head.subarray(0, 16);
  const hex = [...first.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const what = first.every((b) => b === 0) ? `its first ${first.length} bytes are all 0` : `it starts with bytes ${hex}`;
  return new Error(`${where}: not a PyTorch checkpoint: ${what}, neither a zip archive (torch.save) nor a pickle; the file is damaged or not a checkpoint`);
}

/** A folder's file names for messages: the first 12, then the count. */
export function fileNames(files: ReadonlyMap<string, unknown>): string {
  const all = [...files.keys()];
  return all.length === 0 ? 'no files' : `${all.slice(0, 12).join(', ')}${all.length > 12 ? `, ... (${all.length} files)` : ''}`;
}

/** Whether a file at this path inside a folder can hold weights (a page reads no others). */
export function isWeightsFileName(path: string): boolean {
  return topLevel(path) && (path.endsWith('.safetensors') || path === SAFETENSORS_INDEX || path === TORCH_INDEX || isTorchName(path));
}

/**
 * Which file of the folder holds the weights (an index for a sharded checkpoint). Only the names
 * are looked at, so a page can choose before it reads any large file.
 */
export function weightsFileOf(files: ReadonlyMap<string, unknown>, source = 'model folder'): string {
  for (const n of [SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX]) if (files.has(n)) return n;
  const single = [...files.keys()].filter((k) => topLevel(k) && k.endsWith('.safetensors'));
  if (single.length === 1) return single[0];
  if (single.length > 1) throw new Error(`${source}: several .safetensors files (${single.join(', ')}) and no ${SAFETENSORS_FILE}: pick only the checkpoint's`);
  const torch = [...files.keys()].filter((k) => topLevel(k) && isTorchName(k));
  if (torch.length === 1) return torch[0];
  if (torch.length > 1) throw new Error(`${source}: several PyTorch files (${torch.join(', ')}) and no ${TORCH_FILE}: pick only the checkpoint's`);
  throw new Error(`${source}: no weights among ${fileNames(files)}; looked for ${SAFETENSORS_FILE}, ${SAFETENSORS_INDEX}, ${TORCH_FILE}, ${TORCH_INDEX}, one .safetensors file or one ${TORCH_EXTENSIONS.join('/')} file`);
}

/** Key -> shard file of an index's "weight_map", each shard a file name beside the index. */
export function parseWeightMap(text: string, where: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new Error(`${where}: "weight_map" must be an object of key -> shard file`);
  const out = new Map<string, string>();
  for (const [k, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '' || /[\\/]/.test(file) || file === '..' || file === '.') {
      throw new Error(`${where}: weight_map["${k}"] must be a shard file name beside the index, got ${JSON.stringify(file)}`);
    }
    out.set(k, file);
  }
  if (out.size === 0) throw new Error(`${where}: "weight_map" lists no tensors`);
  return out;
}

const utf8 = new TextDecoder('utf-8');

/**
 * The files to read for the weights: the weights file, or an index and every shard it names
 * (`readText` gives the index's text; a page reads the small index before the shards).
 */
export async function weightFilesToRead(files: ReadonlyMap<string, unknown>, readText: (name: string) => Promise<string>, source = 'model folder'): Promise<string[]> {
  const main = weightsFileOf(files, source);
  if (main !== SAFETENSORS_INDEX && main !== TORCH_INDEX) return [main];
  const shards = [...new Set(parseWeightMap(await readText(main), `${source}/${main}`).values())];
  const missing = shards.filter((s) => !files.has(s));
  if (missing.length) throw new Error(`${source}/${main}: names shard${missing.length === 1 ? '' : 's'} ${missing.join(', ')}, not among the files given (pick every shard with the index)`);
  return [main, ...shards];
}

function memoryAccess(bytes: Uint8Array, source: string): RandomAccess {
  return {
    size: bytes.byteLength,
    async read(offset, length) {
      if (offset < 0 || offset + length > bytes.byteLength) throw new Error(`${source}: ends at ${bytes.byteLength} bytes, a read of ${length} at ${offset} runs past it (truncated?)`);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** A single weights file held in memory, safetensors or PyTorch, told apart by its bytes. */
export async function openWeightsBytes(bytes: Uint8Array, where: string): Promise<WeightSource> {
  if (bytes.byteLength === 0) throw new Error(`${where}: is empty (0 bytes), not a model checkpoint`);
  if (looksLikeTorch(bytes)) return TorchCheckpoint.open(memoryAccess(bytes, where), where);
  if (isTorchName(where) && !looksLikeSafetensors(bytes)) throw notTorchError(where, bytes);
  return new SafetensorsBuffer(bytes, where);
}

/** Tensors spread over shards by an index: each key read from the shard the index names. */
async function openSharded(files: ReadonlyMap<string, Uint8Array>, index: string, source: string): Promise<WeightSource> {
  const where = `${source}/${index}`;
  const map = parseWeightMap(utf8.decode(files.get(index)!), where);
  const shards = new Map<string, WeightSource>();
  for (const file of new Set(map.values())) {
    const bytes = files.get(file);
    if (!bytes) throw new Error(`${where}: names shard ${file}, not among the files given (pick every shard with the index)`);
    shards.set(file, await openWeightsBytes(bytes, `${source}/${file}`));
  }
  for (const [k, file] of map) {
    if (!shards.get(file)!.keys().includes(k)) throw new SafetensorsError(`${source}/${file}`, k, `is listed in ${index} but not in this shard`);
  }
  const shardOf = (k: string) => {
    const f = map.get(k);
    if (f === undefined) throw new Error(`${where}: no tensor ${k}`);
    return shards.get(f)!;
  };
  return { source: where, keys: () => [...map.keys()], shape: (k) => shardOf(k).shape(k), read: (k) => shardOf(k).read(k) };
}

/** The weights among a folder's files (`weightsFileOf` picks), read from memory. */
export async function openWeightsFromFiles(files: ReadonlyMap<string, Uint8Array>, source = 'model folder'): Promise<{ name: string; weights: WeightSource }> {
  const name = weightsFileOf(files, source);
  const weights = name === SAFETENSORS_INDEX || name === TORCH_INDEX ? await openSharded(files, name, source) : await openWeightsBytes(files.get(name)!, `${source}/${name}`);
  return { name, weights };
}
