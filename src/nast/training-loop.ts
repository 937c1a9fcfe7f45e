/**
 * The fine-tuning loop shared by `dist/train.js` (and so the default run) and the browser demo:
 * batches from an ExampleBatcher, each example tokenised once, gradient accumulation over
 * micro-batches, one submission per step, loss readbacks only when logging or before a
 * checkpoint, and hooks for what differs between callers (metrics files, progress bars,
 * validation, checkpoints, a stop button or Ctrl-C). Browser-safe.
 */
import type { Tensor } from '../engine/index.js';
import type { ExampleBatcher, Example } from './train-data.js';
import type { CaptionItem, Trainer, TrainItem } from './trainer.js';

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  /** Training images per second since the run (or the resume) started. */
  samplesPerSec: number;
}

export interface TrainingLoopOptions {
  /** Total optimizer steps of the run (a resumed run continues to this). */
  steps: number;
  /** Micro-batches per step (the batcher's batch is split into this many). */
  accumulate?: number;
  /** Read the loss back every this many steps (and at the last). */
  logEvery?: number;
  /** Call `onCheckpoint` every this many steps (not at the last: the caller saves that). */
  saveEvery?: number;
  /** Call `onValidate` every this many steps and at the last (0: never). */
  valEvery?: number;
  /** Stop (as if interrupted, but quietly) once this many steps are done. */
  stopAfter?: number;
}

export interface TrainingLoopHooks {
  onLog?: (log: StepLog) => void | Promise<void>;
  onValidate?: (step: number) => Promise<void>;
  onCheckpoint?: (step: number) => Promise<void>;
  /** Polled before every step: true ends the run after the step in flight. */
  shouldStop?: () => boolean;
}

export interface TrainingLoopResult {
  /** The last loss read back (NaN when none was). */
  lastLoss: number;
  /** Why the loop ended: all steps done, shouldStop, or stopAfter. */
  ended: 'done' | 'stopped' | 'stop-after';
  /** The step of the last checkpoint: the last onCheckpoint call, else the step the run started at. */
  lastSaved: number;
}

/** The loss turned NaN or infinite: nothing after it may be saved. */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';

  constructor(readonly loss: number, readonly step: number, readonly lr: number) {
    super(`the loss became ${loss} at step ${step} (learning rate ${lr.toExponential(2)} too high, or bad data)`);
  }
}

/**
 * How far the host may run ahead of the GPU between readbacks: with 100 steps queued
 * (--log-every 100) dawn.node on lavapipe crashed with a segmentation fault.
 */
const MAX_STEPS_IN_FLIGHT = 8;

export class TrainingLoop {
  private readonly tokenized = new Map<Example, { caption: Int32Array; choices: Int32Array }>();
  /** The step of the last checkpoint: the last onCheckpoint call, else the step the run started at (0 for a fresh run). */
  lastSaved = 0;

  /**
   * `imageTable`: one embedding row per image of `batcher.images`, in that order.
   * `tokenize`: texts to ids of the model's context length (truncated).
   */
  constructor(
    readonly trainer: Trainer,
    readonly batcher: ExampleBatcher,
    readonly imageTable: Tensor,
    private readonly tokenize: (texts: readonly string[]) => Int32Array,
    readonly opts: TrainingLoopOptions,
  ) {
    const acc = opts.accumulate ?? 1;
    if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new RangeError(`steps must be a positive integer, got ${opts.steps}`);
    if (!Number.isInteger(acc) || acc < 1 || batcher.batchSize % acc !== 0) {
      throw new RangeError(`accumulate ${acc} must be a positive divisor of the batch size ${batcher.batchSize}`);
    }
    if (batcher.clipBatch % acc !== 0) {
      throw new RangeError(`accumulate ${acc} must divide the CLIP batch ${batcher.clipBatch} too (each micro-batch takes its share of both)`);
    }
    if (imageTable.shape[0] !== batcher.images.length) {
      throw new RangeError(`the image table has ${imageTable.shape[0]} rows for ${batcher.images.length} images`);
    }
  }

  /** Steps done so far (the batcher's state, which a checkpoint stores). */
  get step(): number {
    return this.batcher.state.step;
  }

  private tokens(example: Example): { caption: Int32Array; choices: Int32Array } {
    let t = this.tokenized.get(example);
    if (!t) {
      t = { caption: this.tokenize([example.caption]), choices: this.tokenize(example.choices) };
      this.tokenized.set(example, t);
    }
    return t;
  }

  /** The next batch as trainer items; each example is tokenised the first time a batch uses it. */
  nextBatch(): TrainItem[] {
    return this.nextStep().items;
  }

  /** The next step: its trainer items and the CLIP batch's caption-only pairs (none unless clipBatch > batchSize). */
  nextStep(): { items: TrainItem[]; captionsOnly: CaptionItem[] } {
    const { examples, captionsOnly } = this.batcher.draw();
    return {
      items: examples.map(({ image, example }) => {
        const t = this.tokens(example);
        return { image, caption: t.caption, choices: t.choices, choiceCount: example.choices.length, answer: example.answer };
      }),
      captionsOnly: captionsOnly.map(({ image, example }) => ({ image, caption: this.tokens(example).caption })),
    };
  }

  /** Runs steps until `opts.steps`, a stop or `stopAfter`. Throws NonFiniteLossError before any later hook. */
  async run(hooks: TrainingLoopHooks = {}): Promise<TrainingLoopResult> {
    const o = this.opts;
    const acc = o.accumulate ?? 1;
    const logEvery = o.logEvery ?? 1;
    const saveEvery = o.saveEvery ?? 0;
    const valEvery = o.valEvery ?? 0;
    const loop = this.batcher.state;
    const micro = this.batcher.batchSize / acc;
    const microExtra = (this.batcher.clipBatch - this.batcher.batchSize) / acc;
    const ctx = this.imageTable.ctx;
    const t0 = performance.now();
    const startStep = loop.step;
    let lastLoss = NaN;
    this.lastSaved = startStep;
    while (loop.step < o.steps) {
      if (hooks.shouldStop?.()) return { lastLoss, ended: 'stopped', lastSaved: this.lastSaved };
      if (o.stopAfter !== undefined && loop.step >= o.stopAfter) return { lastLoss, ended: 'stop-after', lastSaved: this.lastSaved };
      const { items, captionsOnly } = this.nextStep();
      const losses: Tensor[] = [];
      try {
        for (let m = 0; m < acc; m++) {
          losses.push(this.trainer.accumulate(this.imageTable, items.slice(m * micro, (m + 1) * micro), 1 / acc, captionsOnly.slice(m * microExtra, (m + 1) * microExtra)));
        }
        this.trainer.apply();
        loop.step++;
        const logNow = loop.step % logEvery === 0 || loop.step === o.steps;
        const saveNow = saveEvery > 0 && loop.step % saveEvery === 0 && loop.step < o.steps;
        if (logNow || saveNow) {
          // Also read before each checkpoint, so that no checkpoint holds weights a non-finite loss has reached.
          let sum = 0;
          for (const l of losses) sum += await l.item();
          if (!Number.isFinite(sum)) throw new NonFiniteLossError(sum / acc, loop.step, this.trainer.currentLr());
          if (logNow) {
            lastLoss = sum / acc;
            const sec = (performance.now() - t0) / 1000;
            await hooks.onLog?.({
              step: loop.step, epoch: loop.epoch, loss: lastLoss, lr: this.trainer.currentLr(),
              samplesPerSec: ((loop.step - startStep) * this.batcher.batchSize) / sec,
            });
          }
        } else if (loop.step % MAX_STEPS_IN_FLIGHT === 0) {
          await ctx.sync();
        }
        if (valEvery > 0 && hooks.onValidate && (loop.step % valEvery === 0 || loop.step === o.steps)) await hooks.onValidate(loop.step);
        if (saveNow && hooks.onCheckpoint) {
          await hooks.onCheckpoint(loop.step);
          this.lastSaved = loop.step;
        }
      } finally {
        for (const l of losses) l.dispose();
      }
    }
    return { lastLoss, ended: 'done', lastSaved: this.lastSaved };
  }
}

/** @deprecated the training loop's old name: TrainingLoop. */
export const NastRun = TrainingLoop;
/** @deprecated TrainingLoop. */
export type NastRun = TrainingLoop;
/** @deprecated TrainingLoopOptions. */
export type NastRunOptions = TrainingLoopOptions;
/** @deprecated TrainingLoopHooks. */
export type NastRunHooks = TrainingLoopHooks;
/** @deprecated TrainingLoopResult. */
export type NastRunResult = TrainingLoopResult;
