/**
 * Node-side loading of a CLIP checkpoint: a Hugging Face folder (config.json + model.safetensors,
 * pytorch_model.bin, or a sharded index of either), or a single file: OpenAI/open_clip-layout
 * .safetensors, a PyTorch state dict (.pt/.pth/.bin) or an open_clip / NegBench training
 * checkpoint (the state dict under "state_dict", keys possibly prefixed "module."). The config
 * comes from a config.json beside the weights or given, and is inferred from the shapes of an
 * OpenAI-layout file otherwise.
 */
import { existsSync, readSync, closeSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FileReadError, MAX_CONFIG_BYTES, openRegularSync, readFailure, readRegularTextSync, regularFileSize } from '../io/read-file-node.js';
import type { GpuContext } from '../engine/index.js';
import { ClipModel, type LoadOptions } from './clip.js';
import { ConfigError, inferOpenAiConfig, parseHfConfig, type ClipConfig } from './clip-config.js';
import { hfWeights, isOpenAiLayout } from './clip-weights.js';
import { openSafetensors } from './safetensors-node.js';
import { openShardedTorch, openTorchFile, type OpenWeights } from './torch-node.js';
import { isTorchName, looksLikeSafetensors, looksLikeTorch, notTorchError } from './weights-bytes.js';
import { loadTokenizer, shippedVocabPath } from './tokenizer/load-node.js';
import { TokenizerFileError } from './tokenizer/vocab-files.js';
import type { Tokenizer } from './tokenizer/index.js';

export interface ClipLoadOptions extends LoadOptions {
  /** A config.json to use instead of the one in the model folder. */
  configPath?: string;
  /** Load a checkpoint of an unfinished pretrain.js run (its --resume does). */
  allowUnfinished?: boolean;
}

/**
 * pretrain.js keeps its optimizer state beside its checkpoint weights until the run ends and
 * renames the folder into place: a folder still holding the state is a run that was stopped,
 * not a model.
 */
export const UNFINISHED_MARK = 'pretrain_state.safetensors';

function readConfig(path: string): ClipConfig {
  let json: unknown;
  try {
    json = JSON.parse(readRegularTextSync(path, MAX_CONFIG_BYTES, 'a JSON config'));
  } catch (e) {
    throw new ConfigError(path, '(file)', e instanceof FileReadError ? e.reason : `cannot parse: ${readFailure(e)}`);
  }
  return parseHfConfig(json, path);
}

const TORCH_NAMES = ['pytorch_model.bin', 'pytorch_model.bin.index.json'];

/** The first `n` bytes of a file (fewer when it is shorter); refuses anything but a regular file. */
function fileHead(path: string, n: number): Buffer {
  let fd: number;
  try {
    fd = openRegularSync(path).fd;
  } catch (e) {
    throw new ConfigError(path, '(path)', readFailure(e));
  }
  try {
    const head = Buffer.alloc(n);
    return head.subarray(0, readSync(fd, head, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * A single weights file by its content. A file named like a PyTorch checkpoint that is neither
 * torch nor safetensors (empty, zeros, text) is reported as what it failed to be, not as a broken
 * safetensors header.
 */
function openWeightsFile(path: string): Promise<OpenWeights> {
  if (path.endsWith('.bin.index.json')) return openShardedTorch(path);
  if (path.endsWith('.json') || path.endsWith('.safetensors')) return openSafetensors(path);
  // A FIFO or device is refused as such first (/dev/zero's size reads as 0).
  let size: number;
  try {
    size = regularFileSize(path);
  } catch (e) {
    throw new ConfigError(path, '(path)', readFailure(e));
  }
  if (size === 0) throw new Error(`${path}: is empty (0 bytes), not a model checkpoint`);
  const head = fileHead(path, 16);
  if (looksLikeTorch(head)) return openTorchFile(path);
  if (isTorchName(path) && !looksLikeSafetensors(head)) throw notTorchError(path, head);
  return openSafetensors(path);
}

/**
 * The weights of a checkpoint path, by what is there: a folder's model.safetensors (or its
 * index), else its pytorch_model.bin (or its index); a file by its content.
 */
export async function openWeights(path: string): Promise<OpenWeights> {
  if (!existsSync(path)) throw new ConfigError(path, '(path)', 'no such model file or folder');
  if (statSync(path).isDirectory()) {
    if (['model.safetensors', 'model.safetensors.index.json'].some((n) => existsSync(join(path, n)))) return openSafetensors(path);
    const [bin, index] = TORCH_NAMES.map((n) => join(path, n));
    if (existsSync(bin)) return openTorchFile(bin);
    if (existsSync(index)) return openShardedTorch(index);
    return openSafetensors(path); // its error names what was looked for
  }
  return openWeightsFile(path);
}

/** The config a checkpoint path implies, without loading weights. */
export async function clipConfigFor(path: string, configPath?: string): Promise<ClipConfig> {
  if (configPath) return readConfig(configPath);
  if (!existsSync(path)) throw new ConfigError(path, '(path)', 'no such model file or folder');
  const folder = statSync(path).isDirectory() ? path : dirname(path);
  const beside = join(folder, 'config.json');
  if (existsSync(beside)) return readConfig(beside);
  const file = await openWeights(path);
  try {
    const shapes = new Map(file.keys().map((k) => [k, [...file.shape(k)]]));
    if (!isOpenAiLayout([...shapes.keys()])) {
      throw new ConfigError(path, 'config.json', `missing: a Hugging Face checkpoint needs ${beside} (or pass a config path)`);
    }
    return inferOpenAiConfig(shapes, path);
  } finally {
    await file.close();
  }
}

/** Loads the weights of a CLIP checkpoint (folder or file) onto `ctx`. */
export async function loadClip(ctx: GpuContext, path: string, opts: ClipLoadOptions = {}): Promise<ClipModel> {
  if (!opts.allowUnfinished && existsSync(join(path, UNFINISHED_MARK))) {
    throw new Error(`${path}: an unfinished pretrain.js run (${UNFINISHED_MARK} is there), not a model; continue it with node dist/pretrain.js --resume`);
  }
  const config = await clipConfigFor(path, opts.configPath);
  const file = await openWeights(path);
  try {
    return await ClipModel.load(ctx, config, hfWeights(file, config), opts);
  } finally {
    await file.close();
  }
}

/** The tokenizer in the model folder, or at `tokenizerPath`. */
export function loadClipTokenizer(modelPath: string, tokenizerPath?: string): Tokenizer {
  if (tokenizerPath) return loadTokenizer(tokenizerPath);
  const folder = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  try {
    return loadTokenizer(folder);
  } catch (e) {
    // A folder with weights only (OpenAI-layout exports often have no tokenizer files): CLIP's
    // own vocabulary, which the repository ships. Any other tokenizer error stands.
    const shipped = shippedVocabPath();
    if (!(e instanceof TokenizerFileError) || !/no tokenizer files found/.test(e.message) || !shipped) throw e;
    return loadTokenizer(shipped);
  }
}
