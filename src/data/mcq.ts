/**
 * NegBench's MCQ-Neg (section 3.1): for an image with positive concepts (present) and negative
 * concepts (absent), one correct description of the Affirmation, Negation or Hybrid template and
 * three hard negatives that misplace the negation.
 */
import type { Study } from './facts.js';
import { choice, rngFor, sample, shuffle } from './rng.js';
import { checkStudy, indefiniteArticle } from './templates.js';

export type NegBenchTemplate = 'affirmation' | 'negation' | 'hybrid';
export const NEGBENCH_TEMPLATES: readonly NegBenchTemplate[] = ['affirmation', 'negation', 'hybrid'];

/** The correct templates, and the wrong ones: a hybrid with its halves swapped, a false affirmation, a false negation. */
export type NegBenchOptionType = NegBenchTemplate | 'false-hybrid' | 'false-affirmation' | 'false-negation';

export interface NegBenchMcq {
  kind: 'negbench-mcq';
  studyId: string;
  image: string;
  options: string[];
  /** Aligned with `options`; exactly one is not a 'false-' type. */
  optionTypes: NegBenchOptionType[];
  answer: number;
  answerType: NegBenchTemplate;
  /** [A, B], or [A] when the image has one positive concept (then A = B in the templates). */
  positives: string[];
  negative: string;
}

export interface NegBenchMcqOptions {
  seed: number;
  /** The dataset's concepts, to draw a negative from when the study has no absent facts. */
  vocabulary?: readonly string[];
  /** Fix the correct template instead of drawing it. */
  answerType?: NegBenchTemplate;
  /** Put "a"/"an" before concepts ("a dog"); radiology findings go without. Default false. */
  article?: boolean;
  /**
   * Which of a study's MCQs this is (0, 1, ...): each variant draws its own concepts and option
   * order; variant 0 is the study's first (and, before variants existed, only) MCQ.
   */
  variant?: number;
}

/** Present conditions, each once, in fact order. */
export function positiveConcepts(study: Study): string[] {
  return [...new Set(study.facts.filter((f) => f.existence === 'present').map((f) => f.condition))];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether a caption names the concept (singular or plural), so it cannot be called absent. */
const mentionRes = new Map<string, RegExp>();
function mentions(captions: readonly string[], concept: string): boolean {
  if (captions.length === 0) return false;
  let re = mentionRes.get(concept);
  if (re === undefined) {
    re = new RegExp(`\\b${escapeRegExp(concept)}(?:s|es)?\\b`, 'i');
    // Bounded by the vocabulary in practice; the cap guards against unbounded free-text concepts.
    if (mentionRes.size < 10_000) mentionRes.set(concept, re);
  }
  return captions.some((c) => re.test(c));
}

/**
 * Concepts known to be absent. The study's absent facts when it has any; otherwise vocabulary
 * concepts that are neither present nor named in the image's captions (a caption naming one
 * means the annotations missed it).
 */
export function negativeConcepts(study: Study, vocabulary: readonly string[] = []): string[] {
  const pos = new Set(positiveConcepts(study));
  const absent = [...new Set(study.facts.filter((f) => f.existence === 'absent').map((f) => f.condition))].filter((c) => !pos.has(c));
  if (absent.length > 0) return absent;
  const caps = study.captions ?? [];
  return [...new Set(vocabulary)].filter((c) => !pos.has(c) && !mentions(caps, c));
}

/** Every condition named in the studies, sorted: a dataset's concept vocabulary. */
export function conceptVocabulary(studies: readonly Study[]): string[] {
  const all = new Set<string>();
  for (const s of studies) for (const f of s.facts) all.add(f.condition);
  return [...all].sort();
}

function checkVocabulary(vocabulary: readonly string[] | undefined, where: string): void {
  if (vocabulary === undefined) return;
  if (!Array.isArray(vocabulary)) throw new TypeError(`${where}: vocabulary must be an array of strings`);
  vocabulary.forEach((v, i) => {
    if (typeof v !== 'string' || v.trim() === '') throw new TypeError(`${where}: vocabulary[${i}] must be a non-empty string`);
  });
}

/** Null when the image lacks a positive or a negative concept. */
export function buildNegBenchMcq(study: Study, opts: NegBenchMcqOptions): NegBenchMcq | null {
  checkStudy(study);
  checkVocabulary(opts.vocabulary, `study ${study.id}`);
  if (opts.answerType !== undefined && !NEGBENCH_TEMPLATES.includes(opts.answerType)) {
    throw new RangeError(`answerType must be one of ${NEGBENCH_TEMPLATES.join(', ')}, got ${JSON.stringify(opts.answerType)}`);
  }
  const pos = positiveConcepts(study);
  const neg = negativeConcepts(study, opts.vocabulary);
  if (pos.length === 0 || neg.length === 0) return null;
  const variant = opts.variant ?? 0;
  if (!Number.isInteger(variant) || variant < 0) throw new RangeError(`variant must be a non-negative integer, got ${String(variant)}`);
  const rng = variant === 0 ? rngFor(opts.seed, 'negbench-mcq', study.id) : rngFor(opts.seed, 'negbench-mcq', study.id, variant);
  const positives = sample(rng, pos, 2);
  const negative = choice(rng, neg);
  const answerType = opts.answerType ?? choice(rng, NEGBENCH_TEMPLATES);

  const np = (c: string): string => (opts.article ? `${indefiniteArticle(c)} ${c}` : c);
  const A = np(positives[0]);
  const B = np(positives[positives.length - 1]);
  const N = np(negative);
  const texts: Record<NegBenchOptionType, string> = {
    affirmation: positives.length > 1 ? `This image features ${A} and ${B}.` : `This image features ${A}.`,
    negation: `This image does not feature ${N}.`,
    hybrid: `This image features ${B}, but not ${N}.`,
    'false-hybrid': `This image features ${N}, but not ${B}.`,
    'false-affirmation': `This image features ${N}.`,
    'false-negation': `This image does not feature ${A}.`,
  };
  const types = shuffle(rng, [answerType, 'false-hybrid', 'false-affirmation', 'false-negation'] as NegBenchOptionType[]);
  return {
    kind: 'negbench-mcq',
    studyId: study.id,
    image: study.image,
    options: types.map((t) => texts[t]),
    optionTypes: types,
    answer: types.indexOf(answerType),
    answerType,
    positives,
    negative,
  };
}
