/**
 * Contextual negations (NAST section 4.1): from a true present fact, counterfactual facts that
 * change exactly one attribute (existence, location or severity) and keep the others.
 */
import type { Fact, NegationKind } from './facts.js';
import { checkFact, cleanFact } from './templates.js';

/**
 * Per-dataset values a location or severity may be swapped for. Each inner list is a group of
 * mutually exclusive alternatives on one scale: a value is swapped only for others of its own
 * groups, so "small" becomes "large" but never "severe", and "left" becomes "right" or
 * "bilateral" but not "right lower lobe".
 */
export interface NegationVocab {
  locations: readonly (readonly string[])[];
  severities: readonly (readonly string[])[];
}

export const CHEST_NEGATION_VOCAB: NegationVocab = {
  locations: [
    ['left', 'right', 'bilateral'],
    ['left upper lobe', 'left lower lobe', 'right upper lobe', 'right middle lobe', 'right lower lobe'],
    ['left base', 'right base', 'bilateral bases'],
    ['left apex', 'right apex'],
    ['left lung', 'right lung', 'both lungs'],
  ],
  severities: [
    ['mild', 'moderate', 'severe'],
    ['small', 'moderate', 'large'],
  ],
};

export interface NegatedFact {
  kind: NegationKind;
  fact: Fact;
}

export function checkVocab(vocab: NegationVocab, name = 'vocab'): void {
  for (const key of ['locations', 'severities'] as const) {
    const groups = vocab?.[key];
    if (!Array.isArray(groups)) throw new TypeError(`${name}.${key} must be an array of string arrays`);
    groups.forEach((g, i) => {
      if (!Array.isArray(g) || g.some((v) => typeof v !== 'string' || v.trim() === '')) {
        throw new TypeError(`${name}.${key}[${i}] must be an array of non-empty strings`);
      }
    });
  }
}

/** "left lower lobe" <-> "right lower lobe"; undefined when the text names no side. */
export function mirrorLocation(loc: string): string | undefined {
  const m = loc.replace(/\b(left|right)\b/g, (w) => (w === 'left' ? 'right' : 'left'));
  return m === loc ? undefined : m;
}

function alternatives(value: string, groups: readonly (readonly string[])[]): string[] {
  const out: string[] = [];
  for (const g of groups) {
    if (!g.includes(value)) continue;
    for (const v of g) if (v !== value && !out.includes(v)) out.push(v);
  }
  return out;
}

/** Other locations for a fact's location: its mirror first (even when not in the vocabulary), then its groups. */
export function locationAlternatives(loc: string, vocab: NegationVocab): string[] {
  const mirror = mirrorLocation(loc);
  const rest = alternatives(loc, vocab.locations).filter((v) => v !== mirror);
  return mirror === undefined ? rest : [mirror, ...rest];
}

export function severityAlternatives(sev: string, vocab: NegationVocab): string[] {
  return alternatives(sev, vocab.severities);
}

/**
 * Every contextual negation of a present fact, in a fixed order: existence, then locations,
 * then severities. A fact without a location (severity) has no location (severity) negation:
 * giving it one would add an attribute, not change one.
 */
export function contextualNegations(fact: Fact, vocab: NegationVocab = CHEST_NEGATION_VOCAB): NegatedFact[] {
  checkFact(fact, 'contextualNegations');
  if (fact.existence !== 'present') {
    throw new RangeError(`contextualNegations: fact "${fact.condition}" must be present; only present facts have contextual negations`);
  }
  const base = cleanFact(fact);
  const out: NegatedFact[] = [{ kind: 'existence', fact: { ...base, existence: 'absent' } }];
  if (base.location !== undefined) {
    for (const location of locationAlternatives(base.location, vocab)) out.push({ kind: 'location', fact: { ...base, location } });
  }
  if (base.severity !== undefined) {
    for (const severity of severityAlternatives(base.severity, vocab)) out.push({ kind: 'severity', fact: { ...base, severity } });
  }
  return out;
}

/** The fact with its existence flipped (present <-> absent); always false when the fact is true. */
export function flipExistence(fact: Fact): Fact {
  const base = cleanFact(fact);
  return { ...base, existence: base.existence === 'present' ? 'absent' : 'present' };
}

/** Names of the attributes in which two facts differ. */
export function differingAttributes(a: Fact, b: Fact): (keyof Fact)[] {
  return (['condition', 'existence', 'location', 'severity'] as const).filter((k) => a[k] !== b[k]);
}
