/**
 * Evaluation metrics as pure functions on scores (no GPU): text-to-image Recall@k, claim-set
 * accuracy (NAST Tables 1-2), NegBench MCQ accuracy overall and per template type, paired
 * negated/affirmative accuracy and the affirmative-negation gap (NAST Table 3, Figure 3).
 *
 * All rates are fractions in [0, 1] (multiply by 100 for the papers' percentages); a rate over
 * zero samples is NaN (JSON.stringify writes null).
 *
 * Ties count against the model, everywhere: a question is answered correctly only when the
 * correct option's score is strictly greater than every other option's, and in retrieval every
 * image scoring the same as the target is ranked ahead of it. A NaN score also counts against
 * the model (a NaN correct score is never right; a NaN competitor beats it). A degenerate model
 * that scores everything equal therefore gets 0, never a lucky "first index wins".
 */

export interface Accuracy {
  n: number;
  correct: number;
  /** correct / n; NaN when n = 0. */
  accuracy: number;
}

/** Similarities, query (text) per row, candidate (image) per column. */
export type SimilarityMatrix = readonly ArrayLike<number>[] | { data: ArrayLike<number>; rows: number; cols: number };

function accuracyOf(correct: number, n: number): Accuracy {
  return { n, correct, accuracy: n === 0 ? NaN : correct / n };
}

function rowAccessor(sim: SimilarityMatrix): { rows: number; cols: number; at: (r: number, c: number) => number } {
  if ('data' in sim && !Array.isArray(sim)) {
    const { data, rows, cols } = sim as { data: ArrayLike<number>; rows: number; cols: number };
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) throw new RangeError(`similarity matrix: rows and cols must be non-negative integers, got ${rows} x ${cols}`);
    if (data.length !== rows * cols) throw new RangeError(`similarity matrix: data has ${data.length} values, expected ${rows} x ${cols} = ${rows * cols}`);
    return { rows, cols, at: (r, c) => data[r * cols + c]! };
  }
  const m = sim as readonly ArrayLike<number>[];
  const cols = m.length ? m[0]!.length : 0;
  m.forEach((row, r) => {
    if (row.length !== cols) throw new RangeError(`similarity matrix: row ${r} has ${row.length} values, row 0 has ${cols}`);
  });
  return { rows: m.length, cols, at: (r, c) => m[r]![c]! };
}

/**
 * 1-based rank of each query's target among all candidates: 1 + the number of other candidates
 * scoring at least as high (ties and NaN ranked ahead of the target).
 */
export function targetRanks(sim: SimilarityMatrix, targets: readonly number[]): number[] {
  const { rows, cols, at } = rowAccessor(sim);
  if (targets.length !== rows) throw new RangeError(`targets has ${targets.length} entries for ${rows} query rows`);
  return targets.map((t, r) => {
    if (!Number.isInteger(t) || t < 0 || t >= cols) throw new RangeError(`targets[${r}] = ${t} is not a column index below ${cols}`);
    const target = at(r, t);
    let ahead = 0;
    for (let c = 0; c < cols; c++) if (c !== t && !(at(r, c) < target)) ahead++;
    return 1 + ahead;
  });
}

function checkRows(rows: readonly number[] | undefined, n: number, what: string): readonly number[] {
  if (rows === undefined) return Array.from({ length: n }, (_, k) => k);
  rows.forEach((r, k) => {
    if (!Number.isInteger(r) || r < 0 || r >= n) throw new RangeError(`${what}: rows[${k}] = ${r} is not an index below ${n}`);
  });
  return rows;
}

/** Share of the chosen queries (all by default) whose target ranks within the top k. */
export function recallAt(ranks: readonly number[], k: number, rows?: readonly number[]): number {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`recallAt: k must be a positive integer, got ${k}`);
  const use = checkRows(rows, ranks.length, 'recallAt');
  let hit = 0;
  for (const r of use) if (ranks[r]! <= k) hit++;
  return use.length === 0 ? NaN : hit / use.length;
}

export interface RecallResult {
  /** Queries counted. */
  n: number;
  /** Rank of every query's target (all queries, whatever `rows` says). */
  ranks: number[];
  /** Recall at each k: recall[1] is R@1. */
  recall: Record<number, number>;
}

/**
 * Text-to-image Recall@k. `sim[t][i]` is the similarity of text t and image i; `targets[t]` is
 * the image text t describes. `rows` restricts the queries counted (e.g. the affirmative-only
 * subset) while every image stays a candidate.
 */
export function retrievalRecall(sim: SimilarityMatrix, targets: readonly number[], ks: readonly number[] = [1, 5], options: { rows?: readonly number[] } = {}): RecallResult {
  const ranks = targetRanks(sim, targets);
  const rows = checkRows(options.rows, ranks.length, 'retrievalRecall');
  const recall: Record<number, number> = {};
  for (const k of ks) recall[k] = recallAt(ranks, k, rows);
  return { n: rows.length, ranks, recall };
}

/** Index of the single highest score, or -1 when the highest is shared or a score is NaN. */
export function strictArgmax(scores: ArrayLike<number>): number {
  let best = -1;
  for (let j = 0; j < scores.length; j++) {
    const s = scores[j]!;
    if (Number.isNaN(s)) return -1;
    if (best < 0 || s > scores[best]!) best = j;
  }
  for (let j = 0; j < scores.length; j++) if (j !== best && scores[j] === scores[best]!) return -1;
  return best;
}

/** True when `answer` scores strictly above every other option. */
export function isCorrect(scores: ArrayLike<number>, answer: number, where = 'scores'): boolean {
  if (!Number.isInteger(answer) || answer < 0 || answer >= scores.length) {
    throw new RangeError(`${where}: answer ${answer} is not an option index below ${scores.length}`);
  }
  const a = scores[answer]!;
  for (let j = 0; j < scores.length; j++) if (j !== answer && !(scores[j]! < a)) return false;
  return true;
}

/**
 * Claim-set accuracy: per sample one score per claim (counts may differ between samples),
 * correct when the true claim scores strictly highest.
 */
export function claimAccuracy(scores: readonly ArrayLike<number>[], answers: readonly number[]): Accuracy & { perSample: boolean[] } {
  if (scores.length !== answers.length) throw new RangeError(`claimAccuracy: ${scores.length} score lists for ${answers.length} answers`);
  const perSample = scores.map((s, i) => isCorrect(s, answers[i]!, `claimAccuracy sample ${i}`));
  return { ...accuracyOf(perSample.filter(Boolean).length, perSample.length), perSample };
}

/** Accuracy over a subset of per-sample results (all when rows is omitted). */
export function subsetAccuracy(correct: readonly boolean[], rows?: readonly number[]): Accuracy {
  const use = checkRows(rows, correct.length, 'subsetAccuracy');
  let c = 0;
  for (const r of use) if (correct[r]) c++;
  return accuracyOf(c, use.length);
}

/**
 * NegBench's MCQ types (Affirmation, Negation, Hybrid), named after the template of the correct
 * answer; spelled in lower case as the MCQ builder (mcq.ts, NegBenchTemplate) writes them.
 */
export const MCQ_TYPES = ['affirmation', 'negation', 'hybrid'] as const;
export type McqType = (typeof MCQ_TYPES)[number];

export interface ScoredQuestion {
  /** One score per option (e.g. image-option cosine similarity). */
  scores: ArrayLike<number>;
  answer: number;
}

export interface ScoredMcq extends ScoredQuestion {
  /** Template type of the correct answer ("affirmation", "negation", "hybrid" or your own). */
  type: string;
  /** Template type of every option (e.g. "false-negation"), to count which kind the model picks. */
  optionTypes?: readonly string[];
}

export interface McqReport {
  overall: Accuracy;
  /** Always has the three NegBench types (n = 0 when absent), plus any other type seen. */
  byType: Record<string, Accuracy>;
  /** How often the model's pick had each option type; "tie" when no single option won. Only from samples with optionTypes. */
  chosenTypes: Record<string, number>;
}

export function mcqAccuracy(samples: readonly ScoredMcq[]): McqReport {
  const tally = new Map<string, [number, number]>(MCQ_TYPES.map((t) => [t, [0, 0]]));
  const chosenTypes: Record<string, number> = {};
  let correct = 0;
  samples.forEach((s, i) => {
    const ok = isCorrect(s.scores, s.answer, `mcqAccuracy sample ${i}`);
    if (ok) correct++;
    const t = tally.get(s.type) ?? [0, 0];
    t[0] += ok ? 1 : 0;
    t[1] += 1;
    tally.set(s.type, t);
    if (s.optionTypes) {
      if (s.optionTypes.length !== s.scores.length) throw new RangeError(`mcqAccuracy sample ${i}: ${s.optionTypes.length} option types for ${s.scores.length} options`);
      const pick = strictArgmax(s.scores);
      const key = pick < 0 ? 'tie' : s.optionTypes[pick]!;
      chosenTypes[key] = (chosenTypes[key] ?? 0) + 1;
    }
  });
  const byType: Record<string, Accuracy> = {};
  for (const [t, [c, n]] of tally) byType[t] = accuracyOf(c, n);
  return { overall: accuracyOf(correct, samples.length), byType, chosenTypes };
}

export interface PolarityReport {
  affirmative: Accuracy;
  negated: Accuracy;
  /**
   * affirmative.accuracy - negated.accuracy, as in NAST Table 3 ("Gap (Affirmative - Negation)").
   * Positive = the model does better without negation (affirmative bias); nearer 0 is better.
   */
  gap: number;
}

export interface PairedReport extends PolarityReport {
  /** Pairs. */
  n: number;
  bothCorrect: number;
  onlyAffirmative: number;
  onlyNegated: number;
  neither: number;
}

/**
 * The paired benchmark: each question exists as a negated version and an affirmative-equivalent
 * twin with the same correct option; accuracy on each set and the gap between them.
 */
export function pairedAccuracy(pairs: readonly { negated: ScoredQuestion; affirmative: ScoredQuestion }[]): PairedReport {
  let neg = 0, aff = 0, both = 0, onlyA = 0, onlyN = 0;
  pairs.forEach((p, i) => {
    const n = isCorrect(p.negated.scores, p.negated.answer, `pairedAccuracy pair ${i} negated`);
    const a = isCorrect(p.affirmative.scores, p.affirmative.answer, `pairedAccuracy pair ${i} affirmative`);
    if (n) neg++;
    if (a) aff++;
    if (n && a) both++;
    else if (a) onlyA++;
    else if (n) onlyN++;
  });
  const affirmative = accuracyOf(aff, pairs.length);
  const negated = accuracyOf(neg, pairs.length);
  return {
    n: pairs.length, affirmative, negated, gap: affirmative.accuracy - negated.accuracy,
    bothCorrect: both, onlyAffirmative: onlyA, onlyNegated: onlyN, neither: pairs.length - both - onlyA - onlyN,
  };
}

/**
 * Unpaired version (NAST Tables 2-3): per-sample correctness (claim accuracy, or `rank <= k` for
 * retrieval) split by whether the sample carries negation; `affirmative` is the affirmative-only
 * subset. Same gap sign as pairedAccuracy.
 */
export function polarityGap(correct: readonly boolean[], negated: readonly boolean[]): PolarityReport {
  if (correct.length !== negated.length) throw new RangeError(`polarityGap: ${correct.length} results for ${negated.length} negation flags`);
  const affRows: number[] = [], negRows: number[] = [];
  negated.forEach((isNeg, k) => (isNeg ? negRows : affRows).push(k));
  const affirmative = subsetAccuracy(correct, affRows);
  const neg = subsetAccuracy(correct, negRows);
  return { affirmative, negated: neg, gap: affirmative.accuracy - neg.accuracy };
}

const NEGATION_CUE = /\b(?:no|not|without|absent|absence|free of|lacking|lacks|lack of|none|nor|neither|never|nothing|cannot|negative for|ruled out|rules out|rule out|excluded|excludes)\b|n't\b/i;

/**
 * Whether a text carries an explicit negation cue ("no", "not", "without", "absent", "free of",
 * "n't", ...). Use it to flag samples for the affirmative-only subset when the builder did not:
 * a claim set is affirmative-only when none of its texts has a cue. Affirmative equivalents such
 * as "normal heart size" or "sharp costophrenic angles" have none.
 */
export function hasNegationCue(text: string): boolean {
  return NEGATION_CUE.test(text);
}
