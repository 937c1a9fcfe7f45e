/**
 * Single captions with negation: NAST's single negated captions (section 4.1) for the CLIP loss,
 * and NegBench's Retrieval-Neg captions (section 3.1): an original caption plus "There is no X
 * in the image.", before or after it.
 */
import type { Fact, Study } from './facts.js';
import { negativeConcepts } from './mcq.js';
import { chance, choice, rngFor, sample, shuffle } from './rng.js';
import { RADIOLOGY_TEMPLATES, capitalize, checkStudy, cleanFact, verbalizeFact, type TemplateFamily } from './templates.js';

export interface NegatedCaption {
  kind: 'negated-caption';
  studyId: string;
  image: string;
  caption: string;
  /** The facts the caption states, in caption order; at least one is absent. */
  facts: Fact[];
  /** Template id of each sentence, aligned with `facts`. */
  templates: string[];
}

export interface NegatedCaptionOptions {
  seed: number;
  /** Distinct captions per study, as far as the facts allow. Default 1. */
  count?: number;
  /** Facts per caption (one absent one always among them); more keep a caption specific to its image. Default 3. */
  maxFacts?: number;
  templates?: TemplateFamily;
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(v)}`);
}

/** Captions of several facts, one sentence each, with at least one absence; [] when the study has no absent fact. */
export function buildNegatedCaptions(study: Study, opts: NegatedCaptionOptions): NegatedCaption[] {
  checkStudy(study);
  const count = opts.count ?? 1;
  const maxFacts = opts.maxFacts ?? 3;
  checkCount('count', count, 1);
  checkCount('maxFacts', maxFacts, 1);
  const family = opts.templates ?? RADIOLOGY_TEMPLATES;
  const absentIdx = study.facts.flatMap((f, i) => (f.existence === 'absent' ? [i] : []));
  if (absentIdx.length === 0) return [];

  const out: NegatedCaption[] = [];
  const seen = new Set<string>();
  // A few extra tries: two draws may give the same caption when a study has few facts.
  for (let attempt = 0; out.length < count && attempt < count * 4; attempt++) {
    const rng = rngFor(opts.seed, 'negated-caption', study.id, attempt);
    const anchor = choice(rng, absentIdx);
    const rest = study.facts.map((_, i) => i).filter((i) => i !== anchor);
    const n = Math.min(maxFacts, study.facts.length);
    const chosen = shuffle(rng, [anchor, ...sample(rng, rest, n - 1)]);
    const facts = chosen.map((i) => cleanFact(study.facts[i]));
    const said = facts.map((f) => verbalizeFact(f, rng, family));
    const caption = said.map((v) => v.text).join(' ');
    if (seen.has(caption)) continue;
    seen.add(caption);
    out.push({ kind: 'negated-caption', studyId: study.id, image: study.image, caption, facts, templates: said.map((v) => v.template) });
  }
  return out;
}

export interface RetrievalNegCaption {
  kind: 'retrieval-neg-caption';
  studyId: string;
  image: string;
  caption: string;
  /** The source caption it extends, as given. */
  original: string;
  /** The absent concept the added sentence negates. */
  negative: string;
  position: 'before' | 'after';
}

export interface RetrievalNegOptions {
  seed: number;
  /** Captions per study (distinct original/negative pairs while they last). Default 1. */
  count?: number;
  /** The dataset's concepts, to draw negatives from when the study has no absent facts. */
  vocabulary?: readonly string[];
}

/** A sentence with a capital first letter and closing punctuation. */
function asSentence(text: string): string {
  const t = capitalize(text.trim());
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** [] when the study has no captions or no negative concept. */
export function buildRetrievalNegCaptions(study: Study, opts: RetrievalNegOptions): RetrievalNegCaption[] {
  checkStudy(study);
  const count = opts.count ?? 1;
  checkCount('count', count, 1);
  const originals = (study.captions ?? []).filter((c) => typeof c === 'string' && c.trim() !== '');
  const negatives = negativeConcepts(study, opts.vocabulary);
  if (originals.length === 0 || negatives.length === 0) return [];

  const rng = rngFor(opts.seed, 'retrieval-neg', study.id);
  // Round-robin over the originals, so several captions of one image use different sources.
  const queues = shuffle(rng, originals).map((o) => shuffle(rng, negatives).map((n): [string, string] => [o, n]));
  const order: [string, string][] = [];
  while (order.length < count && queues.some((q) => q.length > 0)) {
    for (const q of queues) if (order.length < count && q.length > 0) order.push(q.shift()!);
  }

  return order.map(([original, negative]) => {
    const position = chance(rng, 0.5) ? 'before' : 'after';
    const neg = `There is no ${negative} in the image.`;
    const caption = position === 'before' ? `${neg} ${asSentence(original)}` : `${asSentence(original)} ${neg}`;
    return { kind: 'retrieval-neg-caption', studyId: study.id, image: study.image, caption, original, negative, position };
  });
}
