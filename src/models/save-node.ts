/**
 * Saves a ClipModel as a Hugging Face CLIPModel folder: config.json (read back by
 * parseHfConfig, and by transformers' CLIPModel), model.safetensors (HF names, f32),
 * preprocessor_config.json (CLIPImageProcessor at the model's resolution) and, for a model with
 * a word-level tokenizer, that tokenizer as word_tokenizer.json (not tokenizer.json, which
 * names the HF tokenizers format). Each file is written atomically; config.json goes last, so a
 * folder with a config.json always has the weights it describes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic-write-node.js';
import { MAX_CONFIG_BYTES, readRegularTextSync } from '../io/read-file-node.js';
import { makeFolderSync } from '../io/fs-errors-node.js';
import type { ClipModel } from './clip.js';
import type { ClipConfig, HiddenActivation } from './clip-config.js';
import { expectedHfShapes, type HostTensor } from './clip-weights.js';
import { CLIP_MEAN, CLIP_STD } from './image/preprocess.js';
import type { TensorToWrite } from './safetensors.js';
import { writeSafetensorsFile } from './safetensors-node.js';
import { WordTokenizer } from './tokenizer/word.js';
import { WORD_TOKENIZER_FILE } from './tokenizer/load-node.js';

export { WORD_TOKENIZER_FILE };

const HF_ACTIVATION: Record<HiddenActivation, string> = {
  quick_gelu: 'quick_gelu',
  gelu_erf: 'gelu',
  gelu_tanh: 'gelu_pytorch_tanh',
  relu: 'relu',
};

export interface HfConfigExtras {
  /** Start and padding ids of the tokenizer, for transformers (our loader ignores them). */
  bosTokenId?: number;
  padTokenId?: number;
}

/** A CLIPModel config.json object for `cfg` (parseHfConfig(hfConfigJson(cfg)) gives cfg back). */
export function hfConfigJson(cfg: ClipConfig, extras: HfConfigExtras = {}): Record<string, unknown> {
  const t = cfg.text;
  const v = cfg.vision;
  const tower = (x: ClipConfig['text'] | ClipConfig['vision']) => ({
    hidden_size: x.hiddenSize,
    intermediate_size: x.intermediateSize,
    num_hidden_layers: x.layers,
    num_attention_heads: x.heads,
    hidden_act: HF_ACTIVATION[x.activation],
    layer_norm_eps: x.layerNormEps,
    projection_dim: cfg.projectionDim,
  });
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: cfg.projectionDim,
    logit_scale_init_value: cfg.logitScaleInit,
    initializer_factor: 1.0,
    torch_dtype: 'float32',
    text_config: {
      model_type: 'clip_text_model',
      ...tower(t),
      vocab_size: t.vocabSize,
      max_position_embeddings: t.maxPositions,
      // 2 is transformers' legacy value, meaning "pool at the arg-max id".
      eos_token_id: t.eosTokenId ?? 2,
      ...(extras.bosTokenId !== undefined ? { bos_token_id: extras.bosTokenId } : {}),
      ...(extras.padTokenId !== undefined ? { pad_token_id: extras.padTokenId } : {}),
    },
    vision_config: {
      model_type: 'clip_vision_model',
      ...tower(v),
      image_size: v.imageSize,
      patch_size: v.patchSize,
      num_channels: v.channels,
    },
  };
}

/**
 * Keys of config.json that transformers declares as floats: since transformers 5 a config is a
 * strict dataclass, and `"initializer_factor": 1` (JSON.stringify's 1.0) fails to load.
 */
const FLOAT_KEYS = ['initializer_factor', 'logit_scale_init_value', 'layer_norm_eps', 'attention_dropout', 'initializer_range'];

/** config.json text as transformers reads it: float fields keep a decimal point. */
export function hfConfigText(config: Record<string, unknown>): string {
  const text = JSON.stringify(config, null, 2) + '\n';
  return text.replace(new RegExp(`^(\\s*"(?:${FLOAT_KEYS.join('|')})": )(-?\\d+)(,?)$`, 'gm'), '$1$2.0$3');
}

/** CLIPImageProcessor settings at a resolution (what clipImageConfig(size) does). */
export function preprocessorConfigJson(size: number): Record<string, unknown> {
  return {
    image_processor_type: 'CLIPImageProcessor',
    do_resize: true,
    size: { shortest_edge: size },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: size, width: size },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [...CLIP_MEAN],
    image_std: [...CLIP_STD],
    do_convert_rgb: true,
  };
}

/** Every weight read back from the GPU, by HF name, with HF shapes (logit_scale is a scalar). */
export async function readClipWeights(model: ClipModel): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [key, shape] of expectedHfShapes(model.config)) {
    const data = (await model.param(key).toArray()) as Float32Array;
    out.set(key, { shape, data });
  }
  return out;
}

export interface SaveClipOptions {
  /** Saved as word_tokenizer.json; its ids must fit the model's vocabulary. */
  tokenizer?: WordTokenizer;
  /** safetensors __metadata__ (string values); "format": "pt" is always set. */
  metadata?: Record<string, string>;
}

/** Saves `model` (and its word tokenizer) as a Hugging Face folder at `dir` (created if needed). */
export async function saveClip(model: ClipModel, dir: string, opts: SaveClipOptions = {}): Promise<void> {
  const cfg = model.config;
  const tok = opts.tokenizer;
  if (tok && tok.vocabSize !== cfg.text.vocabSize) {
    throw new Error(`saveClip: the tokenizer has ${tok.vocabSize} ids, the model's vocabulary ${cfg.text.vocabSize}`);
  }
  if (tok && tok.contextLength > cfg.text.maxPositions) {
    throw new Error(`saveClip: the tokenizer's context length ${tok.contextLength} exceeds max_position_embeddings ${cfg.text.maxPositions}`);
  }
  makeFolderSync(dir);
  const weights = await readClipWeights(model);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [k, t] of weights) tensors[k] = { dtype: 'F32', shape: t.shape, data: t.data };
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, { format: 'pt', ...opts.metadata });
  await writeJsonAtomic(join(dir, 'preprocessor_config.json'), preprocessorConfigJson(cfg.vision.imageSize));
  if (tok) await writeJsonAtomic(join(dir, WORD_TOKENIZER_FILE), tok.toJSON());
  await writeFileAtomic(join(dir, 'config.json'), hfConfigText(hfConfigJson(cfg, tok ? { bosTokenId: tok.sotId, padTokenId: tok.padId } : {})));
}

/** The word tokenizer saved in a model folder, or null when the folder has none. */
export function readWordTokenizer(dir: string): WordTokenizer | null {
  const path = join(dir, WORD_TOKENIZER_FILE);
  if (!existsSync(path)) return null;
  return WordTokenizer.fromJSON(readRegularTextSync(path, MAX_CONFIG_BYTES, 'a tokenizer file'), path);
}
