/**
 * CLIP on the engine: text and vision towers, projections and the learned temperature, with
 * Hugging Face `CLIPModel` names as the parameter names. Browser-safe: weights come through an
 * `HfWeights` reader (Node reads files, the browser an ArrayBuffer).
 */
import {
  add, concat, embedding, exp, expand, indexSelect, l2Normalize, linear, matmul, mul, reshape, scope,
  slice, tensor, type GpuContext, type Tensor,
} from '../engine/index.js';
import { firstNonFinite, ModelInputError } from './errors.js';
import { poolPositions } from './text-rows.js';
import type { ClipConfig, TowerConfig } from './clip-config.js';
import { expectedHfShapes, type HfWeights } from './clip-weights.js';
import { LayerNorm, Linear } from './layers.js';
import { encoderForward, type EncoderLayer, type ResidualHook } from './transformer.js';
import type { PackedSegment } from '../engine/ops/attention.js';

export interface TextOutput {
  /** Final-layer-normed state at the pooled (EOT) position, [n, width]. */
  pooled: Tensor;
  /** Projected, unnormalised embedding, [n, projection_dim]. */
  embeds: Tensor;
}

export type ImageOutput = TextOutput;

export interface TextOptions {
  hook?: ResidualHook;
}

export interface LoadOptions {
  /** Called after each tensor is uploaded (done, total) for progress display. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Storage of the projection weights (attention, MLP, patch embedding, final projections):
   * 'f32' (the default: they can be trained, merged, saved exactly), 'f16' (frozen: half the
   * memory, widened to f32 as the matmuls load them; needs shader-f16), or 'auto' (the
   * adapter's choice, ctx.tuning.weights). Embeddings, norms and biases stay f32.
   */
  weights?: 'f32' | 'f16' | 'auto';
}

/** Weights read only as matmul operands, which may be stored as f16 when frozen. */
const F16_CAPABLE = /(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])\.weight$|^(?:text|visual)_projection\.weight$|patch_embedding\.weight$/;

/** Whether `key` is stored as f16 under `weights` on `ctx`. */
function storedAsF16(ctx: GpuContext, key: string, weights: LoadOptions['weights'] = 'f32'): boolean {
  const choice = weights === 'auto' ? ctx.tuning.weights : weights;
  if (choice === 'f16' && !ctx.hasFeature('shader-f16')) throw new ModelInputError("weights 'f16' needs the 'shader-f16' feature, which this adapter lacks");
  return choice === 'f16' && F16_CAPABLE.test(key);
}

/**
 * Cuts [n, channels, size, size] pixels into rows of non-overlapping patches, [n, patches,
 * channels * p * p], in the (channel, y, x) order of the patch-embedding conv weight, so the
 * conv is one matmul.
 */
export function patchify(pixels: Float32Array, n: number, channels: number, size: number, patch: number): Float32Array {
  const g = size / patch;
  const row = channels * patch * patch;
  const out = new Float32Array(n * g * g * row);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        for (let c = 0; c < channels; c++) {
          const plane = (b * channels + c) * size * size;
          for (let y = 0; y < patch; y++) {
            const src = plane + (gy * patch + y) * size + gx * patch;
            for (let x = 0; x < patch; x++) out[o++] = pixels[src + x];
          }
        }
      }
    }
  }
  return out;
}

/**
 * Whether training should recompute blocks by default: where activations, not weights, bound
 * the memory. From 512 wide (CLIP ViT-B) a 32-image step's activations are gigabytes; the
 * miniatures' fit many times over and would only pay the extra forward pass.
 */
export function recomputePays(config: ClipConfig): boolean {
  return config.text.hiddenSize >= 512;
}

export class ClipModel {
  readonly textLayers: EncoderLayer[];
  readonly visionLayers: EncoderLayer[];
  /**
   * Recompute each transformer block in backward from its input instead of keeping its
   * activations (train.js --recompute): same gradients, a fraction of the peak memory, one extra
   * forward pass. Only recorded passes are affected.
   */
  recompute = false;

  private constructor(readonly ctx: GpuContext, readonly config: ClipConfig, readonly params: Map<string, Tensor>) {
    this.textLayers = this.tower('text_model', config.text);
    this.visionLayers = this.tower('vision_model', config.vision);
  }

  /** Uploads every weight (validated against the config by `hfWeights`). Frozen by default. */
  static async load(ctx: GpuContext, config: ClipConfig, weights: HfWeights, opts: LoadOptions = {}): Promise<ClipModel> {
    const shapes = expectedHfShapes(config);
    const params = new Map<string, Tensor>();
    let done = 0;
    try {
      for (const [key, shape] of shapes) {
        const host = await weights.get(key);
        const bad = firstNonFinite(host.data);
        if (bad >= 0) throw new ModelInputError(`${weights.source}: ${key} holds ${host.data[bad]} at element ${bad}; a checkpoint must hold finite numbers`);
        const t = tensor(ctx, host.data, shape.length === 0 ? [1] : shape, storedAsF16(ctx, key, opts.weights) ? 'f16' : 'f32');
        t.name = key;
        params.set(key, t);
        opts.onProgress?.(++done, shapes.size);
      }
    } catch (e) {
      for (const t of params.values()) t.dispose();
      throw e;
    }
    return new ClipModel(ctx, config, params);
  }

  param(key: string): Tensor {
    const t = this.params.get(key);
    if (!t) throw new ModelInputError(`no CLIP parameter named ${key}`);
    return t;
  }

  private linear(prefix: string, bias = true): Linear {
    return new Linear(this.param(`${prefix}.weight`), bias ? this.param(`${prefix}.bias`) : null);
  }

  private norm(prefix: string, eps: number): LayerNorm {
    return new LayerNorm(this.param(`${prefix}.weight`), this.param(`${prefix}.bias`), eps);
  }

  private tower(name: string, cfg: TowerConfig): EncoderLayer[] {
    const layers: EncoderLayer[] = [];
    for (let i = 0; i < cfg.layers; i++) {
      const p = `${name}.encoder.layers.${i}`;
      layers.push({
        heads: cfg.heads,
        ln1: this.norm(`${p}.layer_norm1`, cfg.layerNormEps),
        q: this.linear(`${p}.self_attn.q_proj`),
        k: this.linear(`${p}.self_attn.k_proj`),
        v: this.linear(`${p}.self_attn.v_proj`),
        out: this.linear(`${p}.self_attn.out_proj`),
        ln2: this.norm(`${p}.layer_norm2`, cfg.layerNormEps),
        fc1: this.linear(`${p}.mlp.fc1`),
        fc2: this.linear(`${p}.mlp.fc2`),
        activation: cfg.activation,
      });
    }
    return layers;
  }

  /** Checks token ids [n, T] against the vocabulary and position table before any GPU work. */
  private checkIds(ids: Int32Array, n: number): number {
    const cfg = this.config.text;
    if (!Number.isInteger(n) || n <= 0 || ids.length % n !== 0 || ids.length === 0) {
      throw new ModelInputError(`encodeText: ${ids.length} ids do not form ${n} rows`);
    }
    const t = ids.length / n;
    if (t > cfg.maxPositions) throw new ModelInputError(`encodeText: sequence length ${t} exceeds max_position_embeddings ${cfg.maxPositions}`);
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= cfg.vocabSize) {
        throw new ModelInputError(`encodeText: token id ${ids[i]} (text ${Math.floor(i / t)}, position ${i % t}) is outside the vocabulary of ${cfg.vocabSize}`);
      }
    }
    return t;
  }

  /** Text tower for token ids [n, T] (row-major): pooled state and projected embedding. */
  encodeText(ids: Int32Array, n: number, opts: TextOptions = {}): TextOutput {
    const t = this.checkIds(ids, n);
    const cfg = this.config.text;
    return scope(this.ctx, () => {
      const idsT = tensor(this.ctx, ids, [n, t], 'i32');
      const tok = embedding(this.param('text_model.embeddings.token_embedding.weight'), idsT);
      const pos = slice(this.param('text_model.embeddings.position_embedding.weight'), 0, 0, t);
      const x = add(tok, pos);
      const h = encoderForward(this.textLayers, x, { causal: true, hook: opts.hook, recompute: this.recompute });
      const at = tensor(this.ctx, poolPositions(ids, n, cfg.eosTokenId), [n], 'i32');
      const rows = indexSelect(reshape(h, [n * t, cfg.hiddenSize]), 0, at);
      const pooled = this.norm('text_model.final_layer_norm', cfg.layerNormEps).forward(rows);
      const embeds = linear(pooled, this.param('text_projection.weight'));
      return { pooled, embeds };
    });
  }

  /**
   * Several batches of texts through the text tower as one packed batch: batch i is `n` rows of
   * `ids.length / n` tokens, each batch its own length. Every block runs once over all of them
   * (one pass of dispatches instead of one per batch, and no batch padded to another's length);
   * the outputs equal encodeText's on each batch alone. Training encodes captions and claim
   * choices this way. No hooks (the states are not [batch, seq, width]).
   */
  encodeTextPacked(batches: readonly { ids: Int32Array; n: number }[]): TextOutput[] {
    if (batches.length === 0) throw new ModelInputError('encodeTextPacked: no batches');
    const cfg = this.config.text;
    const lens = batches.map((b, i) => {
      try {
        return this.checkIds(b.ids, b.n);
      } catch (e) {
        if (e instanceof ModelInputError) throw new ModelInputError(`batch ${i}: ${e.message}`);
        throw e;
      }
    });
    const segments: PackedSegment[] = [];
    batches.forEach((b, i) => {
      const last = segments[segments.length - 1];
      if (last && last.length === lens[i]) last.batch += b.n;
      else segments.push({ batch: b.n, length: lens[i] });
    });
    const tokens = batches.reduce((a, b) => a + b.ids.length, 0);
    const rows = batches.reduce((a, b) => a + b.n, 0);
    const ids = new Int32Array(tokens);
    const positions = new Int32Array(tokens);
    const at = new Int32Array(rows);
    let o = 0;
    let r = 0;
    batches.forEach((b, i) => {
      ids.set(b.ids, o);
      for (let p = 0; p < b.ids.length; p++) positions[o + p] = p % lens[i];
      poolPositions(b.ids, b.n, cfg.eosTokenId).forEach((p, j) => { at[r + j] = o + p; });
      o += b.ids.length;
      r += b.n;
    });
    return scope(this.ctx, () => {
      const tok = embedding(this.param('text_model.embeddings.token_embedding.weight'), tensor(this.ctx, ids, [tokens], 'i32'));
      const pos = embedding(this.param('text_model.embeddings.position_embedding.weight'), tensor(this.ctx, positions, [tokens], 'i32'));
      const h = encoderForward(this.textLayers, add(tok, pos), { causal: true, recompute: this.recompute, segments });
      const pooledAll = this.norm('text_model.final_layer_norm', cfg.layerNormEps).forward(indexSelect(h, 0, tensor(this.ctx, at, [rows], 'i32')));
      const embedsAll = linear(pooledAll, this.param('text_projection.weight'));
      if (batches.length === 1) return [{ pooled: pooledAll, embeds: embedsAll }];
      let from = 0;
      return batches.map((b) => {
        const part = { pooled: slice(pooledAll, 0, from, from + b.n), embeds: slice(embedsAll, 0, from, from + b.n) };
        from += b.n;
        return part;
      });
    });
  }

  /** Vision tower for preprocessed pixels [n, 3, size, size] (row-major, normalised). */
  encodeImage(pixels: Float32Array, n: number): ImageOutput {
    const cfg = this.config.vision;
    const per = cfg.channels * cfg.imageSize * cfg.imageSize;
    if (!Number.isInteger(n) || n <= 0 || pixels.length !== n * per) {
      throw new ModelInputError(`encodeImage: ${pixels.length} values are not ${n} images of ${cfg.channels}x${cfg.imageSize}x${cfg.imageSize}`);
    }
    const p = cfg.patchSize;
    const grid = cfg.imageSize / p;
    const d = cfg.hiddenSize;
    return scope(this.ctx, () => {
      const rows = tensor(this.ctx, patchify(pixels, n, cfg.channels, cfg.imageSize, p), [n, grid * grid, cfg.channels * p * p]);
      const w = reshape(this.param('vision_model.embeddings.patch_embedding.weight'), [d, cfg.channels * p * p]);
      const patches = linear(rows, w);
      const cls = expand(reshape(this.param('vision_model.embeddings.class_embedding'), [1, 1, d]), [n, 1, d]);
      const x = add(concat([cls, patches], 1), this.param('vision_model.embeddings.position_embedding.weight'));
      const x0 = this.norm('vision_model.pre_layrnorm', cfg.layerNormEps).forward(x);
      const h = encoderForward(this.visionLayers, x0, { causal: false, recompute: this.recompute });
      const first = reshape(slice(h, 1, 0, 1), [n, d]);
      const pooled = this.norm('vision_model.post_layernorm', cfg.layerNormEps).forward(first);
      const embeds = linear(pooled, this.param('visual_projection.weight'));
      return { pooled, embeds };
    });
  }

  /** exp(logit_scale) * cos(image, text): [images, texts]. Differentiable. */
  logitsPerImage(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return scope(this.ctx, () => {
      const sim = matmul(l2Normalize(imageEmbeds, -1), l2Normalize(textEmbeds, -1), { transB: true });
      return mul(sim, exp(this.param('logit_scale')));
    });
  }

  /** Frees every weight. The model is unusable afterwards. */
  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
  }
}
