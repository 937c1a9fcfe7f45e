/**
 * CLIP weight names. Hugging Face CLIPModel names are canonical; OpenAI / open_clip state-dict
 * names are mapped onto them on load (in_proj split into q/k/v, projections transposed).
 * Every expected key is checked for presence and shape; unexpected keys are an error.
 */
import type { ClipConfig, TowerConfig } from './clip-config.js';

/** A decoded tensor on the host. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Lazily readable weights (Node streams them from disk; the browser holds an ArrayBuffer). */
export interface WeightSource {
  /** File name(s), for error messages. */
  readonly source: string;
  keys(): string[];
  shape(key: string): readonly number[];
  read(key: string): Promise<Float32Array> | Float32Array;
}

export class WeightError extends Error {
  constructor(source: string, key: string, message: string) {
    super(`${source}: ${key}: ${message}`);
    this.name = 'WeightError';
  }
}

/** Buffers that checkpoints carry but the model recomputes. */
const IGNORED = /(^|\.)position_ids$|(^|\.)attn_mask$|^input_resolution$|^context_length$|^vocab_size$/;

function layerShapes(prefix: string, t: TowerConfig, out: Map<string, number[]>): void {
  const d = t.hiddenSize;
  for (let i = 0; i < t.layers; i++) {
    const p = `${prefix}.encoder.layers.${i}`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.set(`${p}.self_attn.${n}.weight`, [d, d]);
      out.set(`${p}.self_attn.${n}.bias`, [d]);
    }
    out.set(`${p}.layer_norm1.weight`, [d]);
    out.set(`${p}.layer_norm1.bias`, [d]);
    out.set(`${p}.mlp.fc1.weight`, [t.intermediateSize, d]);
    out.set(`${p}.mlp.fc1.bias`, [t.intermediateSize]);
    out.set(`${p}.mlp.fc2.weight`, [d, t.intermediateSize]);
    out.set(`${p}.mlp.fc2.bias`, [d]);
    out.set(`${p}.layer_norm2.weight`, [d]);
    out.set(`${p}.layer_norm2.bias`, [d]);
  }
}

/** Every Hugging Face key a CLIPModel of this config has, with its shape. */
export function expectedHfShapes(cfg: ClipConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const t = cfg.text;
  const v = cfg.vision;
  m.set('text_model.embeddings.token_embedding.weight', [t.vocabSize, t.hiddenSize]);
  m.set('text_model.embeddings.position_embedding.weight', [t.maxPositions, t.hiddenSize]);
  layerShapes('text_model', t, m);
  m.set('text_model.final_layer_norm.weight', [t.hiddenSize]);
  m.set('text_model.final_layer_norm.bias', [t.hiddenSize]);
  const patches = (v.imageSize / v.patchSize) ** 2;
  m.set('vision_model.embeddings.class_embedding', [v.hiddenSize]);
  m.set('vision_model.embeddings.patch_embedding.weight', [v.hiddenSize, v.channels, v.patchSize, v.patchSize]);
  m.set('vision_model.embeddings.position_embedding.weight', [patches + 1, v.hiddenSize]);
  m.set('vision_model.pre_layrnorm.weight', [v.hiddenSize]);
  m.set('vision_model.pre_layrnorm.bias', [v.hiddenSize]);
  layerShapes('vision_model', v, m);
  m.set('vision_model.post_layernorm.weight', [v.hiddenSize]);
  m.set('vision_model.post_layernorm.bias', [v.hiddenSize]);
  m.set('visual_projection.weight', [cfg.projectionDim, v.hiddenSize]);
  m.set('text_projection.weight', [cfg.projectionDim, t.hiddenSize]);
  m.set('logit_scale', []);
  return m;
}

/** True when the keys look like an OpenAI / open_clip state dict. */
export function isOpenAiLayout(keys: readonly string[]): boolean {
  return keys.some((k) => k.startsWith('transformer.resblocks.')) || keys.includes('visual.conv1.weight');
}

function transpose2d(x: HostTensor): HostTensor {
  const [r, c] = x.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = x.data[i * c + j];
  return { shape: [c, r], data: out };
}

/** Reads HF-named tensors from either layout. */
export interface HfWeights {
  readonly source: string;
  get(hfKey: string): Promise<HostTensor>;
}

/**
 * Validates `src` against the config (missing, unexpected, wrong-shape keys fail early, naming
 * the file and key) and returns a reader by Hugging Face names.
 */
export function hfWeights(src: WeightSource, cfg: ClipConfig): HfWeights {
  const keys = src.keys().filter((k) => !IGNORED.test(k));
  // Each encoder layer holds at least 12 tensors (16 in HF names, 12 with OpenAI's fused
  // in_proj): an absurd layer count (say 1e9) fails here, before its key table is built.
  const need = 12 * (cfg.text.layers + cfg.vision.layers);
  if (need > keys.length) {
    throw new WeightError(src.source, 'config', `text_config.num_hidden_layers ${cfg.text.layers} + vision_config.num_hidden_layers ${cfg.vision.layers} need at least ${need} tensors; the file holds ${keys.length}`);
  }
  const expected = expectedHfShapes(cfg);
  const read = async (k: string): Promise<HostTensor> => ({ shape: [...src.shape(k)], data: await src.read(k) });
  let resolve: Map<string, Mapping>;
  if (isOpenAiLayout(keys)) {
    resolve = openAiMapping(cfg);
  } else {
    // Some exports prefix every key with 'model.' or 'clip.'.
    resolve = new Map();
    const prefix = ['', 'model.', 'clip.'].find((p) => keys.some((k) => k === `${p}logit_scale`)) ?? '';
    for (const [k, shape] of expected) resolve.set(k, { keys: [`${prefix}${k}`], sourceShape: shape, make: ([x]) => x });
  }
  const used = new Set<string>();
  for (const [hf, r] of resolve) {
    for (const k of r.keys) {
      if (!keys.includes(k)) throw new WeightError(src.source, k, `missing (needed for ${hf})`);
      used.add(k);
    }
  }
  const unexpected = keys.filter((k) => !used.has(k));
  if (unexpected.length > 0) {
    throw new WeightError(src.source, unexpected[0], `unexpected key${unexpected.length > 1 ? ` (and ${unexpected.length - 1} more: ${unexpected.slice(1, 4).join(', ')}${unexpected.length > 4 ? ', ...' : ''})` : ''}: the checkpoint does not match the config`);
  }
  // Shape checks before any data is read.
  for (const r of resolve.values()) {
    const got = src.shape(r.keys[0]);
    if (got.join() !== r.sourceShape.join()) {
      throw new WeightError(src.source, r.keys[0], `shape [${got.join(', ')}] disagrees with the config (expected [${r.sourceShape.join(', ')}])`);
    }
  }
  return {
    source: src.source,
    async get(hfKey: string): Promise<HostTensor> {
      const r = resolve.get(hfKey);
      if (!r) throw new WeightError(src.source, hfKey, 'not a CLIP weight');
      return r.make(await Promise.all(r.keys.map(read)));
    },
  };
}

/** How one HF tensor is read: the checkpoint key(s), their on-disk shape, and the conversion. */
interface Mapping {
  keys: string[];
  sourceShape: number[];
  make: (xs: HostTensor[]) => HostTensor;
}

function openAiMapping(cfg: ClipConfig): Map<string, Mapping> {
  const expected = expectedHfShapes(cfg);
  const m = new Map<string, Mapping>();
  const direct = (hf: string, key: string) => m.set(hf, { keys: [key], sourceShape: expected.get(hf)!, make: ([x]) => x });
  const transposed = (hf: string, key: string) => {
    const [r, c] = expected.get(hf)!;
    m.set(hf, { keys: [key], sourceShape: [c, r], make: ([x]) => transpose2d(x) });
  };
  const scalar = (hf: string, key: string) => m.set(hf, { keys: [key], sourceShape: [], make: ([x]) => ({ shape: [], data: x.data }) });
  const blocks = (hfPrefix: string, oaPrefix: string, t: TowerConfig) => {
    const d = t.hiddenSize;
    for (let i = 0; i < t.layers; i++) {
      const h = `${hfPrefix}.encoder.layers.${i}`;
      const o = `${oaPrefix}.resblocks.${i}`;
      ['q_proj', 'k_proj', 'v_proj'].forEach((n, j) => {
        m.set(`${h}.self_attn.${n}.weight`, {
          keys: [`${o}.attn.in_proj_weight`], sourceShape: [3 * d, d],
          make: ([x]) => ({ shape: [d, d], data: x.data.slice(j * d * d, (j + 1) * d * d) }),
        });
        m.set(`${h}.self_attn.${n}.bias`, {
          keys: [`${o}.attn.in_proj_bias`], sourceShape: [3 * d],
          make: ([x]) => ({ shape: [d], data: x.data.slice(j * d, (j + 1) * d) }),
        });
      });
      direct(`${h}.self_attn.out_proj.weight`, `${o}.attn.out_proj.weight`);
      direct(`${h}.self_attn.out_proj.bias`, `${o}.attn.out_proj.bias`);
      direct(`${h}.layer_norm1.weight`, `${o}.ln_1.weight`);
      direct(`${h}.layer_norm1.bias`, `${o}.ln_1.bias`);
      direct(`${h}.mlp.fc1.weight`, `${o}.mlp.c_fc.weight`);
      direct(`${h}.mlp.fc1.bias`, `${o}.mlp.c_fc.bias`);
      direct(`${h}.mlp.fc2.weight`, `${o}.mlp.c_proj.weight`);
      direct(`${h}.mlp.fc2.bias`, `${o}.mlp.c_proj.bias`);
      direct(`${h}.layer_norm2.weight`, `${o}.ln_2.weight`);
      direct(`${h}.layer_norm2.bias`, `${o}.ln_2.bias`);
    }
  };
  direct('text_model.embeddings.token_embedding.weight', 'token_embedding.weight');
  direct('text_model.embeddings.position_embedding.weight', 'positional_embedding');
  blocks('text_model', 'transformer', cfg.text);
  direct('text_model.final_layer_norm.weight', 'ln_final.weight');
  direct('text_model.final_layer_norm.bias', 'ln_final.bias');
  direct('vision_model.embeddings.class_embedding', 'visual.class_embedding');
  direct('vision_model.embeddings.patch_embedding.weight', 'visual.conv1.weight');
  direct('vision_model.embeddings.position_embedding.weight', 'visual.positional_embedding');
  direct('vision_model.pre_layrnorm.weight', 'visual.ln_pre.weight');
  direct('vision_model.pre_layrnorm.bias', 'visual.ln_pre.bias');
  blocks('vision_model', 'visual.transformer', cfg.vision);
  direct('vision_model.post_layernorm.weight', 'visual.ln_post.weight');
  direct('vision_model.post_layernorm.bias', 'visual.ln_post.bias');
  transposed('visual_projection.weight', 'visual.proj');
  transposed('text_projection.weight', 'text_projection');
  scalar('logit_scale', 'logit_scale');
  return m;
}
