/**
 * Learning-rate schedules: multipliers of the base rate by the number of steps already taken.
 * Named fields rather than positional ones, since warm-up and total are both step counts and
 * easy to swap.
 */

export type Schedule = (stepsTaken: number) => number;

export interface WarmupCosineOptions {
  /** Steps of linear warm-up from lr / warmup to lr (0: none). */
  warmup: number;
  /** The step at which the cosine reaches its floor. */
  total: number;
  /** Floor as a share of the base rate (default 0). */
  minRatio?: number;
}

/** Linear warm-up, then cosine decay to minRatio * lr at `total` steps (held there after). */
export function warmupCosine({ warmup, total, minRatio = 0 }: WarmupCosineOptions): Schedule {
  return (t) => {
    if (t < warmup) return (t + 1) / warmup;
    const span = Math.max(1, total - warmup);
    const progress = Math.min(1, (t - warmup) / span);
    return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** Linear warm-up to the full rate, then the full rate. */
export function warmupConstant(warmup: number): Schedule {
  return (t) => (t < warmup ? (t + 1) / warmup : 1);
}
