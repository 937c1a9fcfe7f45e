/**
 * NegBench's and NAST's published benchmarks scored on a CLIP model, with NegBench's metrics and
 * key names (benchmarks/src/evaluation in m1k2zoo/negbench): MCQ accuracy overall and by the
 * correct answer's template (positive, negative, hybrid), retrieval recall@1/5 in both
 * directions (a text finds its image: "image_retrieval"; an image finds any of its captions:
 * "text_retrieval"), and NAST's paired negated / affirmative MCQs. Browser-safe: images come
 * through the caller's pixel loader.
 */
import { inference, l2Normalize } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import type { Tokenizer } from '../models/tokenizer/index.js';
import { strictArgmax, type Accuracy, type PairedReport } from '../data/metrics.js';
import type { NastMcqRow, NegBenchMcqRow, NegBenchRetrievalRow } from '../data/negbench-files.js';
import { evaluateClip } from './evaluate.js';
import type { EvalRecord } from '../data/records.js';
import { cutAtPool } from '../models/text-rows.js';

export interface BenchmarkOptions {
  tokenizer: Tokenizer;
  /** Preprocessed pixels [n, 3, size, size] of image references as the rows give them. */
  loadPixels: (images: readonly string[]) => Promise<Float32Array>;
  batchSize?: number;
}

const TEMPLATE_TYPE = { positive: 'affirmation', negative: 'negation', hybrid: 'hybrid' } as const;

export interface NegBenchMcqResult {
  n: number;
  accuracy: number;
  by_template: { positive: Accuracy; negative: Accuracy; hybrid: Accuracy };
  /** Per question, in file order: its CSV line, the option chosen (-1 on a tie) and whether it is right. */
  predictions: { line: number; predicted: number; correct: boolean }[];
}

export async function negBenchMcq(model: ClipModel, rows: readonly NegBenchMcqRow[], o: BenchmarkOptions): Promise<NegBenchMcqResult> {
  const records = rows.map((r): EvalRecord => ({
    kind: 'negbench-mcq', studyId: `line-${r.line}`, image: r.image, options: r.options, optionTypes: [], answer: r.answer,
    // The binary variant has no template: its questions count in the overall accuracy only.
    answerType: (r.template ? TEMPLATE_TYPE[r.template] : 'binary') as 'affirmation', positives: [], negative: '',
  }));
  const { report, plan, scores } = await evaluateClip(model, records, { tokenizer: o.tokenizer, loadPixels: o.loadPixels, batchSize: o.batchSize });
  const byType = report.mcq.byType;
  const predictions = plan.mcqs.map((q, i) => {
    const predicted = strictArgmax(q.options.map((t) => scores.score(t, q.image)));
    return { line: rows[i].line, predicted, correct: predicted === q.answer };
  });
  return {
    n: report.mcq.overall.n, accuracy: report.mcq.overall.accuracy,
    by_template: { positive: byType.affirmation, negative: byType.negation, hybrid: byType.hybrid },
    predictions,
  };
}

export interface NegBenchRetrievalResult {
  n_queries: number;
  n_images: number;
  text_to_image_r1: number;
  text_to_image_r5: number;
  image_to_text_r1: number;
  image_to_text_r5: number;
}

/** Unit-normalised embeddings of texts [n, dim], in batches, on the host. */
async function textEmbeddings(model: ClipModel, tok: Tokenizer, texts: readonly string[], batch: number): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const t = model.config.text.maxPositions;
  const out = new Float32Array(texts.length * dim);
  for (let s = 0; s < texts.length; s += batch) {
    const part = texts.slice(s, s + batch);
    const full = tok.tokenize(part, { contextLength: t, truncate: true });
    const { ids } = cutAtPool(full, part.length, model.config.text.eosTokenId);
    const e = inference(model.ctx, () => l2Normalize(model.encodeText(ids, part.length).embeds, -1));
    out.set((await e.toArray()) as Float32Array, s * dim);
    e.dispose();
  }
  return out;
}

async function imageEmbeddings(model: ClipModel, images: readonly string[], o: BenchmarkOptions, batch: number): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const out = new Float32Array(images.length * dim);
  for (let s = 0; s < images.length; s += batch) {
    const part = images.slice(s, s + batch);
    const px = await o.loadPixels(part);
    const e = inference(model.ctx, () => l2Normalize(model.encodeImage(px, part.length).embeds, -1));
    out.set((await e.toArray()) as Float32Array, s * dim);
    e.dispose();
  }
  return out;
}

/**
 * Recall@k as NegBench computes it: a caption scores a hit when its own image is among the k
 * images it scores highest (ties against the model here); an image when any of its captions is
 * among the k captions it scores highest.
 */
export async function negBenchRetrieval(model: ClipModel, rows: readonly NegBenchRetrievalRow[], o: BenchmarkOptions): Promise<NegBenchRetrievalResult> {
  const batch = o.batchSize ?? 64;
  const dim = model.config.projectionDim;
  const images = rows.map((r) => r.image);
  const texts: string[] = [];
  const owner: number[] = [];
  rows.forEach((r, i) => r.captions.forEach((c) => { texts.push(c); owner.push(i); }));
  const img = await imageEmbeddings(model, images, o, batch);
  const txt = await textEmbeddings(model, o.tokenizer, texts, batch);
  const nI = images.length;
  const nT = texts.length;
  const sim = new Float32Array(nT * nI);
  for (let t = 0; t < nT; t++) {
    for (let i = 0; i < nI; i++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += txt[t * dim + d] * img[i * dim + d];
      sim[t * nI + i] = s;
    }
  }
  let t1 = 0;
  let t5 = 0;
  for (let t = 0; t < nT; t++) {
    const own = sim[t * nI + owner[t]];
    let ahead = 0;
    for (let i = 0; i < nI; i++) if (i !== owner[t] && sim[t * nI + i] >= own) ahead++;
    if (ahead < 1) t1++;
    if (ahead < 5) t5++;
  }
  let i1 = 0;
  let i5 = 0;
  for (let i = 0; i < nI; i++) {
    let best = -Infinity;
    for (let t = 0; t < nT; t++) if (owner[t] === i) best = Math.max(best, sim[t * nI + i]);
    let ahead = 0;
    for (let t = 0; t < nT; t++) if (owner[t] !== i && sim[t * nI + i] >= best) ahead++;
    if (ahead < 1) i1++;
    if (ahead < 5) i5++;
  }
  return { n_queries: nT, n_images: nI, text_to_image_r1: t1 / nT, text_to_image_r5: t5 / nT, image_to_text_r1: i1 / nI, image_to_text_r5: i5 / nI };
}

export interface NastMcqResult extends PairedReport {
  predictions: { line: number; negated: number; affirmative: number }[];
}

/** NAST's paired benchmark: each question negated and affirmative-equivalent, and the gap. */
export async function nastMcq(model: ClipModel, rows: readonly NastMcqRow[], o: BenchmarkOptions): Promise<NastMcqResult> {
  const records = rows.map((r): EvalRecord => ({ kind: 'paired-mcq', studyId: `line-${r.line}`, image: r.image, negated: r.negated, affirmative: r.affirmative } as unknown as EvalRecord));
  const { report, plan, scores } = await evaluateClip(model, records, { tokenizer: o.tokenizer, loadPixels: o.loadPixels, batchSize: o.batchSize });
  const pick = (q: { options: number[]; image: number }) => strictArgmax(q.options.map((t) => scores.score(t, q.image)));
  return {
    ...report.paired,
    predictions: plan.paired.map((p, i) => ({ line: rows[i].line, negated: pick(p.negated), affirmative: pick(p.affirmative) })),
  };
}

/**
 * One line of NegBench's results.jsonl for these results: their key names under a dataset
 * prefix (e.g. "coco-mcq-total_accuracy", "coco-image_retrieval_recall@5").
 */
export function negBenchResultsLine(prefix: string, mcq: NegBenchMcqResult | null, retrieval: NegBenchRetrievalResult | null): Record<string, number> {
  const out: Record<string, number> = {};
  if (mcq) {
    out[`${prefix}-mcq-total_accuracy`] = mcq.accuracy;
    out[`${prefix}-mcq-positive_accuracy`] = mcq.by_template.positive.accuracy;
    out[`${prefix}-mcq-negative_accuracy`] = mcq.by_template.negative.accuracy;
    out[`${prefix}-mcq-hybrid_accuracy`] = mcq.by_template.hybrid.accuracy;
  }
  if (retrieval) {
    out[`${prefix}-image_retrieval_recall@1`] = retrieval.text_to_image_r1;
    out[`${prefix}-image_retrieval_recall@5`] = retrieval.text_to_image_r5;
    out[`${prefix}-text_retrieval_recall@1`] = retrieval.image_to_text_r1;
    out[`${prefix}-text_retrieval_recall@5`] = retrieval.image_to_text_r5;
  }
  return out;
}
