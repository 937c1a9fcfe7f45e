/**
 * Claim-based contrast sets (NAST section 4.1, appendix C): one true claim about a present
 * finding and K-1 hard negatives made from its contextual negations, for the claim-ranking loss.
 */
import type { Fact, NegationKind, Study } from './facts.js';
import { CHEST_NEGATION_VOCAB, checkVocab, contextualNegations, flipExistence, type NegatedFact, type NegationVocab } from './negations.js';
import { choice, rngFor, shuffle, type Rng } from './rng.js';
import { RADIOLOGY_TEMPLATES, applicableTemplates, checkStudy, cleanFact, renderFact, slotsOf, type TemplateFamily } from './templates.js';

export interface Claim {
  text: string;
  fact: Fact;
  /** Which attribute this claim's fact changes relative to the truth; null for the true claim. */
  negation: NegationKind | null;
  /**
   * 'contextual': a contextual negation of the true fact. 'other-fact': another fact of the
   * same study with its existence flipped, used only when the true fact has too few contextual
   * negations to fill the set (a fact with neither location nor severity has just one).
   */
  origin: 'true' | 'contextual' | 'other-fact';
}

export interface ClaimSet {
  kind: 'claim-set';
  studyId: string;
  image: string;
  /** Index into the study's facts of the true fact. */
  factIndex: number;
  claims: Claim[];
  /** Index of the true claim in `claims`. */
  answer: number;
  /** One presence and one absence template for the whole set, so claims differ only in content. */
  templates: { presence: string; absence: string };
}

export interface ClaimSetOptions {
  seed: number;
  /** Claims per set, the true one included (NAST uses 5-7). Default 5. */
  k?: number;
  vocab?: NegationVocab;
  templates?: TemplateFamily;
  /** Fill up with other facts of the study when contextual negations run short. Default true. */
  fillFromOtherFacts?: boolean;
}

const compatible = (a: string | undefined, b: string | undefined): boolean => a === undefined || b === undefined || a === b;

/** Whether some fact of the study could make the candidate true (e.g. a second, right-sided effusion). */
function mayBeTrue(candidate: Fact, facts: readonly Fact[]): boolean {
  return facts.some((f) => f.condition === candidate.condition && f.existence === candidate.existence
    && compatible(f.location, candidate.location) && compatible(f.severity, candidate.severity));
}

/** Up to n negations, taking the kinds in turn so that sets mix existence, location and severity. */
function balancedPick(rng: Rng, negs: readonly NegatedFact[], n: number): NegatedFact[] {
  const byKind = new Map<NegationKind, NegatedFact[]>();
  for (const g of negs) byKind.set(g.kind, [...(byKind.get(g.kind) ?? []), g]);
  const queues = shuffle(rng, [...byKind.keys()]).map((k) => shuffle(rng, byKind.get(k)!));
  const out: NegatedFact[] = [];
  while (out.length < n && queues.some((q) => q.length > 0)) {
    for (const q of queues) if (out.length < n && q.length > 0) out.push(q.shift()!);
  }
  return out;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`claim sets: k must be an integer >= 2 (NAST uses 5-7), got ${String(k)}`);
}

/**
 * The claim set for one present fact of a study, or null when fewer than k distinct claims can
 * be made (the set is never padded with true or repeated statements).
 */
export function buildClaimSet(study: Study, factIndex: number, opts: ClaimSetOptions): ClaimSet | null {
  checkStudy(study);
  const k = opts.k ?? 5;
  checkK(k);
  const vocab = opts.vocab ?? CHEST_NEGATION_VOCAB;
  checkVocab(vocab, 'claim sets vocab');
  const family = opts.templates ?? RADIOLOGY_TEMPLATES;
  const truth = study.facts[factIndex];
  if (truth === undefined) throw new RangeError(`study ${study.id}: no fact ${factIndex} (it has ${study.facts.length})`);
  if (truth.existence !== 'present') throw new RangeError(`study ${study.id} fact ${factIndex} (${truth.condition}) is absent; claim sets are built around present facts`);

  const rng = rngFor(opts.seed, 'claim-set', study.id, factIndex);
  const others = study.facts.filter((_, i) => i !== factIndex);
  const contextual = contextualNegations(truth, vocab).filter((g) => !mayBeTrue(g.fact, others));
  const picked: Claim[] = balancedPick(rng, contextual, k - 1)
    .map((g) => ({ text: '', fact: g.fact, negation: g.kind, origin: 'contextual' as const }));
  if (picked.length < k - 1 && (opts.fillFromOtherFacts ?? true)) {
    for (const f of shuffle(rng, others)) {
      const flipped = flipExistence(f);
      if (mayBeTrue(flipped, study.facts) || picked.some((c) => sameFact(c.fact, flipped))) continue;
      picked.push({ text: '', fact: flipped, negation: 'existence', origin: 'other-fact' });
    }
  }

  const claims: Claim[] = [{ text: '', fact: cleanFact(truth), negation: null, origin: 'true' }, ...picked];
  const presence = choice(rng, applicableTemplates(family, 'present', claims.filter((c) => c.fact.existence === 'present').map((c) => slotsOf(c.fact))));
  const absence = choice(rng, applicableTemplates(family, 'absent', []));
  const seen = new Set<string>();
  const distinct: Claim[] = [];
  for (const c of claims) {
    const text = renderFact(c.fact, c.fact.existence === 'present' ? presence : absence);
    if (seen.has(text)) continue;
    seen.add(text);
    distinct.push({ ...c, text });
    if (distinct.length === k) break;
  }
  if (distinct.length < k) return null;
  const order = shuffle(rng, distinct);
  return {
    kind: 'claim-set',
    studyId: study.id,
    image: study.image,
    factIndex,
    claims: order,
    answer: order.findIndex((c) => c.origin === 'true'),
    templates: { presence: presence.id, absence: absence.id },
  };
}

function sameFact(a: Fact, b: Fact): boolean {
  return a.condition === b.condition && a.existence === b.existence && a.location === b.location && a.severity === b.severity;
}

/** One claim set per present fact of the study (those that can be filled to k claims). */
export function buildClaimSets(study: Study, opts: ClaimSetOptions): ClaimSet[] {
  checkStudy(study);
  const out: ClaimSet[] = [];
  study.facts.forEach((f, i) => {
    if (f.existence !== 'present') return;
    const set = buildClaimSet(study, i, opts);
    if (set !== null) out.push(set);
  });
  return out;
}
