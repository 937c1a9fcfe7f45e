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
import type { LoraSet } from '../models/lora.js';
import type { TrainGroup } from './param-groups.js';
import { choiceLoss, clipLoss, nastLoss } from './losses.js';

export type ScaleMode = 'update' | 'gradient';

/**
 * One training example: an image (row of the image-embedding table), its caption and its choice
 * set (NAST's claims or NegBench's MCQ options).
 */
export interface TrainItem {
  image: number;
  /** Caption token ids, one row of the model's context length. */
  caption: Int32Array;
  /** K choice rows (K x context length), the true one at `answer`. */
  choices: Int32Array;
  choiceCount: number;
  answer: number;
}

/** A CLIP-term-only pair: an image row and its caption (a CLIP batch larger than the choice batch). */
export interface CaptionItem {
  image: number;
  /** Caption token ids, one row of the model's context length. */
  caption: Int32Array;
}

export interface TrainerOptions {
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

export class Trainer {
  readonly optimizer: AdamW;
  private readonly ctx: GpuContext;
  readonly groups: readonly TrainGroup[];

  /** `trained`: a LoRA set (its per-layer groups) or explicit groups such as `fullTextGroups`. */
  constructor(readonly model: ClipModel, trained: LoraSet | readonly TrainGroup[], readonly opts: TrainerOptions) {
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
   * of micro-batches). `captionsOnly` join the L_CLIP term's batch after the items' own pairs
   * (their images must differ from the items'). Returns the unweighted loss (a [] tensor the
   * caller disposes).
   */
  accumulate(imageEmbeds: Tensor, items: readonly TrainItem[], weight = 1, captionsOnly: readonly CaptionItem[] = []): Tensor {
    const m = this.model;
    const b = items.length;
    const t = m.config.text.maxPositions;
    const eos = m.config.text.eosTokenId;
    const claimRows = items.reduce((s, it) => s + it.choiceCount, 0);
    const lam = this.opts.lambda;
    const pairs: readonly CaptionItem[] = captionsOnly.length > 0 ? [...items, ...captionsOnly] : items;
    const nPairs = pairs.length;
    if (captionsOnly.length > 0) {
      if (lam === 0) throw new RangeError('captionsOnly pairs are for the L_CLIP term, which lambda = 0 switches off');
      // A repeated image would be its own negative in the contrastive softmax.
      if (new Set(pairs.map((p) => p.image)).size !== nPairs) throw new RangeError('the L_CLIP batch repeats an image: captionsOnly must add images the items do not have');
    }
    // Captions (often several sentences) and choices (one sentence each) are cut at their own
    // longest text, so the choices' compute is not spent on the captions' padding, and go
    // through the encoder together as one packed batch: one pass of every block, not two.
    const captions = new Int32Array(nPairs * t);
    pairs.forEach((it, i) => captions.set(it.caption, i * t));
    const choices = new Int32Array(claimRows * t);
    let at = 0;
    for (const it of items) {
      choices.set(it.choices, at);
      at += it.choiceCount * t;
    }
    const batches = [
      ...(lam > 0 ? [{ ids: cutAtPool(captions, nPairs, eos).ids, n: nPairs }] : []),
      ...(lam < 1 ? [{ ids: cutAtPool(choices, claimRows, eos).ids, n: claimRows }] : []),
    ];
    const logitScale = m.param('logit_scale');
    return scope(this.ctx, () => {
      const rows = (its: readonly CaptionItem[]) => indexSelect(imageEmbeds, 0, tensor(this.ctx, Int32Array.from(its, (it) => it.image), [its.length], 'i32'));
      const img = rows(items);
      const embeds = m.encodeTextPacked(batches).map((o) => o.embeds);
      const lClip = lam > 0 ? clipLoss(nPairs > b ? rows(pairs) : img, embeds[0], logitScale) : null;
      const lClaim = lam < 1 ? choiceLoss(img, embeds[embeds.length - 1], items.map((it) => it.choiceCount), items.map((it) => it.answer), logitScale) : null;
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

/** @deprecated Trainer (it trains NegBench's recipe too). */
export const NastTrainer = Trainer;
/** @deprecated Trainer. */
export type NastTrainer = Trainer;
/** @deprecated TrainerOptions. */
export type NastTrainOptions = TrainerOptions;
// Kept importable from here for this release; they live with what they belong to now.
export { fullTextGroups, type TrainGroup } from './param-groups.js';
export { loraUpdateNorms } from './update-shares.js';
