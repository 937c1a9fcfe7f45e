/**
 * CLIP configuration from a Hugging Face `config.json` (canonical), or inferred from the shapes
 * of an OpenAI-layout state dict (as OpenAI's build_model does).
 */
import type { Activation } from '../engine/index.js';
/**
 * The activation of a transformer's MLP, as CLIP configs name it (mapped from HF's hidden_act):
 * one of the matmul epilogue's fused activations, so there is one Activation type (the
 * engine's, which adds 'none').
 */
export type HiddenActivation = Exclude<Activation, 'none'>;

export interface TowerConfig {
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  layerNormEps: number;
  activation: HiddenActivation;
}

export interface TextConfig extends TowerConfig {
  vocabSize: number;
  maxPositions: number;
  /** The pooled position is the first occurrence of this id, or the arg-max id when null. */
  eosTokenId: number | null;
}

export interface VisionConfig extends TowerConfig {
  imageSize: number;
  patchSize: number;
  channels: number;
}

export interface ClipConfig {
  text: TextConfig;
  vision: VisionConfig;
  projectionDim: number;
  logitScaleInit: number;
}

export class ConfigError extends Error {
  constructor(source: string, key: string, message: string) {
    super(`${source}: ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

const ACTIVATIONS: Record<string, HiddenActivation> = {
  quick_gelu: 'quick_gelu',
  gelu: 'gelu_erf',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  relu: 'relu',
};

type Json = Record<string, unknown>;

function num(src: string, obj: Json, key: string, prefix: string, dflt: number, integer = true): number {
  const v = obj[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && (!Number.isInteger(v) || v <= 0))) {
    throw new ConfigError(src, `${prefix}${key}`, `expected a ${integer ? 'positive integer' : 'number'}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function positive(src: string, obj: Json, key: string, prefix: string, dflt: number): number {
  const v = num(src, obj, key, prefix, dflt, false);
  if (!(v > 0)) throw new ConfigError(src, `${prefix}${key}`, `expected a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function activation(src: string, obj: Json, prefix: string): HiddenActivation {
  const v = obj.hidden_act ?? 'quick_gelu';
  const a = typeof v === 'string' ? ACTIVATIONS[v] : undefined;
  if (!a) throw new ConfigError(src, `${prefix}hidden_act`, `unsupported activation ${JSON.stringify(v)} (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return a;
}

function tower(src: string, obj: Json, prefix: string, d: { hidden: number; inter: number; layers: number; heads: number }): TowerConfig {
  const hiddenSize = num(src, obj, 'hidden_size', prefix, d.hidden);
  const heads = num(src, obj, 'num_attention_heads', prefix, d.heads);
  if (hiddenSize % heads !== 0) {
    throw new ConfigError(src, `${prefix}num_attention_heads`, `${heads} does not divide hidden_size ${hiddenSize}`);
  }
  return {
    hiddenSize,
    intermediateSize: num(src, obj, 'intermediate_size', prefix, d.inter),
    layers: num(src, obj, 'num_hidden_layers', prefix, d.layers),
    heads,
    layerNormEps: positive(src, obj, 'layer_norm_eps', prefix, 1e-5),
    activation: activation(src, obj, prefix),
  };
}

/** Parses a Hugging Face CLIPModel config.json (defaults as in transformers' CLIPConfig: ViT-B/32). */
export function parseHfConfig(json: unknown, source = 'config.json'): ClipConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(source, '(root)', 'expected a JSON object');
  const root = json as Json;
  const tc = (root.text_config ?? {}) as Json;
  const vc = (root.vision_config ?? {}) as Json;
  if (typeof tc !== 'object' || typeof vc !== 'object') throw new ConfigError(source, 'text_config/vision_config', 'expected objects');
  const text: TextConfig = {
    ...tower(source, tc, 'text_config.', { hidden: 512, inter: 2048, layers: 12, heads: 8 }),
    vocabSize: num(source, tc, 'vocab_size', 'text_config.', 49408),
    maxPositions: num(source, tc, 'max_position_embeddings', 'text_config.', 77),
    // transformers pools at the arg-max id when eos_token_id is the legacy 2.
    eosTokenId: typeof tc.eos_token_id === 'number' && tc.eos_token_id !== 2 ? tc.eos_token_id : null,
  };
  const vision: VisionConfig = {
    ...tower(source, vc, 'vision_config.', { hidden: 768, inter: 3072, layers: 12, heads: 12 }),
    imageSize: num(source, vc, 'image_size', 'vision_config.', 224),
    patchSize: num(source, vc, 'patch_size', 'vision_config.', 32),
    channels: num(source, vc, 'num_channels', 'vision_config.', 3),
  };
  if (vision.imageSize % vision.patchSize !== 0) {
    throw new ConfigError(source, 'vision_config.patch_size', `${vision.patchSize} does not divide image_size ${vision.imageSize}`);
  }
  return {
    text,
    vision,
    projectionDim: num(source, root, 'projection_dim', '', 512),
    logitScaleInit: num(source, root, 'logit_scale_init_value', '', 2.6592, false),
  };
}

/** Shapes of an OpenAI-layout state dict, by key. */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

function countBlocks(shapes: ShapeMap, prefix: string): number {
  let n = 0;
  while (shapes.has(`${prefix}${n}.ln_1.weight`)) n++;
  return n;
}

/** Infers the config of an OpenAI/open_clip ViT checkpoint from its tensor shapes. */
export function inferOpenAiConfig(shapes: ShapeMap, source: string): ClipConfig {
  const need = (k: string) => {
    const s = shapes.get(k);
    if (!s) throw new ConfigError(source, k, 'missing (needed to infer the model config)');
    return s;
  };
  const conv = need('visual.conv1.weight');
  const vpos = need('visual.positional_embedding');
  const grid = Math.round(Math.sqrt(vpos[0] - 1));
  if (grid * grid !== vpos[0] - 1) throw new ConfigError(source, 'visual.positional_embedding', `${vpos[0]} positions is not 1 + a square grid`);
  const vWidth = conv[0];
  const tWidth = need('ln_final.weight')[0];
  const tLayers = countBlocks(shapes, 'transformer.resblocks.');
  const vLayers = countBlocks(shapes, 'visual.transformer.resblocks.');
  const fc = (p: string) => need(`${p}0.mlp.c_fc.weight`)[0];
  return {
    text: {
      hiddenSize: tWidth,
      intermediateSize: fc('transformer.resblocks.'),
      layers: tLayers,
      heads: Math.max(1, tWidth / 64),
      layerNormEps: 1e-5,
      activation: 'quick_gelu',
      vocabSize: need('token_embedding.weight')[0],
      maxPositions: need('positional_embedding')[0],
      eosTokenId: null,
    },
    vision: {
      hiddenSize: vWidth,
      intermediateSize: fc('visual.transformer.resblocks.'),
      layers: vLayers,
      heads: Math.max(1, vWidth / 64),
      layerNormEps: 1e-5,
      activation: 'quick_gelu',
      imageSize: conv[3] * grid,
      patchSize: conv[3],
      channels: conv[1],
    },
    projectionDim: need('text_projection')[1],
    logitScaleInit: 2.6592,
  };
}
