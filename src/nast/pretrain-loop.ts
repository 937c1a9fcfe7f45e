/**
 * Pretraining a tiny CLIP from scratch on the miniature world: full-parameter training with the
 * symmetric CLIP loss on affirmative captions only (as web-scale CLIP pretraining sees almost no
 * negation). Browser-safe: records, tokenizer and model come in; checkpoint files are the
 * caller's business (Node: src/models/save-node.ts, src/pretrain.ts).
 *
 * Every batch is a pure function of (seed, step), so a run resumed at step s from a checkpoint
 * and its optimizer state continues exactly as the uninterrupted run would (up to GPU
 * round-off, e.g. the atomic scatter-add of the embedding gradient).
 */
import {
  AdamW, add, backward, noGrad, scope, type GpuContext, type ParamGroupSpec, type OptimizerState, type Tensor,
} from '../engine/index.js';
import { ClipModel } from '../models/clip.js';
import type { ClipConfig } from '../models/clip-config.js';
import { hostWeights, initClipWeights } from '../models/clip-init.js';
import type { WordTokenizer } from '../models/tokenizer/word.js';
import { clipImageConfig, normalizeToCHW } from '../models/image/preprocess.js';
import { CAPTION_TEMPLATE_COUNT, DEFAULT_SPEC, PARTIAL_TEMPLATE_COUNT, affirmativeCaptions, partialCaptions, renderScene, type WorldRecord, type WorldImage, type WorldScene, type WorldSpec } from '../data/world/index.js';
import { TWIN_KINDS, twinScene, type TwinKind } from '../data/world/twins.js';
import { WorldRng, itemState } from '../data/world/rng.js';
import { randInt, rngFor } from '../data/rng.js';
import { clipLoss } from './losses.js';

/** The shape of a tiny CLIP: both towers share width, depth and heads. */
export interface TinyClipShape {
  /** Width of the text tower (and of the vision tower unless visionWidth is given). */
  width: number;
  layers: number;
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

export const TINY_CLIP_DEFAULTS: Readonly<Required<Omit<TinyClipShape, 'visionWidth' | 'visionHeads'>>> = {
  width: 64, layers: 2, heads: 2, imageSize: 32, patchSize: 8, projectionDim: 64, mlpRatio: 4,
};

function positiveInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${what} must be a positive integer, got ${v}`);
  return v;
}

/**
 * A CLIP config for the word tokenizer: its vocabulary, its context length as the position
 * table, and pooling at the first end-of-text id (as Hugging Face does for eos_token_id != 2).
 */
export function tinyClipConfig(tok: WordTokenizer, shape: Partial<TinyClipShape> = {}): ClipConfig {
  const s = { ...TINY_CLIP_DEFAULTS, ...shape };
  const tower = (what: string, width: number, heads: number) => {
    positiveInt(`${what}width`, width);
    positiveInt(`${what}heads`, heads);
    if (width % heads !== 0) throw new RangeError(`${what}heads (${heads}) must divide ${what}width (${width})`);
    return {
      hiddenSize: width,
      intermediateSize: positiveInt('mlpRatio * width', s.mlpRatio * width),
      layers: s.layers,
      heads,
      layerNormEps: 1e-5,
      activation: 'quick_gelu' as const,
    };
  };
  positiveInt('layers', s.layers);
  positiveInt('imageSize', s.imageSize);
  positiveInt('patchSize', s.patchSize);
  if (s.imageSize % s.patchSize !== 0) throw new RangeError(`patch size ${s.patchSize} must divide image size ${s.imageSize}`);
  const text = tower('', s.width, s.heads);
  const vision = tower('vision ', shape.visionWidth ?? s.width, shape.visionHeads ?? s.heads);
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
export function initTinyClip(ctx: GpuContext, cfg: ClipConfig, seed: number): Promise<ClipModel> {
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
  return ClipModel.load(ctx, cfg, hostWeights(w, `init(seed ${seed})`));
}

/**
 * The model's input for world records: [n, 3, size, size], CLIP's mean/std normalisation of the
 * rendered 8-bit pixels (no resizing: the world renders at the model's size). Pretraining, the
 * default run and every evaluation use this one function.
 */
export function worldPixels(records: readonly WorldRecord[], size: number): Float32Array {
  records.forEach((r) => {
    if (r.scene.size !== size) throw new RangeError(`worldPixels: record ${r.id} is ${r.scene.size}x${r.scene.size} px, the model takes ${size}x${size}`);
  });
  return scenePixels(records.map((r) => r.pixels ?? r.scene), size);
}

/** worldPixels for scenes (rendered here) or already rendered images. */
export function scenePixels(items: readonly (WorldScene | WorldImage)[], size: number): Float32Array {
  const per = 3 * size * size;
  const out = new Float32Array(items.length * per);
  const cfg = clipImageConfig(size);
  items.forEach((it, i) => {
    const img = 'objects' in it ? renderScene(it) : it;
    if (img.width !== size || img.height !== size) throw new RangeError(`scenePixels: item ${i} is ${img.width}x${img.height} px, the model takes ${size}x${size}`);
    normalizeToCHW(img, cfg, out, i * per);
  });
  return out;
}

/**
 * Token ids [n, contextLength] cut to the longest row's end-of-text position + 1. The text
 * tower is causal and pools at the end token, so the padding after it never matters; cutting
 * saves its compute.
 */
export function cutAtEot(ids: Int32Array, n: number, eotId: number): { ids: Int32Array; seqLen: number } {
  const full = ids.length / n;
  let seqLen = 1;
  for (let i = 0; i < n; i++) {
    let at = -1;
    for (let p = 0; p < full && at < 0; p++) if (ids[i * full + p] === eotId) at = p;
    if (at < 0) throw new RangeError(`cutAtEot: row ${i} has no end-of-text id ${eotId}`);
    seqLen = Math.max(seqLen, at + 1);
  }
  if (seqLen === full) return { ids, seqLen };
  const out = new Int32Array(n * seqLen);
  for (let i = 0; i < n; i++) out.set(ids.subarray(i * full, i * full + seqLen), i * seqLen);
  return { ids: out, seqLen };
}

/** Token ids of captions, cut at the batch's last end token. */
export function tokenizeCut(tok: WordTokenizer, texts: readonly string[]): { ids: Int32Array; seqLen: number } {
  return cutAtEot(tok.tokenize(texts), texts.length, tok.eotId);
}

export interface WorldBatch {
  n: number;
  /** [n, 3, size, size] (see worldPixels). */
  pixels: Float32Array;
  /** [n, seqLen] token ids. */
  ids: Int32Array;
  seqLen: number;
  captions: string[];
  /** Index of each item's record in the training set (for a twin, the record it was made from). */
  records: number[];
  /** null for a record as generated, else the change that made this item its record's twin. */
  twins: (TwinKind | null)[];
}

/**
 * What a scene looks like in words: two records with the same key are described by the same
 * captions (every template is a function of the same object list), so a contrastive batch must
 * not hold both.
 */
export function sceneKey(r: WorldRecord): string {
  return r.captions[0];
}

export interface BatcherOptions {
  seed: number;
  batchSize: number;
  imageSize: number;
  /**
   * Share of the batch that is a counterfactual twin of another item (see world/twins.ts), in
   * [0, 0.5]; default 0.5: every record in the batch comes with one twin.
   */
  twinShare?: number;
  /** The world's spec (recolouring and reshaping draw from it); default DEFAULT_SPEC. */
  spec?: WorldSpec;
  /** Also draw the partial captions (kind only, with size, with place; see world/captions.ts). Default true. */
  partialCaptions?: boolean;
}

export interface BatchPick {
  records: number[];
  captions: string[];
  twins: (TwinKind | null)[];
  /** The drawn scene of each item (a record's own, or its twin). */
  scenes: WorldScene[];
}

/**
 * Samples contrastive batches: distinct images whose scenes have distinct descriptions (the
 * world repeats: a single-object scene has only 64 descriptions in the default spec), each with
 * one of its affirmative captions, uniformly over templates (the record's own and, by default,
 * the partial ones, as long as no two items share a caption); with `twinShare`, the first records
 * each bring a counterfactual twin captioned with the same template, so that the pair differs in
 * exactly one attribute. Batch `step` depends only on (seed, step).
 */
export class WorldBatcher {
  readonly batchSize: number;
  readonly twinCount: number;
  private readonly keys: string[];
  private readonly spec: WorldSpec;
  private readonly partial: boolean;

  constructor(readonly records: readonly WorldRecord[], readonly tok: WordTokenizer, readonly opts: BatcherOptions) {
    this.batchSize = positiveInt('batchSize', opts.batchSize);
    const share = opts.twinShare ?? 0.5;
    if (!(share >= 0 && share <= 0.5)) throw new RangeError(`WorldBatcher: twinShare must be in [0, 0.5], got ${share}`);
    this.twinCount = Math.floor(this.batchSize * share);
    this.spec = opts.spec ?? DEFAULT_SPEC;
    this.partial = opts.partialCaptions ?? true;
    this.keys = records.map(sceneKey);
    const distinct = new Set(this.keys).size;
    const bases = this.batchSize - this.twinCount;
    if (distinct < bases) {
      throw new RangeError(`WorldBatcher: ${records.length} records have ${distinct} distinct scene descriptions, fewer than the ${bases} the batch size ${this.batchSize} needs`);
    }
    for (const r of records) {
      if (r.scene.size !== opts.imageSize) throw new RangeError(`WorldBatcher: record ${r.id} is ${r.scene.size} px, the model takes ${opts.imageSize}`);
      const unknown = r.captions.flatMap((c) => tok.unknownWords(c));
      if (unknown.length > 0) throw new RangeError(`WorldBatcher: record ${r.id}: caption words not in the tokenizer: ${unknown.join(', ')}`);
    }
  }

  /** The caption of `scene` under template t: the record templates, then the partial ones. */
  private caption(scene: WorldScene, t: number, own?: readonly string[]): string {
    return t < CAPTION_TEMPLATE_COUNT ? (own ?? affirmativeCaptions(scene, this.spec))[t] : partialCaptions(scene, this.spec)[t - CAPTION_TEMPLATE_COUNT];
  }

  /** Record indices, caption choices and twins of batch `step`. */
  pick(step: number): BatchPick {
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`WorldBatcher: step must be a non-negative integer, got ${step}`);
    const rng = rngFor(this.opts.seed, 'pretrain-batch', step);
    const twinRng = new WorldRng(itemState(this.opts.seed, step));
    const used = new Set<string>();
    const texts = new Set<string>();
    const out: BatchPick = { records: [], captions: [], twins: [], scenes: [] };
    const bases: { record: number; template: number; at: number }[] = [];
    const templates = CAPTION_TEMPLATE_COUNT + (this.partial ? PARTIAL_TEMPLATE_COUNT : 0);
    // Rejection sampling; the constructor guarantees enough distinct keys, this bounds bad luck.
    for (let tries = 0; out.records.length < this.batchSize; tries++) {
      if (tries > 1000 * this.batchSize) throw new Error(`WorldBatcher: could not fill batch ${step} with distinct scenes`);
      const wantTwin = out.records.length >= this.batchSize - this.twinCount && bases.length > 0;
      if (wantTwin) {
        // Each twin belongs to the next base that has not had one; a base with no usable twin is passed over.
        const base = bases.shift()!;
        const scene = this.records[base.record].scene;
        for (const kind of twinRng.shuffle(TWIN_KINDS)) {
          const twin = twinScene(scene, kind, this.spec, twinRng);
          if (!twin) continue;
          const full = affirmativeCaptions(twin, this.spec);
          if (used.has(full[0])) continue;
          used.add(full[0]);
          let caption = this.caption(twin, base.template, full);
          // A partial caption that leaves out what the twin changed describes both images: then
          // both get their full caption of one template.
          if (caption === out.captions[base.at] || texts.has(caption)) {
            const t = base.template < CAPTION_TEMPLATE_COUNT ? base.template : 0;
            texts.delete(out.captions[base.at]);
            out.captions[base.at] = this.records[base.record].captions[t];
            texts.add(out.captions[base.at]);
            caption = full[t];
          }
          texts.add(caption);
          out.records.push(base.record);
          out.captions.push(caption);
          out.twins.push(kind);
          out.scenes.push(twin);
          break;
        }
        continue;
      }
      const i = randInt(rng, this.records.length);
      if (used.has(this.keys[i])) continue;
      used.add(this.keys[i]);
      const rec = this.records[i];
      let template = randInt(rng, templates);
      let caption = this.caption(rec.scene, template, rec.captions);
      // A partial caption another item already has would be a false negative: use a full one.
      if (texts.has(caption)) {
        template = randInt(rng, CAPTION_TEMPLATE_COUNT);
        caption = rec.captions[template];
      }
      texts.add(caption);
      bases.push({ record: i, template, at: out.records.length });
      out.records.push(i);
      out.captions.push(caption);
      out.twins.push(null);
      out.scenes.push(rec.scene);
    }
    return out;
  }

  batch(step: number): WorldBatch {
    const { records, captions, twins, scenes } = this.pick(step);
    const { ids, seqLen } = tokenizeCut(this.tok, captions);
    const pixels = scenePixels(scenes.map((s, k) => (twins[k] === null ? this.records[records[k]].pixels ?? s : s)), this.opts.imageSize);
    return { n: records.length, pixels, ids, seqLen, captions, records, twins };
  }
}

/** The symmetric CLIP loss of a batch (differentiable when the model's weights require grad). */
export function batchLoss(model: ClipModel, b: WorldBatch): Tensor {
  return scope(model.ctx, () => {
    const img = model.encodeImage(b.pixels, b.n);
    const txt = model.encodeText(b.ids, b.n);
    return clipLoss(img.embeds, txt.embeds, model.param('logit_scale'));
  });
}

/** The loss of a batch without a graph, read back. */
export async function evalBatchLoss(model: ClipModel, b: WorldBatch): Promise<number> {
  const loss = noGrad(() => batchLoss(model, b));
  try {
    return await loss.item();
  } finally {
    loss.dispose();
  }
}

/** Linear warm-up from lr/warmup to lr, then cosine decay to minRatio * lr at `total`. */
export function warmupCosine(total: number, warmup: number, minRatio = 0): (stepsTaken: number) => number {
  return (t) => {
    if (t < warmup) return (t + 1) / warmup;
    const span = Math.max(1, total - warmup);
    const progress = Math.min(1, (t - warmup) / span);
    return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * Weight decay only on matrices that mix features (linear and patch-embedding weights, the
 * projections); biases, layer norms, embedding tables and the temperature are left alone, as
 * in CLIP's training recipe.
 */
export function isDecayed(name: string, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  return !/embeddings\.(token_embedding|position_embedding)\.weight$/.test(name);
}

export function clipParamGroups(model: ClipModel, weightDecay: number): ParamGroupSpec[] {
  const decay: Tensor[] = [];
  const plain: Tensor[] = [];
  for (const [name, t] of model.params) (isDecayed(name, t.shape) ? decay : plain).push(t);
  return [
    { name: 'decay', params: decay, weightDecay },
    { name: 'no_decay', params: plain, weightDecay: 0 },
  ];
}

export interface PretrainOptions {
  /** Total steps of the run (the schedule's length). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  /** Final learning rate as a share of the peak. */
  minLrRatio?: number;
  betas?: [number, number];
  eps?: number;
  /** Global gradient-norm clipping (none when undefined). */
  maxGradNorm?: number;
}

export interface PretrainLog {
  /** Steps done so far. */
  step: number;
  /** Mean training loss over the steps since the previous log. */
  loss: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Over the steps since the previous log, including the readback. */
  samplesPerSec: number;
  stepsPerSec: number;
  logitScale: number;
}

export interface RunOptions {
  /** First step to run (a resumed run's optimizer step count); default 0. */
  from?: number;
  /** Read the loss back every this many steps (each readback drains the GPU queue). */
  logEvery?: number;
  onLog?: (log: PretrainLog) => void;
  /** Called after every `checkpointEvery` steps (not after the last: the caller saves that). */
  checkpointEvery?: number;
  onCheckpoint?: (step: number) => Promise<void>;
}

/** Full-parameter pretraining of a CLIP model on world batches. */
export class ClipPretrainer {
  readonly opt: AdamW;
  private readonly schedule: (t: number) => number;

  constructor(readonly model: ClipModel, readonly batcher: WorldBatcher, readonly opts: PretrainOptions) {
    positiveInt('steps', opts.steps);
    if (!Number.isInteger(opts.warmupSteps) || opts.warmupSteps < 0) throw new RangeError(`warmupSteps must be a non-negative integer, got ${opts.warmupSteps}`);
    for (const t of model.params.values()) t.requiresGrad = true;
    this.schedule = warmupCosine(opts.steps, opts.warmupSteps, opts.minLrRatio ?? 0);
    this.opt = new AdamW(model.ctx, clipParamGroups(model, opts.weightDecay), {
      lr: opts.lr, betas: opts.betas ?? [0.9, 0.98], eps: opts.eps ?? 1e-6, schedule: this.schedule,
    });
  }

  /** Learning rate of the step after `stepsTaken` steps. */
  lrAt(stepsTaken: number): number {
    return this.opts.lr * this.schedule(stepsTaken);
  }

  /** Encodes one training step (forward, backward, update) and returns its detached loss. */
  step(step: number): Tensor {
    const b = this.batcher.batch(step);
    const loss = batchLoss(this.model, b);
    backward(loss);
    this.opt.step({ maxGradNorm: this.opts.maxGradNorm });
    this.opt.zeroGrad();
    this.model.ctx.flush();
    return loss;
  }

  /** Runs steps from..steps-1; resolves with the last logged loss. */
  async run(r: RunOptions = {}): Promise<number> {
    const from = r.from ?? this.opt.stepCount;
    if (from !== this.opt.stepCount) throw new RangeError(`run: from = ${from} but the optimizer has taken ${this.opt.stepCount} steps`);
    const logEvery = positiveInt('logEvery', r.logEvery ?? 20);
    let acc: Tensor | null = null;
    let accSteps = 0;
    let last = NaN;
    let t0 = performance.now();
    for (let s = from; s < this.opts.steps; s++) {
      const loss = this.step(s);
      const sum: Tensor = noGrad(() => (acc ? add(acc, loss) : loss.alias()));
      acc?.dispose();
      loss.dispose();
      acc = sum;
      accSteps++;
      const done = s + 1;
      if (done % logEvery === 0 || done === this.opts.steps) {
        const [total, scale] = await Promise.all([acc.item(), this.model.param('logit_scale').item()]);
        acc.dispose();
        acc = null;
        const dt = (performance.now() - t0) / 1000;
        last = total / accSteps;
        r.onLog?.({
          step: done, loss: last, lr: this.lrAt(s), samplesPerSec: (accSteps * this.batcher.batchSize) / dt,
          stepsPerSec: accSteps / dt, logitScale: Math.exp(scale),
        });
        accSteps = 0;
        t0 = performance.now();
      }
      // Bound how far the host runs ahead of the GPU between readbacks (see train.ts).
      else if (done % 8 === 0) await this.model.ctx.sync();
      if (r.checkpointEvery && r.onCheckpoint && done % r.checkpointEvery === 0 && done < this.opts.steps) {
        await r.onCheckpoint(done);
        t0 = performance.now();
      }
    }
    (acc as Tensor | null)?.dispose();
    return last;
  }

  state(): Promise<OptimizerState> {
    return this.opt.state();
  }

  loadState(s: OptimizerState): void {
    this.opt.loadState(s);
  }

  /** Frees the optimizer (the weights move back into buffers of their own) and freezes the model. */
  finish(): void {
    this.opt.dispose();
    for (const t of this.model.params.values()) t.requiresGrad = false;
  }
}
