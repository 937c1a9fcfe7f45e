/**
 * Pretraining a tiny CLIP from scratch on the miniature world: full-parameter training with the
 * symmetric CLIP loss on affirmative captions only (as web-scale CLIP pretraining sees almost no
 * negation). Browser-safe: records, tokenizer and model come in; checkpoint files are the
 * caller's business (Node: src/models/save-node.ts, src/pretrain.ts). The model's shape and init
 * are in tiny-clip.ts, the batches in world-batches.ts.
 *
 * Every batch is a pure function of (seed, step), so a run resumed at step s from a checkpoint
 * and its optimizer state continues exactly as the uninterrupted run would (up to GPU
 * round-off, e.g. the atomic scatter-add of the embedding gradient).
 */
import {
  AdamW, add, backward, noGrad, warmupCosine, type ParamGroupSpec, type OptimizerState, type Tensor,
} from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import { batchLoss, type WorldBatcher } from './world-batches.js';
import { positiveInt } from './tiny-clip.js';

/**
 * Weight decay only on matrices that mix features (linear and patch-embedding weights, the
 * projections); biases, layer norms, embedding tables and the temperature are left alone, as
 * in CLIP's training recipe.
 */
export function isDecayed(name: string, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  return !/embeddings\.(token_embedding|position_embedding)\.weight$/.test(name);
}

export function clipParamGroups(model: ClipModel, weightDecay: number, frozen: (name: string) => boolean = () => false): ParamGroupSpec[] {
  const decay: Tensor[] = [];
  const plain: Tensor[] = [];
  for (const [name, t] of model.params) if (!frozen(name)) (isDecayed(name, t.shape) ? decay : plain).push(t);
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
  /** Weights kept as they are (no gradient, no update): e.g. an image tower taken from another model. */
  frozen?: (name: string) => boolean;
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
    const frozen = opts.frozen ?? (() => false);
    for (const [name, t] of model.params) t.requiresGrad = !frozen(name);
    this.schedule = warmupCosine({ warmup: opts.warmupSteps, total: opts.steps, minRatio: opts.minLrRatio ?? 0 });
    this.opt = new AdamW(model.ctx, clipParamGroups(model, opts.weightDecay, frozen), {
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
