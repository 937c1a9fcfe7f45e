/**
 * NAST / NegBench fine-tuning on a frozen image tower: loss = lambda * L_CLIP + (1 - lambda) *
 * L_choice, where the choices are NAST's claim sets (L_claim) or NegBench's MCQs (L_MCQ, lambda
 * being NegBench's alpha); AdamW with warm-up + cosine, per-text-layer CTE scales. What trains is
 * a LoRA set (the default) or every text-encoder weight (`fullTextGroups`, NegBench's full
 * fine-tune).
 *
 * Why the CTE scale multiplies each layer's learning rate by default, not its gradient: Adam
 * normalises the update by the gradient's running RMS, so a constant factor on a layer's gradient
 * cancels (m and sqrt(v) both scale by it) and only alpha = 0 would have an effect. The paper's
 * intent, "layer-specific learning rates", is what the per-group rate gives; `scaleMode:
 * 'gradient'` keeps the literal gradient scaling (inside the fused AdamW kernel) for comparison.
 */
import {
  AdamW, backward, indexSelect, mulScalar, scope, tensor, warmupConstant, warmupCosine, type GpuContext, type Tensor,
} from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import { cutAtPool } from '../models/text-rows.js';
import type { LoraParamGroup, LoraSet } from '../models/lora.js';
import { isDecayed } from './pretrain-loop.js';
import { claimLoss, clipLoss, nastLoss } from './losses.js';

export type ScaleMode = 'update' | 'gradient';

/** One training example: an image (row of the image-embedding table), its caption and claims. */
export interface TrainItem {
  image: number;
  /** Caption token ids, one row of the model's context length. */
  caption: Int32Array;
  /** K claim rows (K x context length), the true one at `answer`. */
  claims: Int32Array;
  claimCount: number;
  answer: number;
}

export interface NastTrainOptions {
  lambda: number;
  lr: number;
  weightDecay: number;
  betas?: [number, number];
  warmupSteps: number;
  totalSteps: number;
  maxGradNorm?: number;
  /** One scale per text-encoder layer (alpha_l^beta); null trains uniformly. */
  layerScales: readonly number[] | null;
  scaleMode: ScaleMode;
  /** After the warm-up: cosine decay to zero at totalSteps (default), or the full rate throughout (NAST trains at a fixed rate). */
  schedule?: 'cosine' | 'constant';
}

/** A group of trained tensors: one text (or vision) layer's, or the rest of the text tower's (layer -1). */
export interface TrainGroup extends Omit<LoraParamGroup, 'tower'> {
  tower: LoraParamGroup['tower'] | 'text-other';
  /** Weight decay for this group (default: the trainer's). */
  weightDecay?: number;
}

/**
 * Every weight of the text tower as training groups, marked trainable: per block i the matrices
 * (`text.layer{i}`, decayed) and the biases and norms (`text.layer{i}.no_decay`), then the token
 * and position embeddings, the final norm and the text projection (`text.other`, layer -1, no
 * decay on the embeddings and norm). The vision tower and logit_scale stay frozen.
 */
export function fullTextGroups(model: ClipModel, weightDecay: number): TrainGroup[] {
  const layers = model.config.text.layers;
  const groups: TrainGroup[] = [];
  const take = (name: string, layer: number, tower: TrainGroup['tower'], keys: string[], decay: boolean) => {
    if (keys.length === 0) return;
    const params = keys.map((k) => model.param(k));
    const f16 = keys.find((k) => model.param(k).dtype !== 'f32');
    if (f16) throw new Error(`full-text training needs f32 weights, and ${f16} is ${model.param(f16).dtype}: load the model with weights 'f32'`);
    for (const t of params) t.requiresGrad = true;
    groups.push({ name, params, layer, tower, weightDecay: decay ? weightDecay : 0 });
  };
  const all = [...model.params.keys()];
  for (let i = 0; i < layers; i++) {
    const prefix = `text_model.encoder.layers.${i}.`;
    const keys = all.filter((k) => k.startsWith(prefix));
    take(`text.layer${i}`, i, 'text', keys.filter((k) => isDecayed(k, model.param(k).shape)), true);
    take(`text.layer${i}.no_decay`, i, 'text', keys.filter((k) => !isDecayed(k, model.param(k).shape)), false);
  }
  const rest = all.filter((k) => (k.startsWith('text_model.') && !k.startsWith('text_model.encoder.layers.')) || k === 'text_projection.weight');
  take('text.other', -1, 'text-other', rest.filter((k) => isDecayed(k, model.param(k).shape)), true);
  take('text.other.no_decay', -1, 'text-other', rest.filter((k) => !isDecayed(k, model.param(k).shape)), false);
  return groups;
}

export class NastTrainer {
  readonly optimizer: AdamW;
  private readonly ctx: GpuContext;
  readonly groups: readonly TrainGroup[];

  /** `trained`: a LoRA set (its per-layer groups) or explicit groups such as `fullTextGroups`. */
  constructor(readonly model: ClipModel, trained: LoraSet | readonly TrainGroup[], readonly opts: NastTrainOptions) {
    this.ctx = model.ctx;
    this.groups = Array.isArray(trained) ? trained : (trained as LoraSet).paramGroupsByLayer();
    const text = model.config.text.layers;
    if (opts.layerScales && opts.layerScales.length !== text) {
      throw new Error(`layer scales: got ${opts.layerScales.length} values for ${text} text-encoder layers`);
    }
    const specs = this.groups.map((g) => {
      const s = g.tower === 'text' && opts.layerScales ? opts.layerScales[g.layer] : 1;
      const base = { name: g.name, params: g.params, ...(g.weightDecay !== undefined ? { weightDecay: g.weightDecay } : {}) };
      return opts.scaleMode === 'update' ? { ...base, lr: opts.lr * s } : { ...base, gradScale: s };
    });
    this.optimizer = new AdamW(this.ctx, specs, {
      lr: opts.lr, betas: opts.betas, weightDecay: opts.weightDecay,
      schedule: opts.schedule === 'constant' ? warmupConstant(opts.warmupSteps) : warmupCosine({ warmup: opts.warmupSteps, total: opts.totalSteps }),
    });
  }

  /**
   * Forward + backward of one micro-batch, accumulating gradients scaled by `weight` (1 / number
   * of micro-batches). Returns the unweighted loss (a [] tensor the caller disposes).
   */
  accumulate(imageEmbeds: Tensor, items: readonly TrainItem[], weight = 1): Tensor {
    const m = this.model;
    const b = items.length;
    const t = m.config.text.maxPositions;
    const eos = m.config.text.eosTokenId;
    const claimRows = items.reduce((s, it) => s + it.claimCount, 0);
    const lam = this.opts.lambda;
    // Captions (often several sentences) and choices (one sentence each) go through the encoder
    // as two batches, each cut at its own longest text: a batch cut at the longest caption
    // would spend most of the choices' compute on padding.
    const captions = new Int32Array(b * t);
    items.forEach((it, i) => captions.set(it.caption, i * t));
    const choices = new Int32Array(claimRows * t);
    let at = 0;
    for (const it of items) {
      choices.set(it.claims, at);
      at += it.claimCount * t;
    }
    const encode = (ids: Int32Array, rows: number) => m.encodeText(cutAtPool(ids, rows, eos).ids, rows).embeds;
    const logitScale = m.param('logit_scale');
    return scope(this.ctx, () => {
      const img = indexSelect(imageEmbeds, 0, tensor(this.ctx, Int32Array.from(items, (it) => it.image), [b], 'i32'));
      const lClip = lam > 0 ? clipLoss(img, encode(captions, b), logitScale) : null;
      const lClaim = lam < 1 ? claimLoss(img, encode(choices, claimRows), items.map((it) => it.claimCount), items.map((it) => it.answer), logitScale) : null;
      const loss = nastLoss(lam, lClip, lClaim);
      backward(weight === 1 ? loss : mulScalar(loss, weight));
      return loss;
    });
  }

  /** Applies the accumulated gradients, clears them and submits the step (one submission per step). */
  apply(): void {
    this.optimizer.step({ maxGradNorm: this.opts.maxGradNorm });
    this.optimizer.zeroGrad();
    this.ctx.flush();
  }

  get stepCount(): number {
    return this.optimizer.stepCount;
  }

  /** Current learning rate of the base group (schedule applied to the next step). */
  currentLr(): number {
    const s = this.optimizer.schedule;
    return this.opts.lr * (s ? s(this.optimizer.stepCount) : 1);
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * Per text layer, the Frobenius norm of the total LoRA update scale * B A summed over the layer's
 * adapters (sqrt of the sum of squares): the paper's Table 4 quantity.
 */
export async function loraUpdateNorms(lora: LoraSet, layers: number): Promise<number[]> {
  const sq = new Array<number>(layers).fill(0);
  for (const m of lora.modules) {
    if (m.tower !== 'text') continue;
    const [r, inF] = m.branch.a.shape;
    const outF = m.branch.b.shape[0];
    const a = await m.branch.a.toArray();
    const bw = await m.branch.b.toArray();
    const row = new Float64Array(inF);
    for (let o = 0; o < outF; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const c = bw[o * r + k] * m.branch.scale;
        if (c === 0) continue;
        for (let i = 0; i < inF; i++) row[i] += c * a[k * inF + i];
      }
      for (let i = 0; i < inF; i++) sq[m.layer] += row[i] * row[i];
    }
  }
  return sq.map(Math.sqrt);
}

