/**
 * AdamW over parameter groups, one fused dispatch per group. Each group's parameters are moved
 * into flat arenas (see arena.ts); a step copies the gradients in and runs one kernel that
 * applies the group's gradient scale (NAST's alpha_l^beta), the optional global clipping
 * coefficient, the moment updates, bias correction and decoupled weight decay.
 *
 * Clipping: the global norm is taken over the RAW gradients of all groups (what
 * torch.nn.utils.clip_grad_norm_ sees when called before the optimizer), then each group's
 * gradScale is applied on top: g' = g * min(1, maxNorm / (||g|| + 1e-6)) * gradScale. So a
 * group's scale shapes its update without changing how strongly the whole step is clipped.
 *
 * Differences from torch.optim.AdamW: one step count for all groups; a parameter without a
 * gradient in a step is treated as a zero gradient (its moments decay, weight decay applies)
 * instead of being skipped.
 */
import type { GpuContext, BufferRange } from '../context.js';
import { OpError, shapeStr } from '../errors.js';
import { empty, type Tensor } from '../tensor.js';
import { run1d } from '../ops/util.js';
import { adamwKernel, normFinalizeKernel, sumSquaresKernel, SUMSQ_ITEMS, SUMSQ_WG } from '../../kernels/adamw.js';
import { ParamArena } from './arena.js';

/**
 * The largest peak learning rate the front ends (train.js, the demo page) accept. LoRA
 * fine-tunes of CLIP use 1e-5 to 1e-2 (the default run selects 1e-3 to 4e-3); at 1, AdamW moves
 * every weight by about its own size per step and ruins the model in a few steps, which is never
 * what a user meant. The optimizer itself takes any rate.
 */
export const MAX_LR = 0.1;

export interface ParamGroupSpec {
  params: Tensor[];
  lr?: number;
  weightDecay?: number;
  /** Multiplies this group's gradients inside the update (default 1). */
  gradScale?: number;
  name?: string;
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /**
   * Learning-rate multiplier for the step about to run, given the number of steps already taken
   * (0 for the first), as torch's LambdaLR. The effective rate is group.lr * schedule(t).
   */
  schedule?: (stepsTaken: number) => number;
}

export interface StepOptions {
  /** Clip the global gradient norm (over all groups, before gradScale) to this value. */
  maxGradNorm?: number;
}

/** A group's hyperparameters: plain fields, read at every step (uniforms, no recompilation). */
export interface ParamGroup {
  readonly name: string;
  readonly params: readonly Tensor[];
  lr: number;
  weightDecay: number;
  gradScale: number;
}

export interface GroupState {
  name: string;
  lr: number;
  weightDecay: number;
  gradScale: number;
  /** First and second moments, one array per parameter in group order. */
  m: Float32Array[];
  v: Float32Array[];
}

export interface OptimizerState {
  step: number;
  groups: GroupState[];
}

const OP = 'AdamW';

function checkNumber(what: string, x: number, min: number, max = Infinity, openMax = false): void {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max || (openMax && x === max)) {
    throw new OpError(OP, `${what} must be a finite number in [${min}, ${max}${openMax ? ')' : ']'}, got ${x}`);
  }
}

export class AdamW {
  readonly groups: ParamGroup[];
  readonly betas: readonly [number, number];
  readonly eps: number;
  schedule: ((stepsTaken: number) => number) | undefined;
  /** Steps taken so far (the t of the bias correction is stepCount after a step). */
  stepCount = 0;

  private arenas: ParamArena[];
  /** Sum-of-squares partials of every arena, then the global norm in `stats[0]`. */
  private partials: GPUBuffer;
  private partialBase: number[] = [];
  private partialCount: number;
  private stats: GPUBuffer;
  private normValid = false;
  private disposed = false;

  constructor(private readonly ctx: GpuContext, specs: readonly ParamGroupSpec[], defaults: AdamWOptions) {
    const { lr, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01, schedule } = defaults;
    checkNumber('lr', lr, 0);
    checkNumber('betas[0]', betas[0], 0, 1, true);
    checkNumber('betas[1]', betas[1], 0, 1, true);
    checkNumber('eps', eps, Number.MIN_VALUE);
    checkNumber('weightDecay', weightDecay, 0);
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.schedule = schedule;
    if (specs.length === 0 || specs.every((s) => s.params.length === 0)) {
      throw new OpError(OP, 'got no parameters to optimize');
    }
    const seen = new Map<unknown, string>();
    this.groups = specs.map((s, gi) => {
      const name = s.name ?? `group ${gi}`;
      const g: ParamGroup = {
        name,
        params: s.params.slice(),
        lr: s.lr ?? lr,
        weightDecay: s.weightDecay ?? weightDecay,
        gradScale: s.gradScale ?? 1,
      };
      checkNumber(`${name}: lr`, g.lr, 0);
      checkNumber(`${name}: weightDecay`, g.weightDecay, 0);
      checkNumber(`${name}: gradScale`, g.gradScale, -Infinity);
      s.params.forEach((p, i) => {
        const where = `${name} param ${i}${p.name ? ` '${p.name}'` : ''} ${shapeStr(p.shape)} ${p.dtype}`;
        if (p.ctx !== ctx) throw new OpError(OP, `${where} belongs to another GPU context`);
        if (p.disposed) throw new OpError(OP, `${where} was disposed`);
        if (!p.requiresGrad) {
          throw new OpError(OP, `${where} does not require grad: pass only trainable parameters (frozen ones must be left out)`);
        }
        if (p.node) throw new OpError(OP, `${where} is the output of an op, not a leaf parameter`);
        if (p.dtype !== 'f32') throw new OpError(OP, `${where}: only f32 parameters can be optimized`);
        // Two handles on one storage would be split apart by moving them into the arena.
        const store = p.storageFor(OP);
        const prev = seen.get(p) ?? seen.get(store);
        if (prev) throw new OpError(OP, `${where} is also passed as ${prev} (a parameter or an alias of it)`);
        seen.set(p, where);
        seen.set(store, where);
      });
      return g;
    });
    this.arenas = this.groups.map((g) => new ParamArena(ctx, g.params, g.name));
    let parts = 0;
    for (const a of this.arenas) {
      this.partialBase.push(parts);
      parts += Math.ceil(a.length / 4 / (SUMSQ_ITEMS * SUMSQ_WG)) * SUMSQ_WG;
    }
    this.partialCount = parts;
    this.partials = ctx.pool.acquire(parts * 4);
    this.stats = ctx.pool.acquire(16);
  }

  /** Sets the base learning rate of every group, or of one group (by index or name). */
  setLr(lr: number, group?: number | string): void {
    checkNumber('lr', lr, 0);
    for (const g of this.select(group)) g.lr = lr;
  }

  /** Sets the gradient scale of every group, or of one group (by index or name). */
  setGradScale(scale: number, group?: number | string): void {
    checkNumber('gradScale', scale, -Infinity);
    for (const g of this.select(group)) g.gradScale = scale;
  }

  private select(group?: number | string): ParamGroup[] {
    if (group === undefined) return this.groups;
    const g = typeof group === 'number' ? this.groups[group] : this.groups.find((x) => x.name === group);
    if (!g) throw new OpError(OP, `no parameter group ${JSON.stringify(group)} (groups: ${this.groups.map((x) => x.name).join(', ')})`);
    return [g];
  }

  private checkAlive(): void {
    if (this.disposed) throw new OpError(OP, 'optimizer used after dispose()');
  }

  /** Copies gradients into the arenas (only those that changed since the last gather). */
  private gather(): void {
    for (const a of this.arenas) a.checkGrads();
    let changed = false;
    for (const a of this.arenas) changed = a.gather() || changed;
    if (changed) this.normValid = false;
  }

  private computeNorm(): void {
    if (this.normValid) return;
    const ctx = this.ctx;
    const pr: BufferRange = { buffer: this.partials, offset: 0, size: this.partialCount * 4 };
    this.arenas.forEach((a, i) => {
      const n4 = a.length / 4;
      const parts = Math.ceil(n4 / (SUMSQ_ITEMS * SUMSQ_WG)) * SUMSQ_WG;
      run1d(ctx, sumSquaresKernel(), parts, { n: n4, parts, base: this.partialBase[i] }, [a.range(a.grads), pr]);
    });
    ctx.dispatch(normFinalizeKernel(), { n: this.partialCount }, [pr, { buffer: this.stats, offset: 0, size: 4 }], [1]);
    this.normValid = true;
  }

  /**
   * The global L2 norm of the current gradients (raw, before gradScale) as a GPU scalar of
   * shape [], for logging without a readback each step. The caller disposes it. A following
   * `step()` with the same gradients reuses this norm.
   */
  gradNorm(): Tensor {
    this.checkAlive();
    return this.ctx.withOp('AdamW.gradNorm', () => {
      this.gather();
      this.computeNorm();
      const out = empty(this.ctx, []);
      this.ctx.copy({ buffer: this.stats, offset: 0, size: 4 }, out.range('AdamW.gradNorm'), 4);
      return out;
    });
  }

  /** One update of every group from the parameters' current `.grad`. Encodes only. */
  step(opts: StepOptions = {}): void {
    this.checkAlive();
    const clip = opts.maxGradNorm !== undefined;
    if (clip) checkNumber('maxGradNorm', opts.maxGradNorm!, Number.MIN_VALUE);
    const factor = this.schedule ? this.schedule(this.stepCount) : 1;
    checkNumber(`schedule(${this.stepCount})`, factor, 0);
    const ctx = this.ctx;
    ctx.withOp('AdamW.step', () => {
      this.gather();
      if (clip) this.computeNorm();
      const t = this.stepCount + 1;
      const [b1, b2] = this.betas;
      const bc1 = 1 - b1 ** t;
      const bc2 = 1 - b2 ** t;
      const kernel = adamwKernel(clip);
      this.arenas.forEach((a, i) => {
        const g = this.groups[i];
        const lr = g.lr * factor;
        const n4 = a.length / 4;
        const ranges = [a.range(a.params), a.range(a.grads), a.range(a.m), a.range(a.v)];
        if (clip) ranges.push({ buffer: this.stats, offset: 0, size: 4 });
        run1d(ctx, kernel, n4,
          {
            n: n4, decay: 1 - lr * g.weightDecay, stepSize: lr / bc1, invSqrtBc2: 1 / Math.sqrt(bc2), b1, b2, omb1: 1 - b1, omb2: 1 - b2,
            eps: this.eps, scale: g.gradScale, maxNorm: opts.maxGradNorm ?? 0,
          },
          ranges);
      });
      this.stepCount = t;
    });
  }

  /** Disposes every parameter's `.grad`. */
  zeroGrad(): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /** Moments, step count and group hyperparameters as host arrays (for checkpoints). */
  async state(): Promise<OptimizerState> {
    this.checkAlive();
    const groups: GroupState[] = [];
    for (let i = 0; i < this.groups.length; i++) {
      const g = this.groups[i];
      const { m, v } = await this.arenas[i].readMoments();
      groups.push({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale, m, v });
    }
    return { step: this.stepCount, groups };
  }

  /** Restores what `state()` returned, for an optimizer over the same groups of parameters. */
  loadState(s: OptimizerState): void {
    this.checkAlive();
    if (!Number.isInteger(s.step) || s.step < 0) throw new OpError(OP, `loadState: step must be a non-negative integer, got ${s.step}`);
    if (s.groups.length !== this.groups.length) {
      throw new OpError(OP, `loadState: state has ${s.groups.length} groups, optimizer has ${this.groups.length}`);
    }
    s.groups.forEach((gs, i) => {
      const g = this.groups[i];
      const ps = g.params;
      if (gs.m.length !== ps.length || gs.v.length !== ps.length) {
        throw new OpError(OP, `loadState: ${g.name} has ${ps.length} parameters, state has ${gs.m.length} m and ${gs.v.length} v arrays`);
      }
      ps.forEach((p, k) => {
        if (gs.m[k].length !== p.size || gs.v[k].length !== p.size) {
          throw new OpError(OP, `loadState: ${g.name} param ${k} ${shapeStr(p.shape)} has ${p.size} elements, state has m ${gs.m[k].length}, v ${gs.v[k].length}`);
        }
      });
      checkNumber(`loadState: ${g.name} lr`, gs.lr, 0);
      checkNumber(`loadState: ${g.name} weightDecay`, gs.weightDecay, 0);
      checkNumber(`loadState: ${g.name} gradScale`, gs.gradScale, -Infinity);
    });
    s.groups.forEach((gs, i) => {
      const g = this.groups[i];
      g.lr = gs.lr;
      g.weightDecay = gs.weightDecay;
      g.gradScale = gs.gradScale;
      this.arenas[i].writeMoments(gs.m, gs.v);
    });
    this.stepCount = s.step;
  }

  /**
   * Returns the arenas to the pool; every parameter moves back into a buffer of its own with
   * its current value. Do it when no autograd graph still holds aliases of the parameters.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const a of this.arenas) a.release();
    this.ctx.pool.release(this.partials);
    this.ctx.pool.release(this.stats);
  }
}
