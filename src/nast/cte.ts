/**
 * Causal tracing effects (NAST paper Sec. 4.2-4.3 and Appendix D), as plain arithmetic on the
 * scores a tracer measured; no GPU here.
 *
 * Per (image, correct caption, foil) pair: d = S_corr - S_foil, and with the foil's residual
 * state patched in at residual index l and token position p, CTE(l, p) = (S_corr - S_lp) / d.
 * d may be negative (the model prefers the foil); the formula holds as it is, since it measures
 * the fraction of the corr-vs-foil gap that the patch moves. A pair with |d| < minDelta has no
 * gap to take a fraction of: it is skipped with its reason, never divided.
 *
 * Residual indices follow the Hugging Face `hidden_states` convention: 0 = embeddings output,
 * l = output of block l (1-based), so a text encoder of L blocks has L + 1 indices.
 */

export const DEFAULT_MIN_DELTA = 1e-3;
export const DEFAULT_BETA = 1;
/** CLIP's `<|endoftext|>`; Hugging Face CLIP also pads with it, so its first occurrence is EOT. */
export const CLIP_EOT_ID = 49407;

/** Where the negation is: in the correct caption (absent finding) or in the foil (present one). */
export type Polarity = 'caption' | 'foil';

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
  /** CTE(l, p): one row per residual index 0..L, one value per position of `ids`. */
  cte: number[][];
  /** The negation-bearing positions (first differing token through EOT). */
  positions: number[];
  polarity?: Polarity;
}

export interface CteSkippedJson {
  image?: string;
  caption: string;
  foil: string;
  reason: string;
}

export interface CteReport {
  /** Residual indices: L + 1 for L blocks. */
  layers: number;
  pairs: CtePairJson[];
  skipped: CteSkippedJson[];
  /** Mean CTE(l, p) over pairs, positions aligned from SOT; a pair counts up to its EOT. */
  cte_mean: number[][];
  /** CTE_l: mean of CTE(l, p) over negation-bearing positions and pairs (both polarities pooled). */
  cte_layer: number[];
  /** Min-max normalised cte_layer over all L + 1 indices. */
  alpha: number[];
  beta: number;
  /** Population standard deviation of each cte_mean cell across pairs. */
  cte_std?: number[][];
  /** How many pairs reach each position (the divisor of each cte_mean column). */
  cte_count?: number[];
  /** Population standard deviation of the entries averaged into each cte_layer value. */
  cte_layer_std?: number[];
  /** cte_layer computed over each polarity subset alone (null when a subset is empty). */
  cte_layer_by_polarity?: { caption: number[] | null; foil: number[] | null };
  min_delta?: number;
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
}

function label(text: string | undefined, ids: readonly number[], eot: number): string {
  if (text !== undefined) return JSON.stringify(text);
  return `ids [${ids.slice(0, eot >= 0 ? eot + 1 : ids.length).join(', ')}]`;
}

/**
 * The negation-bearing positions of a caption/foil pair: from the first position where their
 * token ids differ through the EOT position (the negator or its counterpart, and every token
 * after it, which can read it through causal attention). Both sequences must reach EOT at the
 * same index (the paper constrains pairs to identical token lengths); otherwise, or if they do
 * not differ at all, the error names both captions.
 */
export function negationPositions(idsCaption: readonly number[], idsFoil: readonly number[], opts: NegationPositionOptions = {}): number[] {
  const eotId = opts.eotId ?? CLIP_EOT_ID;
  const ec = eotIndex(idsCaption, eotId);
  const ef = eotIndex(idsFoil, eotId);
  const names = () => `caption ${label(opts.caption, idsCaption, ec)} and foil ${label(opts.foil, idsFoil, ef)}`;
  if (ec < 0 || ef < 0) {
    throw new Error(`negationPositions: no EOT token (${eotId}) in the ${ec < 0 ? 'caption' : 'foil'} ids of ${names()}`);
  }
  if (ec !== ef) {
    throw new Error(`negationPositions: ${names()} have different token lengths (${ec + 1} vs ${ef + 1} through EOT); causal tracing needs equal lengths`);
  }
  let first = -1;
  for (let p = 0; p <= ec; p++) {
    if (idsCaption[p] !== idsFoil[p]) {
      first = p;
      break;
    }
  }
  if (first < 0) throw new Error(`negationPositions: ${names()} tokenise identically; there is no negation to trace`);
  const out: number[] = [];
  for (let p = first; p <= ec; p++) out.push(p);
  return out;
}

/** One pair's contribution to the aggregates. */
export interface CteSample {
  cte: readonly (readonly number[])[];
  positions: readonly number[];
  polarity?: Polarity;
}

export interface CteAggregate {
  cteMean: number[][];
  cteStd: number[][];
  cteCount: number[];
  cteLayer: number[];
  cteLayerStd: number[];
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

/** CTE_l over the given samples: mean over every (pair, negation-bearing position) entry. */
function layerMeans(samples: readonly CteSample[], layers: number): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (let l = 0; l < layers; l++) {
    const vals: number[] = [];
    for (const s of samples) for (const p of s.positions) vals.push(s.cte[l][p]);
    const [m, sd] = meanStd(vals);
    mean.push(m);
    std.push(sd);
  }
  return { mean, std };
}

/**
 * Aggregates per-pair CTE matrices ([layers][P_i], P_i = that pair's positions through EOT).
 *
 * CTE_l averages token-level CTE scores "over negation-bearing tokens and samples" (Sec. 4.3):
 * every (pair, position) entry weighs the same. Appendix D.3 "merge[s] both subsets" (negation
 * in the caption, negation in the foil) "to obtain a unified characterization": the two
 * polarities are pooled into one sample set, not averaged as two vectors, so each pair counts
 * once whichever subset it came from. The per-subset vectors are reported beside it.
 */
export function aggregateCte(samples: readonly CteSample[], layers: number): CteAggregate {
  if (!Number.isInteger(layers) || layers < 2) throw new Error(`aggregateCte: layers must be an integer >= 2 (L + 1), got ${layers}`);
  if (samples.length === 0) throw new Error('aggregateCte: no pairs to aggregate');
  samples.forEach((s, i) => {
    if (s.cte.length !== layers) throw new Error(`aggregateCte: pair ${i} has ${s.cte.length} CTE rows, expected ${layers}`);
    const w = s.cte[0].length;
    s.cte.forEach((row, l) => {
      if (row.length !== w) throw new Error(`aggregateCte: pair ${i} row ${l} has ${row.length} positions, row 0 has ${w}`);
    });
    if (s.positions.length === 0) throw new Error(`aggregateCte: pair ${i} has no negation-bearing positions`);
    for (const p of s.positions) {
      if (!Number.isInteger(p) || p < 0 || p >= w) throw new Error(`aggregateCte: pair ${i} position ${p} is outside its ${w} positions`);
    }
  });
  const width = Math.max(...samples.map((s) => s.cte[0].length));
  const cteCount = Array.from({ length: width }, (_, p) => samples.filter((s) => s.cte[0].length > p).length);
  const cteMean: number[][] = [];
  const cteStd: number[][] = [];
  for (let l = 0; l < layers; l++) {
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
  const all = layerMeans(samples, layers);
  const sub = (pol: Polarity) => {
    const s = samples.filter((x) => x.polarity === pol);
    return s.length > 0 ? layerMeans(s, layers).mean : null;
  };
  return { cteMean, cteStd, cteCount, cteLayer: all.mean, cteLayerStd: all.std, byPolarity: { caption: sub('caption'), foil: sub('foil') } };
}

/**
 * alpha_l = (CTE_l - min_k CTE_k) / (max_k CTE_k - min_k CTE_k) over every index given. When
 * all values are equal (range within 1e-12 of their magnitude) no layer is more causal than
 * another, and every alpha is 1: training then falls back to uniform scaling instead of
 * dividing noise by (nearly) zero.
 */
export function minMaxAlpha(cteLayer: readonly number[]): number[] {
  if (cteLayer.length === 0) throw new Error('minMaxAlpha: no layers');
  cteLayer.forEach((v, i) => {
    if (!finite(v)) throw new Error(`minMaxAlpha: CTE_${i} = ${v} is not finite`);
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
 * The gradient scale of each block's LoRA group, from alpha over the L + 1 residual indices:
 * result[i] = alpha[i + 1]^beta for block i (0-based).
 *
 * Block i reads residual index i and writes index i + 1; its LoRA can only change what it
 * writes. CTE at index i + 1 is the causal effect of exactly that state (the paper's "layer l"
 * is hidden_states[l], the output of layer l, 1-based), so it scales block i's gradients. Index
 * 0 (the embeddings) has no LoRA and drives no group; it still takes part in the min-max.
 */
export function layerScales(alpha: readonly number[], beta = DEFAULT_BETA): number[] {
  if (alpha.length < 2) throw new Error(`layerScales: alpha needs L + 1 >= 2 entries (one per residual index), got ${alpha.length}`);
  return gradientScale(alpha, beta).slice(1);
}

export interface CteReportOptions {
  /** Residual indices L + 1; every pair's S_lp must have this many rows. */
  layers: number;
  beta?: number;
  minDelta?: number;
  eotId?: number;
}

/**
 * The `cte.json` object from traced pairs: per-pair CTE over positions through EOT, the
 * skipped pairs with reasons, the mean matrix, CTE_l, alpha and beta. Throws when a pair is
 * malformed (naming it) or when every pair was skipped.
 */
export function buildCteReport(traced: readonly TracedPair[], opts: CteReportOptions): CteReport {
  const { layers, beta = DEFAULT_BETA, minDelta = DEFAULT_MIN_DELTA, eotId = CLIP_EOT_ID } = opts;
  if (!Number.isInteger(layers) || layers < 2) throw new Error(`buildCteReport: layers must be an integer >= 2 (L + 1), got ${layers}`);
  checkBeta(beta);
  const pairs: CtePairJson[] = [];
  const skipped: CteSkippedJson[] = [];
  traced.forEach((t, i) => {
    const where = `buildCteReport: pair ${i} (caption ${JSON.stringify(t.caption)}, foil ${JSON.stringify(t.foil)})`;
    const positions = negationPositions(t.idsCaption, t.idsFoil, { caption: t.caption, foil: t.foil, eotId });
    const n = positions[positions.length - 1] + 1;
    if (t.sLp.length !== layers) throw new Error(`${where}: S_lp has ${t.sLp.length} rows, expected ${layers} (L + 1)`);
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
      skipped.push({ image: t.image, caption: t.caption, foil: t.foil, reason: r.reason });
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
    throw new Error(`buildCteReport: no usable pairs (${traced.length} given, ${skipped.length} skipped${reasons ? `: ${reasons}` : ''})`);
  }
  const agg = aggregateCte(pairs, layers);
  return {
    layers,
    pairs,
    skipped,
    cte_mean: agg.cteMean,
    cte_layer: agg.cteLayer,
    alpha: minMaxAlpha(agg.cteLayer),
    beta,
    cte_std: agg.cteStd,
    cte_count: agg.cteCount,
    cte_layer_std: agg.cteLayerStd,
    cte_layer_by_polarity: agg.byPolarity,
    min_delta: minDelta,
  };
}

// ---------------------------------------------------------------------------------------------
// Validating parser for cte.json.

class Reader {
  constructor(readonly file: string) {}

  fail(key: string, msg: string): never {
    throw new Error(`${this.file}: ${key ? `key "${key}" ` : ''}${msg}`);
  }

  obj(v: unknown, key: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be an object, got ${kind(v)}`);
    return v as Record<string, unknown>;
  }

  arr(v: unknown, key: string, len?: number): unknown[] {
    if (!Array.isArray(v)) this.fail(key, `must be an array, got ${kind(v)}`);
    if (len !== undefined && v.length !== len) this.fail(key, `must have ${len} entries, has ${v.length}`);
    return v;
  }

  num(v: unknown, key: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a finite number, got ${kind(v)}`);
    return v;
  }

  str(v: unknown, key: string): string {
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${kind(v)}`);
    return v;
  }

  nums(v: unknown, key: string, len?: number): number[] {
    return this.arr(v, key, len).map((x, i) => this.num(x, `${key}[${i}]`));
  }

  /** A [rows][cols] matrix; cols fixed when given, else taken from row 0. */
  matrix(v: unknown, key: string, rows: number, cols?: number): number[][] {
    const m = this.arr(v, key, rows).map((r, i) => this.nums(r, `${key}[${i}]`));
    const w = cols ?? m[0]?.length ?? 0;
    m.forEach((r, i) => {
      if (r.length !== w) this.fail(`${key}[${i}]`, `must have ${w} entries (${cols === undefined ? `as ${key}[0]` : 'one per position'}), has ${r.length}`);
    });
    return m;
  }
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/**
 * Reads a cte.json document (its text or the parsed value) and checks every key `train --cte`
 * relies on; errors name the file and the key (e.g. `cte.json: key "pairs[2].cte[3]" ...`).
 */
export function parseCteReport(json: unknown, fileName: string): CteReport {
  const r: Reader = new Reader(fileName);
  let doc = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      r.fail('', `is not valid JSON: ${(e as Error).message}`);
    }
  }
  const o = r.obj(doc, '');
  const layers = r.num(o.layers, 'layers');
  if (!Number.isInteger(layers) || layers < 2) r.fail('layers', `must be an integer >= 2 (L + 1 residual indices), got ${layers}`);

  const pairs = r.arr(o.pairs, 'pairs').map((pv, i): CtePairJson => {
    const k = `pairs[${i}]`;
    const p = r.obj(pv, k);
    const ids = r.nums(p.ids, `${k}.ids`);
    ids.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0) r.fail(`${k}.ids[${j}]`, `must be a token id (integer >= 0), got ${id}`);
    });
    const out: CtePairJson = {
      image: r.str(p.image, `${k}.image`),
      caption: r.str(p.caption, `${k}.caption`),
      foil: r.str(p.foil, `${k}.foil`),
      ids,
      s_corr: r.num(p.s_corr, `${k}.s_corr`),
      s_foil: r.num(p.s_foil, `${k}.s_foil`),
      d: r.num(p.d, `${k}.d`),
      cte: r.matrix(p.cte, `${k}.cte`, layers, ids.length),
      positions: [],
    };
    if (p.positions !== undefined) {
      out.positions = r.nums(p.positions, `${k}.positions`);
      out.positions.forEach((q, j) => {
        if (!Number.isInteger(q) || q < 0 || q >= ids.length) r.fail(`${k}.positions[${j}]`, `must be a position in [0, ${ids.length}), got ${q}`);
      });
    }
    if (p.polarity !== undefined) {
      const pol = p.polarity;
      if (pol !== 'caption' && pol !== 'foil') r.fail(`${k}.polarity`, `must be "caption" or "foil", got ${kind(pol)}`);
      out.polarity = pol;
    }
    return out;
  });

  const skipped = r.arr(o.skipped, 'skipped').map((sv, i): CteSkippedJson => {
    const k = `skipped[${i}]`;
    const s = r.obj(sv, k);
    const out: CteSkippedJson = { caption: r.str(s.caption, `${k}.caption`), foil: r.str(s.foil, `${k}.foil`), reason: r.str(s.reason, `${k}.reason`) };
    if (s.image !== undefined) out.image = r.str(s.image, `${k}.image`);
    return out;
  });

  const cteMean = r.matrix(o.cte_mean, 'cte_mean', layers);
  const cteLayer = r.nums(o.cte_layer, 'cte_layer', layers);
  const alpha = r.nums(o.alpha, 'alpha', layers);
  alpha.forEach((a, i) => {
    if (a < 0 || a > 1) r.fail(`alpha[${i}]`, `must be in [0, 1] (min-max normalised), got ${a}`);
  });
  const beta = r.num(o.beta, 'beta');
  if (!(beta > 0)) r.fail('beta', `must be > 0, got ${beta}`);

  const report: CteReport = { layers, pairs, skipped, cte_mean: cteMean, cte_layer: cteLayer, alpha, beta };
  const width = cteMean[0].length;
  if (o.cte_std !== undefined) report.cte_std = r.matrix(o.cte_std, 'cte_std', layers, width);
  if (o.cte_count !== undefined) report.cte_count = r.nums(o.cte_count, 'cte_count', width);
  if (o.cte_layer_std !== undefined) report.cte_layer_std = r.nums(o.cte_layer_std, 'cte_layer_std', layers);
  if (o.cte_layer_by_polarity !== undefined) {
    const b = r.obj(o.cte_layer_by_polarity, 'cte_layer_by_polarity');
    const sub = (pol: Polarity) => {
      const v = b[pol];
      return v === null || v === undefined ? null : r.nums(v, `cte_layer_by_polarity.${pol}`, layers);
    };
    report.cte_layer_by_polarity = { caption: sub('caption'), foil: sub('foil') };
  }
  if (o.min_delta !== undefined) report.min_delta = r.num(o.min_delta, 'min_delta');
  return report;
}
