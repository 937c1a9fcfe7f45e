/**
 * Evaluation of a CLIP model (with or without LoRA attached) on built negation data: single-caption
 * text-to-image retrieval R@1/R@5, claim-set accuracy (NAST Tables 1-2), NegBench MCQ accuracy
 * overall and per template type, the paired negated/affirmative benchmark and its gap (NAST
 * Table 3), and the affirmative-only subset scores. Browser-safe: images come in through a
 * loader the caller provides (Node decodes files, a browser its own way).
 *
 * Three steps, so the arithmetic can be tested without a model:
 *   planEvaluation(records)          which images, which texts, which questions
 *   scores (GPU: evaluateClip; CPU: scoresFromEmbeddings)
 *   reportFromScores(plan, scores)   the numbers, through src/data/metrics.ts
 *
 * Scores are cosine similarities of L2-normalised embeddings (CLIP's logit scale is a positive
 * factor and changes no ranking). Retrieval ranks every query's image among all distinct images of
 * the records (the split's images); options are scored against their question's image only.
 *
 * Polarity: a retrieval query is negated when its caption has an explicit negation cue; a claim
 * set when its true claim has one (sets built around absent facts, whose true claim states the
 * absence). The paired benchmark's polarity is its twin.
 */
import { inference, l2Normalize, matmul, tensor, type Tensor } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import type { Tokenizer } from '../models/tokenizer/index.js';
import type { EvalRecord } from '../data/records.js';
import {
  claimAccuracy, hasNegationCue, mcqAccuracy, pairedAccuracy, polarityGap, recallAt, targetRanks,
  type Accuracy, type McqReport, type PairedReport,
} from '../data/metrics.js';
import { cutAtPool } from '../models/text-rows.js';
import { markdownTable } from '../io/report.js';

/** Record kinds that are single captions (retrieval queries). */
export const CAPTION_RECORD_KINDS = ['caption', 'negated-caption', 'retrieval-neg-caption'] as const;
/** @deprecated the record kinds scored as captions: CAPTION_RECORD_KINDS (train-data's CAPTION_KINDS are --clip-captions choices). */
export const CAPTION_KINDS = CAPTION_RECORD_KINDS;

export interface RetrievalQuery {
  text: string;
  /** Index into plan.images. */
  image: number;
  negated: boolean;
  kind: string;
}

export interface PlannedQuestion {
  image: number;
  /** Indices into plan.texts. */
  options: number[];
  answer: number;
}

export interface PlannedClaimSet extends PlannedQuestion {
  negated: boolean;
}

export interface PlannedMcq extends PlannedQuestion {
  type: string;
  optionTypes: string[];
}

export interface PlannedPair {
  image: number;
  negated: PlannedQuestion;
  affirmative: PlannedQuestion;
}

export interface EvalPlan {
  /** Distinct image references, in first-seen order. */
  images: string[];
  /** Distinct option texts (claims, MCQ options, paired options), in first-seen order. */
  texts: string[];
  queries: RetrievalQuery[];
  claims: PlannedClaimSet[];
  mcqs: PlannedMcq[];
  paired: PlannedPair[];
  /** Records per kind, as given. */
  kinds: Record<string, number>;
  /** Records no score is computed for (probe pairs: the tracer's input), per kind. */
  ignored: Record<string, number>;
}

export class EvalInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalInputError';
  }
}

function checkQuestion(where: string, options: unknown, answer: unknown): asserts options is string[] {
  if (!Array.isArray(options) || options.length < 2 || options.some((o) => typeof o !== 'string')) {
    throw new EvalInputError(`${where}: options must be a list of at least two strings`);
  }
  if (typeof answer !== 'number' || !Number.isInteger(answer) || answer < 0 || answer >= options.length) {
    throw new EvalInputError(`${where}: answer ${JSON.stringify(answer)} is not an index below ${options.length}`);
  }
}

/** Which images, texts and questions the records ask for. Throws, naming the record, on malformed ones. */
export function planEvaluation(records: readonly EvalRecord[]): EvalPlan {
  const imageIndex = new Map<string, number>();
  const textIndex = new Map<string, number>();
  const plan: EvalPlan = { images: [], texts: [], queries: [], claims: [], mcqs: [], paired: [], kinds: {}, ignored: {} };
  const image = (ref: unknown, where: string): number => {
    if (typeof ref !== 'string' || ref === '') throw new EvalInputError(`${where}: image must be a non-empty string`);
    let k = imageIndex.get(ref);
    if (k === undefined) {
      k = plan.images.length;
      plan.images.push(ref);
      imageIndex.set(ref, k);
    }
    return k;
  };
  const text = (t: string): number => {
    let k = textIndex.get(t);
    if (k === undefined) {
      k = plan.texts.length;
      plan.texts.push(t);
      textIndex.set(t, k);
    }
    return k;
  };
  records.forEach((r, i) => {
    const kind = (r as { kind?: unknown })?.kind;
    if (typeof kind !== 'string') throw new EvalInputError(`record ${i}: no "kind"`);
    const where = `record ${i} (${kind}${typeof r.studyId === 'string' ? ` ${r.studyId}` : ''})`;
    plan.kinds[kind] = (plan.kinds[kind] ?? 0) + 1;
    switch (r.kind) {
      case 'caption':
      case 'negated-caption':
      case 'retrieval-neg-caption': {
        if (typeof r.caption !== 'string' || r.caption.trim() === '') throw new EvalInputError(`${where}: caption must be a non-empty string`);
        plan.queries.push({ text: r.caption, image: image(r.image, where), negated: hasNegationCue(r.caption), kind: r.kind });
        break;
      }
      case 'claim-set': {
        const texts = Array.isArray(r.claims) ? r.claims.map((c) => c?.text) : undefined;
        checkQuestion(where, texts, r.answer);
        plan.claims.push({ image: image(r.image, where), options: texts.map(text), answer: r.answer, negated: hasNegationCue(texts[r.answer]!) });
        break;
      }
      case 'negbench-mcq': {
        checkQuestion(where, r.options, r.answer);
        const types = Array.isArray(r.optionTypes) && r.optionTypes.length === r.options.length ? r.optionTypes.map(String) : [];
        plan.mcqs.push({ image: image(r.image, where), options: r.options.map(text), answer: r.answer, type: String(r.answerType), optionTypes: types });
        break;
      }
      case 'paired-mcq': {
        checkQuestion(`${where} negated twin`, r.negated?.options, r.negated?.answer);
        checkQuestion(`${where} affirmative twin`, r.affirmative?.options, r.affirmative?.answer);
        const img = image(r.image, where);
        plan.paired.push({
          image: img,
          negated: { image: img, options: r.negated.options.map(text), answer: r.negated.answer },
          affirmative: { image: img, options: r.affirmative.options.map(text), answer: r.affirmative.answer },
        });
        break;
      }
      default:
        plan.ignored[kind] = (plan.ignored[kind] ?? 0) + 1;
    }
  });
  return plan;
}

/** Whether the plan has anything to score. */
export function planIsEmpty(plan: EvalPlan): boolean {
  return plan.queries.length + plan.claims.length + plan.mcqs.length + plan.paired.length === 0;
}

/** What the metrics need from a model. */
export interface PlanScores {
  /** 1-based rank of each retrieval query's image among all plan images (ties against the model). */
  ranks: readonly number[];
  /** Similarity of option text t (plan.texts index) and image i. */
  score(text: number, image: number): number;
}

export interface RecallAt {
  n: number;
  r1: number;
  r5: number;
}

export interface RetrievalReport extends RecallAt {
  /** Candidate images. */
  images: number;
  affirmative: RecallAt;
  negated: RecallAt;
  /** affirmative - negated, per k (NAST's gap sign: positive = affirmative bias). */
  gap: { r1: number; r5: number };
  /** Per caption kind ("caption", "negated-caption", "retrieval-neg-caption"). */
  byKind: Record<string, RecallAt>;
}

export interface ClaimReport extends Accuracy {
  affirmative: Accuracy;
  negated: Accuracy;
  gap: number;
}

export interface EvalReport {
  counts: {
    images: number;
    texts: number;
    queries: number;
    claimSets: number;
    mcqs: number;
    pairedMcqs: number;
    /** Texts longer than the model's context, cut (CLIP evaluation truncates as open_clip does). */
    truncatedTexts: number;
    kinds: Record<string, number>;
    ignored: Record<string, number>;
  };
  retrieval: RetrievalReport;
  claims: ClaimReport;
  mcq: McqReport;
  paired: PairedReport;
}

function recallOf(ranks: readonly number[], rows: readonly number[]): RecallAt {
  return { n: rows.length, r1: recallAt(ranks, 1, rows), r5: recallAt(ranks, 5, rows) };
}

const scoresOf = (q: PlannedQuestion, s: PlanScores): number[] => q.options.map((t) => s.score(t, q.image));

/** The report from scores; every rate is a fraction in [0, 1], NaN over zero samples. */
export function reportFromScores(plan: EvalPlan, scores: PlanScores, extra: { truncatedTexts?: number } = {}): EvalReport {
  if (scores.ranks.length !== plan.queries.length) {
    throw new EvalInputError(`scores: ${scores.ranks.length} retrieval ranks for ${plan.queries.length} queries`);
  }
  const ranks = scores.ranks;
  const all = plan.queries.map((_, k) => k);
  const affRows = all.filter((k) => !plan.queries[k]!.negated);
  const negRows = all.filter((k) => plan.queries[k]!.negated);
  const aff = recallOf(ranks, affRows);
  const neg = recallOf(ranks, negRows);
  const byKind: Record<string, RecallAt> = {};
  for (const kind of new Set(plan.queries.map((q) => q.kind))) byKind[kind] = recallOf(ranks, all.filter((k) => plan.queries[k]!.kind === kind));
  const retrieval: RetrievalReport = {
    ...recallOf(ranks, all), images: plan.images.length, affirmative: aff, negated: neg,
    gap: { r1: aff.r1 - neg.r1, r5: aff.r5 - neg.r5 }, byKind,
  };

  const claimScores = claimAccuracy(plan.claims.map((c) => scoresOf(c, scores)), plan.claims.map((c) => c.answer));
  const claimPolarity = polarityGap(claimScores.perSample, plan.claims.map((c) => c.negated));
  const claims: ClaimReport = {
    n: claimScores.n, correct: claimScores.correct, accuracy: claimScores.accuracy,
    affirmative: claimPolarity.affirmative, negated: claimPolarity.negated, gap: claimPolarity.gap,
  };

  const mcq = mcqAccuracy(plan.mcqs.map((m) => ({ scores: scoresOf(m, scores), answer: m.answer, type: m.type, ...(m.optionTypes.length ? { optionTypes: m.optionTypes } : {}) })));
  const paired = pairedAccuracy(plan.paired.map((p) => ({
    negated: { scores: scoresOf(p.negated, scores), answer: p.negated.answer },
    affirmative: { scores: scoresOf(p.affirmative, scores), answer: p.affirmative.answer },
  })));
  return {
    counts: {
      images: plan.images.length, texts: plan.texts.length, queries: plan.queries.length, claimSets: plan.claims.length,
      mcqs: plan.mcqs.length, pairedMcqs: plan.paired.length, truncatedTexts: extra.truncatedTexts ?? 0,
      kinds: { ...plan.kinds }, ignored: { ...plan.ignored },
    },
    retrieval, claims, mcq, paired,
  };
}

// ---------------------------------------------------------------------------------------------
// Scores from embeddings on the CPU (tests, or embeddings computed elsewhere)

function normalised(v: ArrayLike<number>): Float64Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv;
  return out;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Cosine scores from embeddings: one per retrieval query (plan.queries order), one per option
 * text (plan.texts order) and one per image (plan.images order); any length, normalised here.
 */
export function scoresFromEmbeddings(
  plan: EvalPlan,
  emb: { queries: readonly ArrayLike<number>[]; texts: readonly ArrayLike<number>[]; images: readonly ArrayLike<number>[] },
): PlanScores {
  const check = (what: string, got: number, want: number) => {
    if (got !== want) throw new EvalInputError(`scoresFromEmbeddings: ${got} ${what} embeddings for ${want} ${what}`);
  };
  check('queries', emb.queries.length, plan.queries.length);
  check('texts', emb.texts.length, plan.texts.length);
  check('images', emb.images.length, plan.images.length);
  const images = emb.images.map(normalised);
  const texts = emb.texts.map(normalised);
  const sim = emb.queries.map((q) => {
    const n = normalised(q);
    return images.map((im) => dot(n, im));
  });
  return {
    ranks: targetRanks(sim, plan.queries.map((q) => q.image)),
    score: (t, i) => dot(texts[t]!, images[i]!),
  };
}

// ---------------------------------------------------------------------------------------------
// Scores from a CLIP model on the engine

export interface EvaluateOptions {
  /** CLIP BPE or the world's word tokenizer. */
  tokenizer: Tokenizer;
  /**
   * Preprocessed pixels [n, 3, size, size] of the given image references (plan.images entries).
   * Not needed when `imageEmbeds` is given.
   */
  loadPixels?: (images: readonly string[]) => Promise<Float32Array>;
  /** Normalised image embeddings [plan.images.length, projection_dim] from an earlier run to reuse. */
  imageEmbeds?: Float32Array;
  /** Texts (and images) per forward pass; default 64. */
  batchSize?: number;
  /** Called after each batch: phase, items done, items in the phase. */
  onProgress?: (phase: 'images' | 'captions' | 'options', done: number, total: number) => void;
}

export interface EvaluateResult {
  report: EvalReport;
  plan: EvalPlan;
  /** The scores the report was computed from (per-sample analysis). */
  scores: PlanScores;
  /** Normalised image embeddings, row per plan image: pass back as `imageEmbeds` to reuse. */
  imageEmbeds: Float32Array;
}

/** Tokenises texts at the model's context length (longer ones cut: `tokenCounts` says which). */
function tokenizeFor(model: ClipModel, tok: Tokenizer, texts: readonly string[]): Int32Array {
  const full = tok.tokenize(texts, { contextLength: model.config.text.maxPositions, truncate: true });
  // Positions after the longest end-of-text token cannot reach any pooled output (causal mask).
  return cutAtPool(full, texts.length, model.config.text.eosTokenId).ids;
}

/** Each text's token count with its start and end tokens: above the context length it is cut. */
export function tokenCounts(tok: Tokenizer, texts: readonly string[]): number[] {
  return texts.map((t) => tok.encode(t).length + 2);
}

/**
 * Indices by token count, shortest first (ties in order): each batch is cut at its own longest
 * text, so batches of like lengths carry little padding (the miniature's test split: 39 % fewer
 * token positions than in record order). A text's embedding does not depend on the others in
 * its batch.
 */
export function byTokenCount(counts: readonly number[]): number[] {
  return counts.map((_, i) => i).sort((a, b) => counts[a]! - counts[b]! || a - b);
}

function checkBatchSize(b: number): number {
  if (!Number.isInteger(b) || b < 1) throw new EvalInputError(`batchSize must be a positive integer, got ${b}`);
  return b;
}

/**
 * Scores every record with the model as it is (attach or detach LoRA before calling). Each batch
 * runs without autograd and is read back once.
 */
/** Metrics of NaN scores would read as plain zeros: fail instead, saying where. */
function requireFinite(data: Float32Array, what: string): void {
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new EvalInputError(`the model gave non-finite ${what} (${data[bad]} at element ${bad}): its weights or adapter are broken`);
}

export async function evaluateClip(model: ClipModel, records: readonly EvalRecord[], opts: EvaluateOptions): Promise<EvaluateResult> {
  const plan = planEvaluation(records);
  if (planIsEmpty(plan)) throw new EvalInputError('no records to evaluate (no captions, claim sets or MCQs)');
  const batch = checkBatchSize(opts.batchSize ?? 64);
  const ctx = model.ctx;
  const dim = model.config.projectionDim;
  const nImg = plan.images.length;

  let imageEmbeds: Float32Array;
  if (opts.imageEmbeds) {
    if (opts.imageEmbeds.length !== nImg * dim) {
      throw new EvalInputError(`imageEmbeds has ${opts.imageEmbeds.length} values, expected ${nImg} images x ${dim}`);
    }
    imageEmbeds = opts.imageEmbeds;
  } else {
    if (!opts.loadPixels) throw new EvalInputError('evaluateClip: give loadPixels or imageEmbeds');
    imageEmbeds = new Float32Array(nImg * dim);
    for (let s = 0; s < nImg; s += batch) {
      const refs = plan.images.slice(s, s + batch);
      const pixels = await opts.loadPixels(refs);
      const out = inference(ctx, () => l2Normalize(model.encodeImage(pixels, refs.length).embeds, -1));
      imageEmbeds.set(await out.toArray() as Float32Array, s * dim);
      out.dispose();
      opts.onProgress?.('images', Math.min(s + batch, nImg), nImg);
    }
  }

  const ctxLen = model.config.text.maxPositions;
  const queryCounts = tokenCounts(opts.tokenizer, plan.queries.map((q) => q.text));
  const textCounts = tokenCounts(opts.tokenizer, plan.texts);
  const truncated = [...queryCounts, ...textCounts].filter((n) => n > ctxLen).length;
  const nq = plan.queries.length;
  const ranks: number[] = new Array(nq);
  const imgT: Tensor = tensor(ctx, imageEmbeds, [nImg, dim]);
  try {
    const order = byTokenCount(queryCounts);
    for (let s = 0; s < nq; s += batch) {
      const idx = order.slice(s, s + batch);
      const qs = idx.map((k) => plan.queries[k]!);
      const ids = tokenizeFor(model, opts.tokenizer, qs.map((q) => q.text));
      const sim = inference(ctx, () => matmul(l2Normalize(model.encodeText(ids, qs.length).embeds, -1), imgT, { transB: true }));
      const data = await sim.toArray();
      sim.dispose();
      requireFinite(data as Float32Array, `caption similarities ${s}..${s + qs.length - 1}`);
      targetRanks({ data, rows: qs.length, cols: nImg }, qs.map((q) => q.image)).forEach((r, j) => { ranks[idx[j]!] = r; });
      opts.onProgress?.('captions', Math.min(s + batch, nq), nq);
    }
  } finally {
    imgT.dispose();
  }

  const nt = plan.texts.length;
  const textEmbeds = new Float32Array(nt * dim);
  const order = byTokenCount(textCounts);
  for (let s = 0; s < nt; s += batch) {
    const idx = order.slice(s, s + batch);
    const texts = idx.map((k) => plan.texts[k]!);
    const ids = tokenizeFor(model, opts.tokenizer, texts);
    const out = inference(ctx, () => l2Normalize(model.encodeText(ids, texts.length).embeds, -1));
    const data = await out.toArray() as Float32Array;
    out.dispose();
    idx.forEach((k, j) => textEmbeds.set(data.subarray(j * dim, (j + 1) * dim), k * dim));
    opts.onProgress?.('options', Math.min(s + batch, nt), nt);
  }

  requireFinite(imageEmbeds, 'image embeddings');
  requireFinite(textEmbeds, 'text embeddings');
  const score = (t: number, i: number): number => {
    let acc = 0;
    const a = t * dim;
    const b = i * dim;
    for (let d = 0; d < dim; d++) acc += textEmbeds[a + d]! * imageEmbeds[b + d]!;
    return acc;
  };
  const scores: PlanScores = { ranks, score };
  return { report: reportFromScores(plan, scores, { truncatedTexts: truncated }), plan, scores, imageEmbeds };
}

// ---------------------------------------------------------------------------------------------
// Tables

const pct = (v: number): number | null => (Number.isNaN(v) ? null : 100 * v);

/** The main table (NAST Tables 1 and 3, NegBench MCQ): one row per model, percentages. */
export function reportTable(rows: readonly { name: string; report: EvalReport }[]): string {
  const headers = ['Model', 'R@1', 'R@5', 'Claim acc', 'MCQ acc', 'Affirmation', 'Negation', 'Hybrid', 'Paired negated', 'Paired affirmative', 'Paired gap'];
  const body = rows.map(({ name, report: r }) => [
    name, pct(r.retrieval.r1), pct(r.retrieval.r5), pct(r.claims.accuracy), pct(r.mcq.overall.accuracy),
    pct(r.mcq.byType['affirmation']?.accuracy ?? NaN), pct(r.mcq.byType['negation']?.accuracy ?? NaN), pct(r.mcq.byType['hybrid']?.accuracy ?? NaN),
    pct(r.paired.negated.accuracy), pct(r.paired.affirmative.accuracy), pct(r.paired.gap),
  ]);
  return markdownTable(headers, body, { digits: 1, align: headers.map((_, i) => (i === 0 ? 'left' : 'right')) });
}

/** Affirmative-only subset (NAST Table 2) and the affirmative - negated gaps, percentages. */
export function subsetTable(rows: readonly { name: string; report: EvalReport }[]): string {
  const headers = ['Model', 'R@1 (affirmative)', 'R@5 (affirmative)', 'Claim acc (affirmative)', 'R@1 (negated)', 'R@5 (negated)', 'Claim acc (negated)', 'R@1 gap', 'R@5 gap', 'Claim gap'];
  const body = rows.map(({ name, report: r }) => [
    name, pct(r.retrieval.affirmative.r1), pct(r.retrieval.affirmative.r5), pct(r.claims.affirmative.accuracy),
    pct(r.retrieval.negated.r1), pct(r.retrieval.negated.r5), pct(r.claims.negated.accuracy),
    pct(r.retrieval.gap.r1), pct(r.retrieval.gap.r5), pct(r.claims.gap),
  ]);
  return markdownTable(headers, body, { digits: 1, align: headers.map((_, i) => (i === 0 ? 'left' : 'right')) });
}

/** Both tables with a line of sample counts: what the eval CLI prints and writes as Markdown. */
export function reportMarkdown(rows: readonly { name: string; report: EvalReport }[], title = 'Evaluation'): string {
  if (rows.length === 0) throw new EvalInputError('reportMarkdown: no rows');
  const c = rows[0]!.report;
  const counts = `Samples: ${c.retrieval.n} retrieval captions over ${c.retrieval.images} images (${c.retrieval.affirmative.n} affirmative, ${c.retrieval.negated.n} negated), `
    + `${c.claims.n} claim sets, ${c.mcq.overall.n} NegBench MCQs, ${c.paired.n} paired MCQs. Percentages; empty cells have no samples.`;
  return `## ${title}\n\n${reportTable(rows)}\n### Affirmative-only subset and gaps (affirmative - negated)\n\n${subsetTable(rows)}\n${counts}\n`;
}
