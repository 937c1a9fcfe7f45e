/**
 * Claim-based contrast sets (NAST section 4.1, appendix C): one true claim and K-1 hard
 * negatives, for the claim-ranking loss. Sets are built around present findings (the truth
 * affirms, "There is a small left pneumothorax.") and around absent ones (the truth negates,
 * "There is no pleural effusion."), so that the evaluation's negated claim subset is not empty.
 */
import type { Fact, NegationKind, Study } from './facts.js';
import { CHEST_NEGATION_VOCAB, checkVocab, contextualNegations, flipExistence, type NegatedFact, type NegationVocab } from './negations.js';
import { choice, rngFor, shuffle, type Rng } from './rng.js';
import { RADIOLOGY_TEMPLATES, applicableTemplates, checkFact, checkStudy, cleanFact, renderFact, slotsOf, type TemplateFamily } from './templates.js';

export interface Claim {
  text: string;
  fact: Fact;
  /** Which attribute this claim's fact changes relative to the truth; null for the true claim. */
  negation: NegationKind | null;
  /**
   * Only in sets around an absent fact: the attribute this presence claim states that the
   * truth leaves open ("There is mild edema." against "There is no edema."). Such a claim
   * differs from the truth in existence and in this one attribute; absent otherwise.
   */
  added?: 'location' | 'severity';
  /**
   * 'contextual': a contextual negation of the true fact (for an absent truth, one of its
   * presence counterparts, see `absenceCounterparts`). 'other-fact': another fact of the same
   * study with its existence flipped, used only when the true fact has too few contextual
   * negations to fill the set (a present fact with neither location nor severity has just one).
   */
  origin: 'true' | 'contextual' | 'other-fact';
}

export interface ClaimSet {
  kind: 'claim-set';
  studyId: string;
  image: string;
  /** Index into the study's facts of the true fact (present or absent). */
  factIndex: number;
  claims: Claim[];
  /** Index of the true claim in `claims`. */
  answer: number;
  /** One presence and one absence template for the whole set, so claims differ only in content. */
  templates: { presence: string; absence: string };
}

/** Which facts claim sets are built around: present findings, absent ones, or both. */
export type ClaimPolarity = 'present' | 'absent' | 'both';

export interface ClaimSetOptions {
  seed: number;
  /** Claims per set, the true one included (NAST uses 5-7). Default 5. */
  k?: number;
  vocab?: NegationVocab;
  templates?: TemplateFamily;
  /** Fill up with other facts of the study when contextual negations run short. Default true. */
  fillFromOtherFacts?: boolean;
  /**
   * Default 'both'. 'present' gives only the affirmative sets (all sets before absent facts had
   * their own); 'absent' only the negated ones.
   */
  polarity?: ClaimPolarity;
}

const POLARITIES: readonly ClaimPolarity[] = ['present', 'absent', 'both'];

const compatible = (a: string | undefined, b: string | undefined): boolean => a === undefined || b === undefined || a === b;

/** Whether some fact of the study could make the candidate true (e.g. a second, right-sided effusion). */
function mayBeTrue(candidate: Fact, facts: readonly Fact[]): boolean {
  return facts.some((f) => f.condition === candidate.condition && f.existence === candidate.existence
    && compatible(f.location, candidate.location) && compatible(f.severity, candidate.severity));
}

/**
 * Whether the study also has the absent fact's condition present where the absence applies
 * (the same location, or either one unlocalised): the annotations disagree, or the absence is
 * narrower than its sentence, so "There is no X" could be false and no set is built around it.
 */
function contradicted(absent: Fact, facts: readonly Fact[]): boolean {
  return facts.some((f) => f.condition === absent.condition && f.existence === 'present' && compatible(f.location, absent.location));
}

/** Every distinct value of a vocabulary scale, in vocabulary order. */
const valuesOf = (groups: readonly (readonly string[])[]): string[] => [...new Set(groups.flat())];

export interface AbsenceCounterpart extends NegatedFact {
  kind: 'existence';
  added?: 'location' | 'severity';
}

/**
 * The hard negatives of an absent fact, in a fixed order: the existence flip ("no X" -> "X"),
 * then the flip with a vocabulary location, then with a vocabulary severity.
 *
 * The rule: every counterpart differs from the truth in existence, and at most in one more
 * attribute, which the truth leaves unspecified. An absence says X is nowhere in its scope (the
 * whole image, or its location when it has one), so X present anywhere in that scope, at any
 * severity, is false: "There is mild X." and "There is X on the left." both contradict "There
 * is no X.". An attribute the truth does specify is never changed: "X on the left" does not
 * contradict "no X on the right". Severity is only added when the truth has none (an absent
 * fact's severity is not verbalised, see `slotsOf`, but it is kept in the flip).
 */
export function absenceCounterparts(fact: Fact, vocab: NegationVocab = CHEST_NEGATION_VOCAB): AbsenceCounterpart[] {
  checkFact(fact, 'absenceCounterparts');
  if (fact.existence !== 'absent') {
    throw new RangeError(`absenceCounterparts: fact "${fact.condition}" must be absent; present facts have contextual negations`);
  }
  const flip = flipExistence(fact);
  const out: AbsenceCounterpart[] = [{ kind: 'existence', fact: flip }];
  if (flip.location === undefined) {
    for (const location of valuesOf(vocab.locations)) out.push({ kind: 'existence', added: 'location', fact: { ...flip, location } });
  }
  if (flip.severity === undefined) {
    for (const severity of valuesOf(vocab.severities)) out.push({ kind: 'existence', added: 'severity', fact: { ...flip, severity } });
  }
  return out;
}

/**
 * Up to n negations, taking the groups (by default the negation kinds) in turn, so that sets
 * mix existence, location and severity.
 */
function balancedPick<T extends NegatedFact>(rng: Rng, negs: readonly T[], n: number, key: (g: T) => string = (g) => g.kind): T[] {
  const byKey = new Map<string, T[]>();
  for (const g of negs) byKey.set(key(g), [...(byKey.get(key(g)) ?? []), g]);
  const queues = shuffle(rng, [...byKey.keys()]).map((k) => shuffle(rng, byKey.get(k)!));
  const out: T[] = [];
  while (out.length < n && queues.some((q) => q.length > 0)) {
    for (const q of queues) if (out.length < n && q.length > 0) out.push(q.shift()!);
  }
  return out;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`claim sets: k must be an integer >= 2 (NAST uses 5-7), got ${String(k)}`);
}

function checkPolarity(p: unknown): ClaimPolarity {
  if (p === undefined) return 'both';
  if (!POLARITIES.includes(p as ClaimPolarity)) throw new RangeError(`claim sets: polarity must be ${POLARITIES.map((x) => `"${x}"`).join(', ')}, got ${JSON.stringify(p)}`);
  return p as ClaimPolarity;
}

/** The contextual negatives of a present truth: its one-attribute negations, kinds in turn. */
function presentNegatives(rng: Rng, truth: Fact, others: readonly Fact[], vocab: NegationVocab, n: number): Claim[] {
  const contextual = contextualNegations(truth, vocab).filter((g) => !mayBeTrue(g.fact, others));
  return balancedPick(rng, contextual, n).map((g) => ({ text: '', fact: g.fact, negation: g.kind, origin: 'contextual' as const }));
}

/**
 * The contextual negatives of an absent truth: the plain existence flip always (NAST's "There
 * is no X" against "There is X"), then flips with an added location or severity, in turn. None
 * can be true: each puts X inside the absence's scope, where a present X would make the study
 * contradict the truth, which the caller has ruled out.
 */
function absentNegatives(rng: Rng, truth: Fact, vocab: NegationVocab, n: number): Claim[] {
  const [flip, ...variants] = absenceCounterparts(truth, vocab);
  const rest = balancedPick(rng, variants, n - 1, (g) => g.added!);
  const claims: Claim[] = [{ text: '', fact: flip!.fact, negation: 'existence', origin: 'contextual' }];
  for (const g of rest) claims.push({ text: '', fact: g.fact, negation: 'existence', added: g.added!, origin: 'contextual' });
  return claims;
}

/**
 * The claim set for one fact of a study, or null when fewer than k distinct claims can be made
 * (the set is never padded with true or repeated statements), or when the fact is an absence
 * the study contradicts (see `contradicted`).
 */
export function buildClaimSet(study: Study, factIndex: number, opts: ClaimSetOptions): ClaimSet | null {
  checkStudy(study);
  const k = opts.k ?? 5;
  checkK(k);
  const polarity = checkPolarity(opts.polarity);
  const vocab = opts.vocab ?? CHEST_NEGATION_VOCAB;
  checkVocab(vocab, 'claim sets vocab');
  const family = opts.templates ?? RADIOLOGY_TEMPLATES;
  const truth = study.facts[factIndex];
  if (truth === undefined) throw new RangeError(`study ${study.id}: no fact ${factIndex} (it has ${study.facts.length})`);
  if (polarity !== 'both' && truth.existence !== polarity) {
    throw new RangeError(`study ${study.id} fact ${factIndex} (${truth.condition}) is ${truth.existence}; with polarity "${polarity}" claim sets are built around ${polarity} facts only`);
  }

  const rng = rngFor(opts.seed, 'claim-set', study.id, factIndex);
  const others = study.facts.filter((_, i) => i !== factIndex);
  if (truth.existence === 'absent' && contradicted(truth, others)) return null;
  const picked = truth.existence === 'present'
    ? presentNegatives(rng, truth, others, vocab, k - 1)
    : absentNegatives(rng, truth, vocab, k - 1);
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

/**
 * One claim set per fact of the study whose existence `polarity` asks for (default both), for
 * those that can be filled to k claims, in fact order.
 */
export function buildClaimSets(study: Study, opts: ClaimSetOptions): ClaimSet[] {
  checkStudy(study);
  const polarity = checkPolarity(opts.polarity);
  const out: ClaimSet[] = [];
  study.facts.forEach((f, i) => {
    if (polarity !== 'both' && f.existence !== polarity) return;
    const set = buildClaimSet(study, i, opts);
    if (set !== null) out.push(set);
  });
  return out;
}
