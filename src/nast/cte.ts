/**
 * Causal tracing effects (NAST paper Sec. 4.2-4.3 and Appendix D), as plain arithmetic on the
 * scores a tracer measured; no GPU here. The cte.json parser is in cte-report-parse.ts.
 *
 * Per (image, correct caption, foil) pair: d = S_corr - S_foil, and with the foil's residual
 * state patched in at residual index l and token position p, CTE(l, p) = (S_corr - S_lp) / d.
 * d may be negative (the model prefers the foil); the formula holds as it is, since it measures
 * the fraction of the corr-vs-foil gap that the patch moves. A pair with |d| < minDelta has no
 * gap to take a fraction of: it is skipped with its reason, never divided.
 *
 * Residual indices follow the Hugging Face `hidden_states` convention: 0 = embeddings output,
 * l = output of block l (1-based), so a text encoder of L blocks has L + 1 indices. The tracer
 * measures all of them (the heat map shows the embeddings row too), but only indices 1..L are
 * the encoder's layers (Sec. 4.3: "k indexes all layers of the text encoder"): CTE_l, its
 * min-max normalisation alpha_l and the scale of block l's LoRA are over layers 1..L; the
 * embeddings' value is reported beside them as `cte_embeddings`.
 */
import { makeRng, randInt } from '../data/rng.js';

export const DEFAULT_MIN_DELTA = 1e-3;
export const DEFAULT_BETA = 1;
/** CLIP's `<|endoftext|>`; Hugging Face CLIP also pads with it, so its first occurrence is EOT. */
export const CLIP_EOT_ID = 49407;
/** cte.json's current version (1: CTE_l and alpha over residual indices 0..L). */
export const CTE_VERSION = 2;

/** Where the negation is: in the correct caption (absent finding) or in the foil (present one). */
export type Polarity = 'caption' | 'foil';

/**
 * Which token positions CTE_l averages over:
 *   differ  the positions where caption and foil token ids differ: the negator and its
 *           counterpart ("no" / "severe"), the paper's negation-bearing tokens (default);
 *   after   the first differing position through EOT (every token that can read the negator
 *           through causal attention; version 1's rule);
 *   eot     the EOT position alone (the pooled state);
 *   all     every position from SOT through EOT.
 */
export const POSITION_RULES = ['differ', 'after', 'eot', 'all'] as const;
export type PositionRule = (typeof POSITION_RULES)[number];
export const DEFAULT_POSITION_RULE: PositionRule = 'differ';

export function isPositionRule(v: unknown): v is PositionRule {
  return (POSITION_RULES as readonly unknown[]).includes(v);
}

/** What a tracer measured for one pair. */
export interface TracedPair {
  image: string;
  caption: string;
  foil: string;
  /** Token ids of the correct caption and of the foil, from SOT; padding after EOT is allowed. */
  idsCaption: readonly number[];
  idsFoil: readonly number[];
  sCorr: number;
  sFoil: number;
  /** S_lp [L + 1][P]: P >= the positions through EOT; columns past EOT are dropped. */
  sLp: readonly (readonly number[])[];
  polarity?: Polarity;
  /** Where the pair came from ("pairs.jsonl:3"), kept with a skipped pair. */
  source?: string;
}

export interface CtePairJson {
  image: string;
  caption: string;
  foil: string;
  /** Caption token ids from SOT through EOT (no padding): one per CTE column. */
  ids: number[];
  s_corr: number;
  s_foil: number;
  d: number;
  /** CTE(l, p): one row per residual index 0..L (row 0 = embeddings), one value per position of `ids`. */
  cte: number[][];
  /** The positions the report's rule picks in this pair. */
  positions: number[];
  polarity?: Polarity;
}

export interface CteSkippedJson {
  image?: string;
  caption: string;
  foil: string;
  reason: string;
  /** The pairs file and line ("pairs.jsonl:3"), where known. */
  source?: string;
}

/** cte.json, version 2. */
export interface CteReport {
  version: 2;
  /** Text-encoder layers L (blocks); per-pair and mean matrices have L + 1 rows. */
  layers: number;
  /** The rule that picked each pair's positions. */
  positions: PositionRule;
  pairs: CtePairJson[];
  skipped: CteSkippedJson[];
  /** Mean CTE(l, p) over pairs [L + 1][W], positions aligned from SOT; a pair counts up to its EOT. */
  cte_mean: number[][];
  /** CTE at the embeddings (residual index 0) over the same entries: reported, not a layer. */
  cte_embeddings: number;
  /** CTE_l for layers 1..L: mean of CTE(l, p) over the rule's positions and pairs (both polarities pooled). */
  cte_layer: number[];
  /** cte_layer min-max normalised over layers 1..L; alpha[l - 1] scales block l's LoRA. */
  alpha: number[];
  beta: number;
  /** Population standard deviation of each cte_mean cell across pairs. */
  cte_std?: number[][];
  /** How many pairs reach each position (the divisor of each cte_mean column). */
  cte_count?: number[];
  /** Spread across pairs: std of each pair's own mean over its positions, per layer 1..L. */
  cte_layer_std?: number[];
  /** Bootstrap 95 % interval of cte_layer (pairs resampled with replacement), per layer: [lo, hi]. */
  cte_layer_ci95?: [number, number][];
  cte_embeddings_std?: number;
  cte_embeddings_ci95?: [number, number];
  bootstrap?: { resamples: number; seed: number };
  /** cte_layer over each polarity subset alone (null when a subset is empty). */
  cte_layer_by_polarity?: { caption: number[] | null; foil: number[] | null };
  min_delta?: number;
  /** Set by the parser when the file was an older version, converted on load. */
  upgraded_from?: number;
}

export type CteResult = { ok: true; d: number; cte: number[][] } | { ok: false; d: number; reason: string };

function finite(x: number): boolean {
  return typeof x === 'number' && Number.isFinite(x);
}

/**
 * CTE(l, p) = (S_corr - S_lp[l][p]) / d with d = S_corr - S_foil, or a skip (with its reason)
 * when |d| < minDelta. Throws on non-finite scores or a ragged S_lp: those are tracer bugs.
 */
export function computeCte(sCorr: number, sFoil: number, sLp: readonly (readonly number[])[], minDelta = DEFAULT_MIN_DELTA): CteResult {
  if (!finite(sCorr) || !finite(sFoil)) throw new Error(`computeCte: scores must be finite, got S_corr ${sCorr}, S_foil ${sFoil}`);
  if (!(minDelta >= 0) || !Number.isFinite(minDelta)) throw new Error(`computeCte: minDelta must be a finite number >= 0, got ${minDelta}`);
  const p = sLp[0]?.length ?? 0;
  sLp.forEach((row, l) => {
    if (row.length !== p) throw new Error(`computeCte: S_lp row ${l} has ${row.length} positions, row 0 has ${p}`);
    row.forEach((v, j) => {
      if (!finite(v)) throw new Error(`computeCte: S_lp[${l}][${j}] = ${v} is not finite`);
    });
  });
  const d = sCorr - sFoil;
  if (!(Math.abs(d) >= minDelta) || d === 0) {
    return { ok: false, d, reason: `|d| = |S_corr - S_foil| = ${Math.abs(d).toExponential(3)} < minDelta ${minDelta}: no gap to attribute` };
  }
  return { ok: true, d, cte: sLp.map((row) => row.map((s) => (sCorr - s) / d)) };
}

/** Index of the first `eotId` in `ids`, or -1. */
export function eotIndex(ids: readonly number[], eotId = CLIP_EOT_ID): number {
  return ids.indexOf(eotId);
}

export interface NegationPositionOptions {
  caption?: string;
  foil?: string;
  eotId?: number;
  /** Default 'differ'. */
  rule?: PositionRule;
}

function label(text: string | undefined, ids: readonly number[], eot: number): string {
  if (text !== undefined) return JSON.stringify(text);
  return `ids [${ids.slice(0, eot >= 0 ? eot + 1 : ids.length).join(', ')}]`;
}

/** A caption/foil pair that causal tracing cannot use (a reason to skip it, not to stop). */
export class UntraceablePairError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UntraceablePairError';
  }
}

/**
 * The positions of a caption/foil pair that CTE_l averages over, by `rule` (see POSITION_RULES).
 * Both sequences must reach EOT at the same index (the paper constrains pairs to identical token
 * lengths) and differ somewhere before it; otherwise the error names both captions.
 */
export function negationPositions(idsCaption: readonly number[], idsFoil: readonly number[], opts: NegationPositionOptions = {}): number[] {
  const eotId = opts.eotId ?? CLIP_EOT_ID;
  const rule = opts.rule ?? DEFAULT_POSITION_RULE;
  if (!isPositionRule(rule)) throw new Error(`negationPositions: unknown rule ${JSON.stringify(rule)} (expected ${POSITION_RULES.join(', ')})`);
  const ec = eotIndex(idsCaption, eotId);
  const ef = eotIndex(idsFoil, eotId);
  const names = () => `caption ${label(opts.caption, idsCaption, ec)} and foil ${label(opts.foil, idsFoil, ef)}`;
  if (ec < 0 || ef < 0) {
    throw new UntraceablePairError(`no EOT token (${eotId}) in the ${ec < 0 ? 'caption' : 'foil'} ids of ${names()}`);
  }
  if (ec !== ef) {
    throw new UntraceablePairError(`${names()} have different token lengths (${ec + 1} vs ${ef + 1} through EOT); causal tracing needs equal lengths`);
  }
  const differ: number[] = [];
  for (let p = 0; p <= ec; p++) if (idsCaption[p] !== idsFoil[p]) differ.push(p);
  if (differ.length === 0) throw new UntraceablePairError(`${names()} tokenise identically; there is no negation to trace`);
  const range = (from: number) => Array.from({ length: ec + 1 - from }, (_, i) => from + i);
  switch (rule) {
    case 'differ':
      return differ;
    case 'after':
      return range(differ[0]);
    case 'eot':
      return [ec];
    case 'all':
      return range(0);
  }
}

/** One pair's contribution to the aggregates. */
export interface CteSample {
  cte: readonly (readonly number[])[];
  positions: readonly number[];
  polarity?: Polarity;
}

export interface BootstrapOptions {
  /** Resamples of the pairs (with replacement); 0 skips the interval. Default 1000. */
  resamples?: number;
  seed?: number;
}

export interface CteAggregate {
  /** Rows are residual indices 0..L. */
  cteMean: number[][];
  cteStd: number[][];
  cteCount: number[];
  /** CTE per residual index 0..L over (pair, position) entries. */
  cteIndex: number[];
  /** Std across pairs of each pair's mean over its positions, per residual index. */
  cteIndexStd: number[];
  /** Bootstrap 95 % interval of cteIndex, per residual index (empty when resamples is 0). */
  cteIndexCi95: [number, number][];
  byPolarity: { caption: number[] | null; foil: number[] | null };
}

function meanStd(values: readonly number[]): [number, number] {
  const n = values.length;
  let s = 0;
  for (const v of values) s += v;
  const m = s / n;
  let q = 0;
  for (const v of values) q += (v - m) * (v - m);
  return [m, Math.sqrt(q / n)];
}

/** Per residual index, the sum and count of a pair's entries at its positions. */
function pairSums(s: CteSample, rows: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < rows; l++) {
    let t = 0;
    for (const p of s.positions) t += s.cte[l][p];
    out.push(t);
  }
  return out;
}

/** Mean over every (pair, position) entry: each entry weighs the same. */
function entryMeans(samples: readonly CteSample[], rows: number): number[] {
  const sum = new Array<number>(rows).fill(0);
  let count = 0;
  for (const s of samples) {
    pairSums(s, rows).forEach((v, l) => (sum[l] += v));
    count += s.positions.length;
  }
  return sum.map((v) => v / count);
}

/** Linear-interpolated quantile of sorted values. */
function quantile(sorted: ArrayLike<number>, q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * Aggregates per-pair CTE matrices ([L + 1][P_i], P_i = that pair's positions through EOT).
 *
 * CTE_l averages token-level CTE scores "over negation-bearing tokens and samples" (Sec. 4.3):
 * every (pair, position) entry weighs the same. Appendix D.3 "merge[s] both subsets" (negation
 * in the caption, negation in the foil) "to obtain a unified characterization": the two
 * polarities are pooled into one sample set, not averaged as two vectors, so each pair counts
 * once whichever subset it came from. The per-subset vectors are reported beside it, and the
 * spread across pairs as a std of per-pair means and a bootstrap interval over pairs.
 */
export function aggregateCte(samples: readonly CteSample[], rows: number, boot: BootstrapOptions = {}): CteAggregate {
  if (!Number.isInteger(rows) || rows < 2) throw new Error(`aggregateCte: rows must be an integer >= 2 (residual indices L + 1), got ${rows}`);
  if (samples.length === 0) throw new Error('aggregateCte: no pairs to aggregate');
  samples.forEach((s, i) => {
    if (s.cte.length !== rows) throw new Error(`aggregateCte: pair ${i} has ${s.cte.length} CTE rows, expected ${rows}`);
    const w = s.cte[0].length;
    s.cte.forEach((row, l) => {
      if (row.length !== w) throw new Error(`aggregateCte: pair ${i} row ${l} has ${row.length} positions, row 0 has ${w}`);
    });
    if (s.positions.length === 0) throw new Error(`aggregateCte: pair ${i} has no positions to average over`);
    for (const p of s.positions) {
      if (!Number.isInteger(p) || p < 0 || p >= w) throw new Error(`aggregateCte: pair ${i} position ${p} is outside its ${w} positions`);
    }
  });
  const resamples = boot.resamples ?? 1000;
  if (!Number.isInteger(resamples) || resamples < 0) throw new Error(`aggregateCte: resamples must be an integer >= 0, got ${resamples}`);
  const width = Math.max(...samples.map((s) => s.cte[0].length));
  const cteCount = Array.from({ length: width }, (_, p) => samples.filter((s) => s.cte[0].length > p).length);
  const cteMean: number[][] = [];
  const cteStd: number[][] = [];
  for (let l = 0; l < rows; l++) {
    const m: number[] = [];
    const sd: number[] = [];
    for (let p = 0; p < width; p++) {
      const [a, b] = meanStd(samples.filter((s) => s.cte[l].length > p).map((s) => s.cte[l][p]));
      m.push(a);
      sd.push(b);
    }
    cteMean.push(m);
    cteStd.push(sd);
  }
  const sums = samples.map((s) => pairSums(s, rows));
  const counts = samples.map((s) => s.positions.length);
  const cteIndexStd = Array.from({ length: rows }, (_, l) => meanStd(sums.map((v, i) => v[l] / counts[i]))[1]);
  const cteIndexCi95: [number, number][] = [];
  if (resamples > 0) {
    const rng = makeRng(boot.seed ?? 0);
    const draws = Array.from({ length: rows }, () => new Float64Array(resamples));
    for (let b = 0; b < resamples; b++) {
      const sum = new Array<number>(rows).fill(0);
      let count = 0;
      for (let k = 0; k < samples.length; k++) {
        const i = randInt(rng, samples.length);
        for (let l = 0; l < rows; l++) sum[l] += sums[i][l];
        count += counts[i];
      }
      for (let l = 0; l < rows; l++) draws[l][b] = sum[l] / count;
    }
    for (const d of draws) {
      d.sort();
      cteIndexCi95.push([quantile(d, 0.025), quantile(d, 0.975)]);
    }
  }
  const sub = (pol: Polarity) => {
    const s = samples.filter((x) => x.polarity === pol);
    return s.length > 0 ? entryMeans(s, rows) : null;
  };
  return {
    cteMean, cteStd, cteCount, cteIndex: entryMeans(samples, rows), cteIndexStd, cteIndexCi95,
    byPolarity: { caption: sub('caption'), foil: sub('foil') },
  };
}

/**
 * alpha_l = (CTE_l - min_k CTE_k) / (max_k CTE_k - min_k CTE_k) over every layer given (the
 * encoder's layers 1..L; never the embeddings). When all values are equal (range within 1e-12 of
 * their magnitude) no layer is more causal than another, and every alpha is 1: training then
 * falls back to uniform scaling instead of dividing noise by (nearly) zero.
 */
export function minMaxAlpha(cteLayer: readonly number[]): number[] {
  if (cteLayer.length === 0) throw new Error('minMaxAlpha: no layers');
  cteLayer.forEach((v, i) => {
    if (!finite(v)) throw new Error(`minMaxAlpha: CTE of layer ${i + 1} = ${v} is not finite`);
  });
  const lo = Math.min(...cteLayer);
  const hi = Math.max(...cteLayer);
  const range = hi - lo;
  if (range <= 1e-12 * Math.max(1, Math.abs(lo), Math.abs(hi))) return cteLayer.map(() => 1);
  // Clamped so rounding never puts an alpha a hair outside [0, 1].
  return cteLayer.map((v) => Math.min(1, Math.max(0, (v - lo) / range)));
}

function checkBeta(beta: number): void {
  if (!(beta > 0) || !Number.isFinite(beta)) throw new Error(`beta must be a finite number > 0, got ${beta}`);
}

/** alpha^beta elementwise (beta > 0): alpha = 0 gives exactly 0, alpha = 1 exactly 1. */
export function gradientScale(alpha: readonly number[], beta = DEFAULT_BETA): number[] {
  checkBeta(beta);
  return alpha.map((a, i) => {
    if (!(a >= 0 && a <= 1)) throw new Error(`gradientScale: alpha[${i}] = ${a} is outside [0, 1]`);
    return a === 0 ? 0 : Math.pow(a, beta);
  });
}

/**
 * The scale of each block's LoRA group from cte.json's alpha (one per layer 1..L): result[i] =
 * alpha[i]^beta for block i (0-based), i.e. layer i + 1. Block i writes hidden_states[i + 1],
 * whose causal effect is that layer's CTE; its LoRA can only change what it writes.
 */
export function layerScales(alpha: readonly number[], beta = DEFAULT_BETA): number[] {
  if (alpha.length < 1) throw new Error('layerScales: alpha needs one entry per text-encoder layer, got none');
  return gradientScale(alpha, beta);
}

export interface CteReportOptions {
  /** Text-encoder layers L; every pair's S_lp must have L + 1 rows (residual indices 0..L). */
  layers: number;
  beta?: number;
  minDelta?: number;
  eotId?: number;
  /** Default 'differ'. */
  positions?: PositionRule;
  bootstrap?: BootstrapOptions;
}

/**
 * The `cte.json` object (version 2) from traced pairs: per-pair CTE over positions through EOT,
 * the skipped pairs with reasons, the mean matrix, CTE_l over layers 1..L with its spread, the
 * embeddings' value beside it, alpha and beta. Throws when a pair is malformed (naming it) or
 * when every pair was skipped.
 */
export function buildCteReport(traced: readonly TracedPair[], opts: CteReportOptions): CteReport {
  const { layers, beta = DEFAULT_BETA, minDelta = DEFAULT_MIN_DELTA, eotId = CLIP_EOT_ID, positions: rule = DEFAULT_POSITION_RULE } = opts;
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`buildCteReport: layers must be an integer >= 1 (text-encoder blocks), got ${layers}`);
  if (!isPositionRule(rule)) throw new Error(`buildCteReport: positions must be one of ${POSITION_RULES.join(', ')}, got ${JSON.stringify(rule)}`);
  checkBeta(beta);
  const rows = layers + 1;
  const pairs: CtePairJson[] = [];
  const skipped: CteSkippedJson[] = [];
  traced.forEach((t, i) => {
    const where = `buildCteReport: pair ${i} (caption ${JSON.stringify(t.caption)}, foil ${JSON.stringify(t.foil)})`;
    const skip = (reason: string) => skipped.push({ image: t.image, caption: t.caption, foil: t.foil, reason, ...(t.source ? { source: t.source } : {}) });
    let positions: number[];
    try {
      positions = negationPositions(t.idsCaption, t.idsFoil, { caption: t.caption, foil: t.foil, eotId, rule });
    } catch (e) {
      if (!(e instanceof UntraceablePairError)) throw e;
      skip(e.message);
      return;
    }
    const n = eotIndex(t.idsCaption, eotId) + 1;
    if (t.sLp.length !== rows) throw new Error(`${where}: S_lp has ${t.sLp.length} rows, expected ${rows} (L + 1 residual indices)`);
    t.sLp.forEach((row, l) => {
      if (row.length < n) throw new Error(`${where}: S_lp row ${l} has ${row.length} positions, fewer than the ${n} through EOT`);
    });
    let r: CteResult;
    try {
      // Past EOT nothing reaches the pooled EOT state through causal attention: drop those.
      r = computeCte(t.sCorr, t.sFoil, t.sLp.map((row) => row.slice(0, n)), minDelta);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    if (!r.ok) {
      skip(r.reason);
      return;
    }
    const pair: CtePairJson = {
      image: t.image, caption: t.caption, foil: t.foil, ids: t.idsCaption.slice(0, n),
      s_corr: t.sCorr, s_foil: t.sFoil, d: r.d, cte: r.cte, positions,
    };
    if (t.polarity) pair.polarity = t.polarity;
    pairs.push(pair);
  });
  if (pairs.length === 0) {
    const reasons = skipped.slice(0, 3).map((s) => `${JSON.stringify(s.caption)}: ${s.reason}`).join('; ');
    throw new Error(`no usable pairs (${traced.length} given, ${skipped.length} skipped${reasons ? `: ${reasons}` : ''})`);
  }
  const bootstrap = { resamples: opts.bootstrap?.resamples ?? 1000, seed: opts.bootstrap?.seed ?? 0 };
  const agg = aggregateCte(pairs, rows, bootstrap);
  const layerPart = (v: number[] | null) => (v === null ? null : v.slice(1));
  const cteLayer = agg.cteIndex.slice(1);
  const report: CteReport = {
    version: CTE_VERSION,
    layers,
    positions: rule,
    pairs,
    skipped,
    cte_mean: agg.cteMean,
    cte_embeddings: agg.cteIndex[0],
    cte_layer: cteLayer,
    alpha: minMaxAlpha(cteLayer),
    beta,
    cte_std: agg.cteStd,
    cte_count: agg.cteCount,
    cte_layer_std: agg.cteIndexStd.slice(1),
    cte_embeddings_std: agg.cteIndexStd[0],
  };
  if (agg.cteIndexCi95.length > 0) {
    report.cte_layer_ci95 = agg.cteIndexCi95.slice(1);
    report.cte_embeddings_ci95 = agg.cteIndexCi95[0];
    report.bootstrap = bootstrap;
  }
  report.cte_layer_by_polarity = { caption: layerPart(agg.byPolarity.caption), foil: layerPart(agg.byPolarity.foil) };
  report.min_delta = minDelta;
  return report;
}
