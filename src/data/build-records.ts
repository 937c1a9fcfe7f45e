/**
 * The records the data CLI makes for one study: which builders run for each --kind, with the
 * settings of the study's source (its Domain), and a failure in one builder recorded as a problem
 * instead of ending the build. Browser-safe: studies in, records out.
 */
import {
  buildClaimSets, buildNegBenchMcq, buildNegatedCaptions, buildPairedMcq, buildRetrievalNegCaptions,
  NEGBENCH_TEMPLATES, cleanFact, choice, hasNegationCue, randInt, rngFor, sample, verbalizeFact,
  type AffirmativeMap, type NegationVocab, type TemplateFamily,
} from './builders.js';
import type { Fact, Study } from './facts.js';
import type { AffirmativeCaption, EvalRecord } from './records.js';

/** What --kind names, and the record kinds each makes. */
export const KIND_RECORDS = {
  claims: ['claim-set'],
  captions: ['caption', 'negated-caption', 'retrieval-neg-caption'],
  mcq: ['negbench-mcq'],
  'paired-mcq': ['paired-mcq'],
  probe: ['probe-pair'],
} as const;
export type Kind = keyof typeof KIND_RECORDS;
export const KINDS = Object.keys(KIND_RECORDS) as Kind[];
/** Every record kind, in the order the summary table lists them. */
export const RECORD_KINDS = KINDS.flatMap((k) => KIND_RECORDS[k]) as string[];

/** Per-source builder settings. */
export interface Domain {
  templates: TemplateFamily;
  vocab: NegationVocab;
  affirmatives: AffirmativeMap | null;
  names: Readonly<Record<string, string>>;
  question?: string;
  article: boolean;
  probeSeverity?: string;
  /** The facts the paired-MCQ builder sees (the world's scene properties). */
  pairedFacts?: (study: Study) => Fact[] | undefined;
  vocabulary: string[];
}

/** A study (or split, for probe pairs) that gave no record of a kind because of an error. */
export interface Problem {
  study: string;
  kind: string;
  reason: string;
}

export interface BuildContext {
  kinds: Kind[];
  seed: number;
  k: number;
  captions: number;
  /** NegBench MCQs per study: one per correct template in turn (affirmation, negation, hybrid, ...), from a seeded start. */
  mcqs: number;
  domain: Domain;
  problems: Problem[];
  /** Studies for which a kind was asked for but made nothing, per record kind. */
  none: Record<string, number>;
}

/**
 * One affirmative single caption per study, without negation: a caption of the source when it has
 * one without a negation cue, else up to three present facts through the templates; null when
 * neither exists (a study with no present finding).
 */
export function affirmativeCaption(study: Study, seed: number, templates: TemplateFamily): AffirmativeCaption | null {
  const rng = rngFor(seed, 'affirmative-caption', study.id);
  const originals = (study.captions ?? []).filter((c) => c.trim() !== '' && !hasNegationCue(c));
  if (originals.length > 0) return { kind: 'caption', studyId: study.id, image: study.image, caption: choice(rng, originals), source: 'original' };
  const present = study.facts.map((f, i) => [f, i] as const).filter(([f]) => f.existence === 'present');
  if (present.length === 0) return null;
  const chosen = sample(rng, present, 3).sort((a, b) => a[1] - b[1]).map(([f]) => cleanFact(f));
  const said = chosen.map((f) => verbalizeFact(f, rng, templates));
  const caption = said.map((s) => s.text).join(' ');
  if (hasNegationCue(caption)) return null;
  return { kind: 'caption', studyId: study.id, image: study.image, caption, source: 'facts', facts: chosen, templates: said.map((s) => s.template) };
}

/** fn's result, or undefined with the error kept in ctx.problems so that one bad study does not stop the build. */
export function attempt<T>(ctx: BuildContext, study: Study, kind: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    ctx.problems.push({ study: study.id, kind, reason: (e as Error).message });
    return undefined;
  }
}

/** The per-study records of ctx.kinds (probe pairs are made per split, not here). */
export function buildStudy(ctx: BuildContext, study: Study): EvalRecord[] {
  const out: EvalRecord[] = [];
  const d = ctx.domain;
  const none = (kind: string) => { ctx.none[kind] = (ctx.none[kind] ?? 0) + 1; };
  const push = (kind: string, recs: readonly EvalRecord[] | null | undefined) => {
    if (!recs || recs.length === 0) none(kind);
    else out.push(...recs);
  };
  if (ctx.kinds.includes('captions')) {
    push('caption', attempt(ctx, study, 'caption', () => { const c = affirmativeCaption(study, ctx.seed, d.templates); return c ? [c] : []; }));
    push('negated-caption', attempt(ctx, study, 'negated-caption', () => buildNegatedCaptions(study, { seed: ctx.seed, count: ctx.captions, templates: d.templates })));
    if ((study.captions ?? []).length > 0) {
      push('retrieval-neg-caption', attempt(ctx, study, 'retrieval-neg-caption', () => buildRetrievalNegCaptions(study, { seed: ctx.seed, count: ctx.captions, vocabulary: d.vocabulary })));
    }
  }
  if (ctx.kinds.includes('claims')) {
    push('claim-set', attempt(ctx, study, 'claim-set', () => buildClaimSets(study, { seed: ctx.seed, k: ctx.k, vocab: d.vocab, templates: d.templates })));
  }
  if (ctx.kinds.includes('mcq')) {
    push('negbench-mcq', attempt(ctx, study, 'negbench-mcq', () => {
      if (ctx.mcqs === 1) {
        const m = buildNegBenchMcq(study, { seed: ctx.seed, vocabulary: d.vocabulary, article: d.article });
        return m ? [m] : [];
      }
      // Several per study: the correct templates in turn from a seeded start, so every image is
      // asked each kind of question and a training split teaches all three.
      const start = randInt(rngFor(ctx.seed, 'negbench-mcq-start', study.id), NEGBENCH_TEMPLATES.length);
      const out = [];
      for (let v = 0; v < ctx.mcqs; v++) {
        const answerType = NEGBENCH_TEMPLATES[(start + v) % NEGBENCH_TEMPLATES.length];
        const m = buildNegBenchMcq(study, { seed: ctx.seed, vocabulary: d.vocabulary, article: d.article, variant: v, answerType });
        if (m) out.push(m);
      }
      return out;
    }));
  }
  if (ctx.kinds.includes('paired-mcq') && d.affirmatives) {
    const facts = d.pairedFacts?.(study) ?? study.facts;
    push('paired-mcq', attempt(ctx, study, 'paired-mcq', () => {
      const m = buildPairedMcq({ ...study, facts }, { seed: ctx.seed, affirmatives: d.affirmatives!, names: d.names, ...(d.question ? { question: d.question } : {}) });
      return m ? [m] : [];
    }));
  }
  return out;
}
