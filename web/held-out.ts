/**
 * The train panel's held-out evaluation: the records `data.js build` makes for each held-out
 * study (affirmative and negated captions, claim sets, NegBench MCQs with their Affirmation /
 * Negation / Hybrid templates), scored by the library's `evaluateClip` as `eval.js` scores a
 * split: claim accuracy negated vs affirmative and its gap, MCQ accuracy per template, and
 * text-to-image retrieval R@5.
 */
import {
  buildStudy, evaluateClip, inference, l2Normalize, planEvaluation, type Domain, type EvalRecord, type EvalReport, type Study,
} from './lib-entry.js';
import type { ModelState, PageImage } from './app.js';
import { embedImagesInChunks } from './clip-panel.js';

/**
 * Every study's evaluation records, with the builders' settings of its source (`domain`) and the
 * given seed and claims per set (a study a builder fails on, or too sparse for an MCQ, just has
 * fewer records).
 */
export function heldOutRecords(studies: readonly Study[], domain: Domain, seed: number, k: number): EvalRecord[] {
  const ctx = { kinds: ['captions', 'claims', 'mcq'] as ('captions' | 'claims' | 'mcq')[], seed, k, captions: 1, mcqs: 3, domain, problems: [], none: {} };
  return studies.flatMap((s) => buildStudy(ctx, s));
}

export interface HeldOutSet {
  records: EvalRecord[];
  /** Normalised image embeddings in the evaluation plan's image order (the vision tower is frozen: once). */
  imageEmbeds: Float32Array;
  images: number;
}

/** Embeds the images the records name (in the plan's order), `imageOf` giving each one's pixels. */
export async function prepareHeldOut(
  m: ModelState, records: EvalRecord[], imageOf: (ref: string) => Promise<Omit<PageImage, 'id'>> | Omit<PageImage, 'id'>,
): Promise<HeldOutSet> {
  const refs = planEvaluation(records).images;
  const raw = await embedImagesInChunks(m, refs.length, (i) => imageOf(refs[i]));
  const unit = inference(m.model.ctx, () => l2Normalize(raw, -1));
  raw.dispose();
  const imageEmbeds = await unit.toArray() as Float32Array;
  unit.dispose();
  return { records, imageEmbeds, images: refs.length };
}

/** The model as it is now (with or without its adapter) on the held-out set. */
export async function evaluateHeldOut(m: ModelState, set: HeldOutSet): Promise<EvalReport> {
  const { report } = await evaluateClip(m.model, set.records, { tokenizer: m.tokenizer, imageEmbeds: set.imageEmbeds });
  return report;
}

const pct = (x: number) => (Number.isNaN(x) ? '-' : `${(100 * x).toFixed(1)}%`);
const pts = (x: number) => (Number.isNaN(x) ? '-' : (100 * x).toFixed(1));
const change = (a: number, b: number, f = pct) => `${f(a)} → ${f(b)}`;

/** Summary rows (label, text) of a before / after pair of reports. */
export function heldOutRows(before: EvalReport, after: EvalReport, images: number): [string, string][] {
  const c0 = before.claims;
  const c1 = after.claims;
  const rows: [string, string][] = [];
  rows.push(['held-out claim accuracy', c1.n === 0 ? `no claim sets among ${images} held-out images`
    : `all ${change(c0.accuracy, c1.accuracy)}; negated claims ${change(c0.negated.accuracy, c1.negated.accuracy)} (${c1.negated.n} sets), `
      + `affirmative ${change(c0.affirmative.accuracy, c1.affirmative.accuracy)} (${c1.affirmative.n}); gap (affirmative − negated) ${change(c0.gap, c1.gap, pts)} points `
      + `on ${c1.n} claim sets of ${images} images never trained on`]);
  const m0 = before.mcq;
  const m1 = after.mcq;
  const byType = (['affirmation', 'negation', 'hybrid'] as const)
    .filter((t) => (m1.byType[t]?.n ?? 0) > 0)
    .map((t) => `${t[0].toUpperCase()}${t.slice(1)} ${change(m0.byType[t].accuracy, m1.byType[t].accuracy)} (${m1.byType[t].n})`);
  rows.push(['held-out NegBench MCQ', m1.overall.n === 0 ? 'no MCQs could be built (each needs a present and an absent concept)'
    : `all ${change(m0.overall.accuracy, m1.overall.accuracy)} on ${m1.overall.n} questions; by correct template: ${byType.join(', ')}`]);
  const r0 = before.retrieval;
  const r1 = after.retrieval;
  rows.push(['held-out retrieval R@5', r1.n === 0 ? 'no captions'
    : `affirmative captions ${change(r0.affirmative.r5, r1.affirmative.r5)} (${r1.affirmative.n}), negated ${change(r0.negated.r5, r1.negated.r5)} (${r1.negated.n}), among ${r1.images} images`]);
  return rows;
}
