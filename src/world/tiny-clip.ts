/**
 * The tiny CLIP the miniature world is learned with: its shape (a config for the world's word
 * tokenizer) and its initial weights. Browser-safe.
 */
import type { GpuContext } from '../engine/index.js';
import { ClipModel } from '../models/clip.js';
import type { ClipConfig } from '../models/clip-config.js';
import { hostWeights, initClipWeights } from '../models/clip-init.js';
import type { WordTokenizer } from '../models/tokenizer/word.js';

/** The shape of a tiny CLIP: the vision tower takes the text tower's width, depth and heads unless given its own. */
export interface TinyClipShape {
  /** Width of the text tower (and of the vision tower unless visionWidth is given). */
  width: number;
  /** Depth of the text tower (and of the vision tower unless visionLayers is given). */
  layers: number;
  /** Vision tower depth; default the text tower's. */
  visionLayers?: number;
  heads: number;
  /** Vision tower width and heads; default the text tower's. */
  visionWidth?: number;
  visionHeads?: number;
  imageSize: number;
  patchSize: number;
  /** Default: the width. */
  projectionDim?: number;
  /** MLP hidden size = mlpRatio * width; default 4 as in CLIP. */
  mlpRatio?: number;
}

export const TINY_CLIP_DEFAULTS: Readonly<Required<Omit<TinyClipShape, 'visionWidth' | 'visionHeads' | 'visionLayers'>>> = {
  width: 64, layers: 2, heads: 2, imageSize: 32, patchSize: 8, projectionDim: 64, mlpRatio: 4,
};

/** The image tower's weights (vision_model.* and the visual projection): what `--image-tower` copies and freezes. */
export function isImageTowerWeight(name: string): boolean {
  return name.startsWith('vision_model.') || name === 'visual_projection.weight';
}

export function positiveInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${what} must be a positive integer, got ${v}`);
  return v;
}

/**
 * A CLIP config for the word tokenizer: its vocabulary, its context length as the position
 * table, and pooling at the first end-of-text id (as Hugging Face does for eos_token_id != 2).
 */
export function tinyClipConfig(tok: WordTokenizer, shape: Partial<TinyClipShape> = {}): ClipConfig {
  const s = { ...TINY_CLIP_DEFAULTS, ...shape };
  const tower = (what: string, width: number, heads: number, layers: number) => {
    positiveInt(`${what}layers`, layers);
    positiveInt(`${what}width`, width);
    positiveInt(`${what}heads`, heads);
    if (width % heads !== 0) throw new RangeError(`${what}heads (${heads}) must divide ${what}width (${width})`);
    return {
      hiddenSize: width,
      intermediateSize: positiveInt('mlpRatio * width', s.mlpRatio * width),
      layers,
      heads,
      layerNormEps: 1e-5,
      activation: 'quick_gelu' as const,
    };
  };
  positiveInt('imageSize', s.imageSize);
  positiveInt('patchSize', s.patchSize);
  if (s.imageSize % s.patchSize !== 0) throw new RangeError(`patch size ${s.patchSize} must divide image size ${s.imageSize}`);
  const text = tower('', s.width, s.heads, s.layers);
  const vision = tower('vision ', shape.visionWidth ?? s.width, shape.visionHeads ?? s.heads, shape.visionLayers ?? s.layers);
  return {
    text: { ...text, vocabSize: tok.vocabSize, maxPositions: tok.contextLength, eosTokenId: tok.eotId },
    vision: { ...vision, imageSize: s.imageSize, patchSize: s.patchSize, channels: 3 },
    projectionDim: positiveInt('projectionDim', shape.projectionDim ?? s.width),
    logitScaleInit: Math.log(1 / 0.07),
  };
}

/**
 * 2-D sine-cosine position codes for a g x g patch grid (MAE's fixed embedding), one row per
 * patch after a zero row for the class token, scaled to unit RMS per patch row.
 */
export function sinCosPositions(grid: number, width: number): Float32Array {
  if (width % 4 !== 0) throw new RangeError(`sinCosPositions: width ${width} must be a multiple of 4`);
  const quarter = width / 4;
  const out = new Float32Array((grid * grid + 1) * width);
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const row = (1 + gy * grid + gx) * width;
      for (let k = 0; k < quarter; k++) {
        const w = 1 / 10000 ** (k / quarter);
        out[row + k] = Math.sin(gx * w);
        out[row + quarter + k] = Math.cos(gx * w);
        out[row + 2 * quarter + k] = Math.sin(gy * w);
        out[row + 3 * quarter + k] = Math.cos(gy * w);
      }
      // sin^2 + cos^2 = 1 per frequency and axis: the row's mean square is 1/2.
      for (let k = 0; k < width; k++) out[row + k] *= Math.SQRT2;
    }
  }
  return out;
}

/**
 * A freshly initialised model (OpenAI CLIP's init, seeded), except the token embeddings (see
 * below) and the vision tower's input: the
 * patch embedding gets std (channels * patch^2)^-1/2, so that a patch's embedding has about unit
 * RMS, and the position table starts as unit-RMS 2-D sine-cosine codes (still trained). With
 * OpenAI's init (both std width^-1/2) the patch content is about 20x the position signal, and
 * the first tiny-world model never learned where an object is (a linear probe read its side at
 * 50 %, and mirror-image twins in the batch did not change that in 1000 steps).
 */
export function initTinyClip(ctx: GpuContext, cfg: ClipConfig, seed: number, replace?: ReadonlyMap<string, Float32Array>): Promise<ClipModel> {
  const w = initClipWeights(cfg, seed);
  // Words pretraining never sees (every negation cue: the captions are affirmative) keep their
  // initial embedding. At OpenAI's std 0.02 that is a norm of 0.16 against 0.5 for a trained word
  // and 0.25 for a position, so "no" reads as little more than its position, and LoRA (which
  // cannot change embeddings) did not learn negation from it: claim accuracy stayed at 37 % on
  // the training claim sets in 300 steps, against 61 % with the embeddings trainable too. Start
  // every word at the norm a trained one reaches, 0.5.
  const tokens = w.get('text_model.embeddings.token_embedding.weight')!.data;
  const tokenScale = (0.5 * cfg.text.hiddenSize ** -0.5) / 0.02;
  for (let i = 0; i < tokens.length; i++) tokens[i] *= tokenScale;
  const v = cfg.vision;
  const grid = v.imageSize / v.patchSize;
  if (v.hiddenSize % 4 === 0) w.get('vision_model.embeddings.position_embedding.weight')!.data.set(sinCosPositions(grid, v.hiddenSize));
  const patch = w.get('vision_model.embeddings.patch_embedding.weight')!.data;
  const rescale = (v.channels * v.patchSize * v.patchSize) ** -0.5 / v.hiddenSize ** -0.5;
  for (let i = 0; i < patch.length; i++) patch[i] *= rescale;
  // Weights taken from another model (a trained image tower) replace their initial values.
  for (const [name, data] of replace ?? []) {
    const t = w.get(name);
    if (!t) throw new RangeError(`initTinyClip: ${name} is not a weight of this model`);
    if (t.data.length !== data.length) throw new RangeError(`initTinyClip: ${name} has ${data.length} values, this model's has ${t.data.length}`);
    t.data.set(data);
  }
  return ClipModel.load(ctx, cfg, hostWeights(w, `init(seed ${seed})`));
}
