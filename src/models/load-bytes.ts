/**
 * Browser-safe loading of a CLIP checkpoint from bytes: the files of a model folder as a page
 * gets them (fetch() responses, `<input type=file>` picks, dropped folders). The Node loader
 * (load-node.ts) reads the same files from disk; both end in `ClipModel.load`.
 *
 * A folder is: `config.json` (optional for an OpenAI-layout checkpoint, whose config is inferred
 * from the tensor shapes), the weights (model.safetensors or pytorch_model.bin, either sharded by
 * its index, or the folder's one .safetensors or PyTorch file: weights-bytes.ts), an optional
 * `preprocessor_config.json`, and tokenizer files, searched in load-node's order in the folder
 * and then its `tokenizer/` subfolder: `word_tokenizer.json`, `vocab.json` + `merges.txt`,
 * `tokenizer.json`, `bpe_simple_vocab_16e6.txt.gz`.
 */
import type { GpuContext } from '../engine/index.js';
import { ClipModel, type LoadOptions } from './clip.js';
import { ConfigError, inferOpenAiConfig, parseHfConfig, type ClipConfig } from './clip-config.js';
import { hfWeights, isOpenAiLayout, type WeightSource } from './clip-weights.js';
import { SafetensorsBuffer } from './safetensors.js';
import { fileNames, isWeightsFileName, openWeightsBytes, openWeightsFromFiles } from './weights-bytes.js';
import { ClipTokenizer, type Tokenizer } from './tokenizer/bpe.js';
import { TokenizerFileError } from './tokenizer/vocab-files.js';
import { WordTokenizer } from './tokenizer/word.js';
import { clipImageConfig, imageConfigFromPreprocessorJson, type ClipImageConfig } from './image/preprocess.js';

export { isWeightsFileName, openWeightsBytes, openWeightsFromFiles, parseWeightMap, weightFilesToRead, weightsFileOf } from './weights-bytes.js';
export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const PREPROCESSOR_FILE = 'preprocessor_config.json';
const WORD_TOKENIZER_FILE = 'word_tokenizer.json';
const OPENAI_VOCAB_FILE = 'bpe_simple_vocab_16e6.txt.gz';

/** One checkpoint as bytes. */
export interface ClipBytes {
  /**
   * config.json as text or already parsed; absent for an OpenAI-layout checkpoint (config
   * inferred from the shapes, as OpenAI's build_model does).
   */
  config?: string | object;
  /** Name of the config, for messages (default config.json). */
  configName?: string;
  weights: ArrayBuffer | Uint8Array;
  /** Name of the weights, for messages (default model.safetensors). */
  weightsName?: string;
}

/**
 * Files of a model folder by path inside the folder (`config.json`, `tokenizer/vocab.json`).
 * Build one from picked or fetched files with `modelFileMap`.
 */
export type ModelFiles = ReadonlyMap<string, Uint8Array>;

const utf8 = new TextDecoder('utf-8');

function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(source, '(file)', `not valid JSON: ${(e as Error).message}`);
  }
}

/** The checkpoint's config: parsed from the config when given, else inferred from an OpenAI-layout file. */
export function clipConfigFromBytes(src: ClipBytes, weights: WeightSource = new SafetensorsBuffer(src.weights, src.weightsName ?? WEIGHTS_FILE)): ClipConfig {
  return configOf(src.config, src.configName ?? CONFIG_FILE, weights);
}

/** The config text or object when there is one, else the one an OpenAI-layout checkpoint's shapes imply. */
function configOf(config: string | object | undefined, configName: string, weights: WeightSource): ClipConfig {
  if (config !== undefined) {
    return parseHfConfig(typeof config === 'string' ? parseJsonText(config, configName) : config, configName);
  }
  const shapes = new Map(weights.keys().map((k) => [k, [...weights.shape(k)]]));
  if (!isOpenAiLayout([...shapes.keys()])) {
    throw new ConfigError(weights.source, CONFIG_FILE, 'missing: a Hugging Face checkpoint needs its config.json (pick it with the weights)');
  }
  return inferOpenAiConfig(shapes, weights.source);
}

/**
 * Validates the weights against the config (naming file and key on a mismatch) and uploads them
 * to `ctx`. The weights are safetensors or a PyTorch checkpoint, told apart by their bytes.
 */
export async function loadClipFromBytes(ctx: GpuContext, src: ClipBytes, opts: LoadOptions = {}): Promise<ClipModel> {
  const weights = await openWeightsBytes(src.weights instanceof Uint8Array ? src.weights : new Uint8Array(src.weights), src.weightsName ?? WEIGHTS_FILE);
  const config = clipConfigFromBytes(src, weights);
  return ClipModel.load(ctx, config, hfWeights(weights, config), opts);
}

/**
 * A file map from (path, bytes) pairs, e.g. `webkitRelativePath`s of a picked folder. When
 * every path starts with the same folder (the picked folder's own name), that folder is cut
 * off, so `my-clip/config.json` becomes `config.json`; `tokenizer/` subfolders stay. Backslashes
 * become slashes. A repeated path is an error naming it.
 */
export function modelFileMap<T = Uint8Array>(entries: Iterable<readonly [string, T]>): Map<string, T> {
  const list = [...entries].map(([p, b]) => [p.replace(/\\/g, '/').replace(/^\/+/, ''), b] as const);
  const first = (p: string) => (p.includes('/') ? p.slice(0, p.indexOf('/') + 1) : null);
  const top = list.length > 0 ? first(list[0][0]) : null;
  // A lone `tokenizer/` folder is the diffusers layout's subfolder, not a wrapper to cut.
  const cut = top !== null && top !== 'tokenizer/' && list.every(([p]) => first(p) === top) ? top.length : 0;
  const out = new Map<string, T>();
  for (const [p, b] of list) {
    const key = p.slice(cut);
    if (out.has(key)) throw new Error(`model files: ${JSON.stringify(key)} is given twice`);
    out.set(key, b);
  }
  return out;
}

const TOKENIZER_FILES = [WORD_TOKENIZER_FILE, 'vocab.json', 'merges.txt', 'tokenizer.json', OPENAI_VOCAB_FILE];

/**
 * Whether the loader can use a file at this path inside the folder, so that a page reads only
 * those from a picked folder (which may also hold a .bin or .msgpack copy of the weights).
 */
export function isModelFileName(path: string): boolean {
  if (path.startsWith('tokenizer/')) return TOKENIZER_FILES.includes(path.slice('tokenizer/'.length));
  if (path.includes('/')) return false;
  return path === CONFIG_FILE || path === PREPROCESSOR_FILE || isWeightsFileName(path) || TOKENIZER_FILES.includes(path);
}

function text(files: ModelFiles, name: string): string {
  return utf8.decode(files.get(name)!);
}

/**
 * The tokenizer among a folder's files, in load-node's search order (the folder, then its
 * `tokenizer/` subfolder): word_tokenizer.json, vocab.json + merges.txt, tokenizer.json,
 * bpe_simple_vocab_16e6.txt.gz. `source` names the folder in messages.
 */
export function tokenizerFromFiles(files: ModelFiles, source = 'model folder'): Tokenizer {
  const looked: string[] = [];
  for (const dir of ['', 'tokenizer/']) {
    const word = `${dir}${WORD_TOKENIZER_FILE}`;
    looked.push(word);
    if (files.has(word)) return WordTokenizer.fromJSON(text(files, word), `${source}/${word}`);
    const vocab = `${dir}vocab.json`;
    const merges = `${dir}merges.txt`;
    looked.push(`${vocab} + merges.txt`);
    if (files.has(vocab) && files.has(merges)) return ClipTokenizer.fromHF(text(files, vocab), text(files, merges), `${source}/${vocab} + merges.txt`);
    const tj = `${dir}tokenizer.json`;
    looked.push(tj);
    if (files.has(tj)) return ClipTokenizer.fromHFTokenizerJson(text(files, tj), `${source}/${tj}`);
    const gz = `${dir}${OPENAI_VOCAB_FILE}`;
    looked.push(gz);
    if (files.has(gz)) return ClipTokenizer.fromOpenAIGzip(files.get(gz)!, `${source}/${gz}`);
  }
  // A half pair is the likeliest slip when picking files one by one: say which half is missing.
  for (const dir of ['', 'tokenizer/']) {
    if (files.has(`${dir}vocab.json`) !== files.has(`${dir}merges.txt`)) {
      const [have, miss] = files.has(`${dir}vocab.json`) ? ['vocab.json', 'merges.txt'] : ['merges.txt', 'vocab.json'];
      throw new TokenizerFileError(`${source}/${dir}${have}`, `a ${have} needs ${miss} beside it; ${dir}${miss} was not given`);
    }
  }
  throw new TokenizerFileError(source, `no tokenizer files among ${fileNames(files)}; looked for ${looked.join(', ')}`);
}

/**
 * The image preprocessing of a folder: its preprocessor_config.json when present, else OpenAI
 * CLIP's at the model's input size.
 */
export function imageConfigFromFiles(files: ModelFiles, config: ClipConfig, source = 'model folder'): ClipImageConfig {
  const bytes = files.get(PREPROCESSOR_FILE);
  if (!bytes) return clipImageConfig(config.vision.imageSize);
  const where = `${source}/${PREPROCESSOR_FILE}`;
  let cfg: ClipImageConfig;
  try {
    cfg = imageConfigFromPreprocessorJson(parseJsonText(utf8.decode(bytes), where));
  } catch (e) {
    throw e instanceof ConfigError ? e : new Error(`${where}: ${(e as Error).message}`);
  }
  const out = cfg.crop ?? (cfg.resize !== null && typeof cfg.resize === 'object' ? cfg.resize : null);
  const size = config.vision.imageSize;
  if (!out || out.height !== size || out.width !== size) {
    throw new Error(`${where}: preprocessing gives ${out ? `${out.width}x${out.height}` : 'no fixed size'}, the model takes ${size}x${size} (check crop_size)`);
  }
  return cfg;
}

export interface LoadedClip {
  model: ClipModel;
  tokenizer: Tokenizer;
  imageConfig: ClipImageConfig;
  config: ClipConfig;
  /** The files used, by role; fallbackTokenizer: the folder had no tokenizer files and opts.fallbackTokenizer gave one. */
  used: { config: string | null; weights: string; preprocessor: string | null; fallbackTokenizer: boolean };
}

export interface FolderLoadOptions extends LoadOptions {
  /** The folder's name in messages (default "model folder"). */
  source?: string;
  /**
   * The tokenizer for a folder without tokenizer files (OpenAI-layout exports and many Hugging
   * Face vision-language folders ship none), as the CLI falls back to the bundled CLIP BPE
   * vocabulary; a folder with broken tokenizer files still fails.
   */
  fallbackTokenizer?: () => Tokenizer | Promise<Tokenizer>;
}

/**
 * Model, tokenizer and image preprocessing from a folder's files. The tokenizer and the
 * preprocessor config are checked before any weight is uploaded, so a bad pick fails fast.
 */
export async function loadClipFromFiles(ctx: GpuContext, files: ModelFiles, opts: FolderLoadOptions = {}): Promise<LoadedClip> {
  const { source = 'model folder', fallbackTokenizer, ...load } = opts;
  const { name: weightsName, weights } = await openWeightsFromFiles(files, source);
  const config = configOf(files.has(CONFIG_FILE) ? text(files, CONFIG_FILE) : undefined, `${source}/${CONFIG_FILE}`, weights);
  let tokenizer: Tokenizer;
  let fellBack = false;
  try {
    tokenizer = tokenizerFromFiles(files, source);
  } catch (e) {
    if (!fallbackTokenizer || !(e instanceof TokenizerFileError) || !/no tokenizer files among/.test(e.message)) throw e;
    tokenizer = await fallbackTokenizer();
    fellBack = true;
  }
  if (tokenizer.vocabSize > config.text.vocabSize) {
    throw new Error(`${source}: the tokenizer has ${tokenizer.vocabSize} ids but the text encoder's vocabulary is ${config.text.vocabSize}: they are not from the same model`);
  }
  const imageConfig = imageConfigFromFiles(files, config, source);
  const model = await ClipModel.load(ctx, config, hfWeights(weights, config), load);
  return {
    model, tokenizer, imageConfig, config,
    used: {
      config: files.has(CONFIG_FILE) ? CONFIG_FILE : null, weights: weightsName, preprocessor: files.has(PREPROCESSOR_FILE) ? PREPROCESSOR_FILE : null,
      fallbackTokenizer: fellBack,
    },
  };
}
