/**
 * Paired comparison of two arms over the same seeds: the per-seed differences, their mean, a
 * 95 % Student-t interval and the sign count. With three seeds a mean difference alone says
 * little; the interval and the signs say whether it could be noise. Browser-safe, float64.
 *
 * The t quantile is computed (to ~1e-9), not tabled: the t CDF is written through the regularized
 * incomplete beta function (Lentz's continued fraction, as in Numerical Recipes 6.4) and inverted
 * by bisection, so every degree of freedom, not only 1..30, gets its own value.
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: ~1e-15 relative). */
export function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  // The series is accurate for x >= 0.5; below it, the reflection formula.
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of I_x(a, b); converges fast for x < (a + 1) / (a + b + 2). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const guard = (v: number) => (Math.abs(v) < tiny ? tiny : v);
  let c = 1;
  let d = 1 / guard(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a - 1 + m2) * (a + m2));
    d = 1 / guard(1 + aa * d);
    c = guard(1 + aa / c);
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + 1 + m2));
    d = 1 / guard(1 + aa * d);
    c = guard(1 + aa / c);
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) return h;
  }
  throw new Error(`incomplete beta: no convergence for a=${a}, b=${b}, x=${x}`);
}

/** The regularized incomplete beta function I_x(a, b), 0 <= x <= 1, a, b > 0. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1)) throw new Error(`incompleteBeta: needs 0 <= x <= 1 and a, b > 0, got x=${x}, a=${a}, b=${b}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The fraction converges on one side of the mean; the other side uses I_x(a,b) = 1 - I_{1-x}(b,a).
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new Error(`studentTCdf: degrees of freedom must be positive, got ${df}`);
  if (t === 0) return 0.5;
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with `df` degrees of freedom (bisection on the CDF). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`studentTQuantile: p must lie in (0, 1), got ${p}`);
  if (!(df > 0)) throw new Error(`studentTQuantile: degrees of freedom must be positive, got ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  let lo = hi / 2 >= 1 ? hi / 2 : 0;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Differences within this of zero count as ties (claim accuracies are ratios of small counts). */
export const TIE_TOLERANCE = 1e-12;

export interface PairedStats {
  /** Per-seed differences, in seed order. */
  diffs: number[];
  n: number;
  mean: number;
  /** Sample standard deviation (divisor n - 1); null for one seed. */
  sd: number | null;
  /** t(0.975, n - 1): the multiplier of the standard error; null for one seed. */
  t975: number | null;
  /** 95 % interval of the mean difference, mean ± t975 · sd / √n; null where none can be given. */
  ci95: [number, number] | null;
  /** Why ci95 is null, or a caveat on it (a zero-width interval); null otherwise. */
  ci95_note: string | null;
  /** Seeds with a positive, negative and (within TIE_TOLERANCE) zero difference. */
  higher: number;
  lower: number;
  tied: number;
}

/** Statistics of paired differences (a - b per seed). */
export function pairedStats(diffs: readonly number[]): PairedStats {
  const d = [...diffs];
  const n = d.length;
  const signs = {
    higher: d.filter((x) => x > TIE_TOLERANCE).length,
    lower: d.filter((x) => x < -TIE_TOLERANCE).length,
    tied: d.filter((x) => Math.abs(x) <= TIE_TOLERANCE).length,
  };
  const none = (mean: number, note: string): PairedStats => ({ diffs: d, n, mean, sd: null, t975: null, ci95: null, ci95_note: note, ...signs });
  if (n === 0) return none(NaN, 'no seeds');
  if (!d.every(Number.isFinite)) return none(NaN, 'a difference is not a finite number');
  const mean = d.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return none(mean, 'one seed: no spread to estimate');
  const sd = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const t975 = studentTQuantile(0.975, n - 1);
  const half = (t975 * sd) / Math.sqrt(n);
  // Identical differences give sd 0 and an interval of zero width: honest arithmetic, but it
  // reflects too few seeds to show spread, not certainty.
  const note = sd === 0 ? 'every seed gave the same difference: zero width, not certainty' : null;
  return { diffs: d, n, mean, sd, t975, ci95: [mean - half, mean + half], ci95_note: note, ...signs };
}
