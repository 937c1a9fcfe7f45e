/**
 * Verbalisation of facts through families of varied sentence templates. The papers paraphrase
 * with an LLM; here a seeded choice among hand-written phrasings gives the surface variety while
 * keeping every sentence faithful to its fact (no new findings, locations or severities).
 */
import type { Fact, Study } from './facts.js';
import { choice, type Rng } from './rng.js';

// ---------------------------------------------------------------------------------------------
// Negation cues

/** The words and phrases that mark a statement as negated (NAST appendix A / B). */
export const NEGATION_CUES = ['no', 'not', 'without', 'absent', 'free of', 'lacking'] as const;
export type NegationCue = (typeof NEGATION_CUES)[number];

// Built from the list so that the list stays the single source; "free of" may span any spacing.
const CUE_SOURCE = `\\b(?:${NEGATION_CUES.map((c) => c.replace(/ /g, '\\s+')).join('|')})\\b`;
// Not global, so it keeps no lastIndex between calls.
const CUE_RE = new RegExp(CUE_SOURCE, 'i');

/** Whether the text contains a negation cue as a whole word or phrase, in any case. */
export function hasNegationCue(text: string): boolean {
  return CUE_RE.test(text);
}

export interface CueSpan {
  cue: NegationCue;
  /** Character offsets into the text, end exclusive. */
  start: number;
  end: number;
}

/** Every negation cue in the text, in order (the tracer uses them to find negation-bearing tokens). */
export function negationCueSpans(text: string): CueSpan[] {
  const out: CueSpan[] = [];
  for (const m of text.matchAll(new RegExp(CUE_SOURCE, 'gi'))) {
    const cue = m[0].toLowerCase().replace(/\s+/g, ' ') as NegationCue;
    out.push({ cue, start: m.index, end: m.index + m[0].length });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Input checks shared by the builders

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.trim().length > 0;
}

/** Throws an error naming the study and fact when a fact is malformed. */
export function checkFact(fact: Fact, where: string): void {
  if (fact === null || typeof fact !== 'object') throw new TypeError(`${where}: fact must be an object`);
  if (!nonEmpty(fact.condition)) throw new TypeError(`${where}: condition must be a non-empty string, got ${JSON.stringify(fact.condition)}`);
  if (fact.existence !== 'present' && fact.existence !== 'absent') {
    throw new TypeError(`${where} (${fact.condition}): existence must be "present" or "absent", got ${JSON.stringify(fact.existence)}`);
  }
  for (const key of ['location', 'severity'] as const) {
    const v = fact[key];
    if (v !== undefined && !nonEmpty(v)) throw new TypeError(`${where} (${fact.condition}): ${key} must be a non-empty string when given, got ${JSON.stringify(v)}`);
  }
}

export function checkStudy(study: Study): void {
  if (study === null || typeof study !== 'object') throw new TypeError('study must be an object');
  if (!nonEmpty(study.id)) throw new TypeError(`study id must be a non-empty string, got ${JSON.stringify(study.id)}`);
  if (!nonEmpty(study.image)) throw new TypeError(`study ${study.id}: image must be a non-empty string`);
  if (!Array.isArray(study.facts)) throw new TypeError(`study ${study.id}: facts must be an array`);
  study.facts.forEach((f, i) => checkFact(f, `study ${study.id} fact ${i}`));
}

/** A copy with no keys set to undefined, so that copies compare and serialise cleanly. */
export function cleanFact(f: Fact): Fact {
  const out: Fact = { condition: f.condition, existence: f.existence };
  if (f.location !== undefined) out.location = f.location;
  if (f.severity !== undefined) out.severity = f.severity;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phrase helpers

export function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}

export function indefiniteArticle(nextWord: string): 'a' | 'an' {
  return /^[aeiou]/i.test(nextWord) ? 'an' : 'a';
}

/** "left" -> "on the left", "bilateral" -> "bilaterally", "right lower lobe" -> "in the right lower lobe". */
export function locationPhrase(loc: string): string {
  if (loc === 'bilateral') return 'bilaterally';
  if (loc === 'left' || loc === 'right') return `on the ${loc}`;
  return `in the ${loc}`;
}

/** English list: "a", "a and b", "a, b and c" (conjunction "or" for negated lists). */
export function joinList(items: readonly string[], conj: 'and' | 'or' = 'and'): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${conj} ${items[items.length - 1]}`;
}

/** What a template fills in. Severity is only given for present facts (see `slotsOf`). */
export interface Slots {
  cond: string;
  sev?: string;
  loc?: string;
}

export interface Template {
  /** Stable name, stored in records so results can be broken down by phrasing. */
  id: string;
  /** Absent means the template fits every fact. */
  applies?: (s: Slots) => boolean;
  render: (s: Slots) => string;
}

export interface TemplateFamily {
  name: string;
  presence: readonly Template[];
  absence: readonly Template[];
}

/**
 * The slots of a fact. An absent fact's severity is not verbalised: "no severe edema" does not
 * state that there is no edema, it targets the severity; the existence negation of a present
 * fact keeps its severity in the Fact (one attribute changed) but reads "There is no edema".
 */
export function slotsOf(fact: Fact): Slots {
  const s: Slots = { cond: fact.condition };
  if (fact.location !== undefined) s.loc = fact.location;
  if (fact.existence === 'present' && fact.severity !== undefined) s.sev = fact.severity;
  return s;
}

const locSuffix = (s: Slots): string => (s.loc === undefined ? '' : ` ${locationPhrase(s.loc)}`);
const isOneWord = (w: string): boolean => !/\s/.test(w);

// Radiology: mass nouns take no article ("There is consolidation"), size words do ("a small effusion").
const COUNTABLE_SIZES = new Set(['small', 'large', 'tiny', 'huge', 'big', 'massive']);
function radArticle(s: Slots): string {
  return s.sev !== undefined && COUNTABLE_SIZES.has(s.sev) ? `${indefiniteArticle(s.sev)} ` : '';
}
/** "a small pneumothorax" (no location). */
const radNp = (s: Slots): string => `${radArticle(s)}${s.sev === undefined ? '' : s.sev + ' '}${s.cond}`;
/** Location before the noun when it is one word ("a small left pneumothorax"), else after it. */
function radNpLoc(s: Slots): string {
  if (s.loc !== undefined && isOneWord(s.loc)) {
    return `${radArticle(s)}${s.sev === undefined ? '' : s.sev + ' '}${s.loc} ${s.cond}`;
  }
  return radNp(s) + locSuffix(s);
}
const absNp = (s: Slots): string => s.cond + locSuffix(s);

export const RADIOLOGY_TEMPLATES: TemplateFamily = {
  name: 'radiology',
  presence: [
    { id: 'there-is', render: (s) => `There is ${radNpLoc(s)}.` },
    { id: 'is-seen', render: (s) => `${capitalize(radNp(s))} is seen${locSuffix(s)}.` },
    {
      id: 'seen-in-lung',
      applies: (s) => s.loc === 'left' || s.loc === 'right',
      render: (s) => `${capitalize(radNp(s))} is seen in the ${s.loc} lung.`,
    },
    { id: 'consistent-with', render: (s) => `Findings consistent with ${radNpLoc(s)}.` },
    { id: 'is-present', render: (s) => `${capitalize(radNpLoc(s))} is present.` },
    { id: 'is-noted', render: (s) => `${capitalize(radNp(s))} is noted${locSuffix(s)}.` },
    { id: 'evidence-of', render: (s) => `There is evidence of ${radNpLoc(s)}.` },
    { id: 'radiograph-shows', render: (s) => `The radiograph shows ${radNpLoc(s)}.` },
    { id: 'is-identified', render: (s) => `${capitalize(radNpLoc(s))} is identified.` },
  ],
  absence: [
    { id: 'there-is-no', render: (s) => `There is no ${absNp(s)}.` },
    { id: 'no-evidence-of', render: (s) => `No evidence of ${absNp(s)}.` },
    { id: 'is-absent', render: (s) => `${capitalize(absNp(s))} is absent.` },
    { id: 'lungs-free-of', render: (s) => `The lungs are free of ${absNp(s)}.` },
    { id: 'without', render: (s) => `Without ${absNp(s)}.` },
    { id: 'no-is-seen', render: (s) => `No ${s.cond} is seen${locSuffix(s)}.` },
    { id: 'is-not-seen', render: (s) => `${capitalize(s.cond)} is not seen${locSuffix(s)}.` },
    { id: 'no', render: (s) => `No ${absNp(s)}.` },
  ],
};

// Generic scenes (objects, shapes): count nouns, always with an article.
const genNp = (s: Slots): string => {
  const words = s.sev === undefined ? s.cond : `${s.sev} ${s.cond}`;
  return `${indefiniteArticle(words)} ${words}`;
};
const genBare = (s: Slots): string => `${indefiniteArticle(s.cond)} ${s.cond}`;

export const GENERIC_TEMPLATES: TemplateFamily = {
  name: 'generic',
  presence: [
    { id: 'there-is', render: (s) => `There is ${genNp(s)}${locSuffix(s)}.` },
    { id: 'is-visible', render: (s) => `${capitalize(genNp(s))} is visible${locSuffix(s)}.` },
    { id: 'image-shows', render: (s) => `The image shows ${genNp(s)}${locSuffix(s)}.` },
    { id: 'appears', render: (s) => `${capitalize(genNp(s))} appears${locSuffix(s)}.` },
    { id: 'can-see', render: (s) => `One can see ${genNp(s)}${locSuffix(s)}.` },
  ],
  absence: [
    { id: 'there-is-no', render: (s) => `There is no ${s.cond}${locSuffix(s)}.` },
    { id: 'no-is-visible', render: (s) => `No ${s.cond} is visible${locSuffix(s)}.` },
    { id: 'does-not-show', render: (s) => `The image does not show ${genBare(s)}${locSuffix(s)}.` },
    { id: 'there-is-not', render: (s) => `There is not ${genBare(s)}${locSuffix(s)}.` },
    { id: 'without', render: (s) => `A scene without ${genBare(s)}${locSuffix(s)}.` },
  ],
};

/** Templates of the fact's polarity that fit every one of the given slot sets. */
export function applicableTemplates(family: TemplateFamily, existence: Fact['existence'], slots: readonly Slots[]): Template[] {
  const list = existence === 'present' ? family.presence : family.absence;
  const fits = list.filter((t) => t.applies === undefined || slots.every((s) => t.applies!(s)));
  if (fits.length === 0) {
    throw new Error(`template family "${family.name}" has no ${existence === 'present' ? 'presence' : 'absence'} template for ${JSON.stringify(slots.map((s) => s.cond))}: give every family at least one template without "applies"`);
  }
  return fits;
}

export function findTemplate(family: TemplateFamily, existence: Fact['existence'], id: string): Template {
  const list = existence === 'present' ? family.presence : family.absence;
  const t = list.find((x) => x.id === id);
  if (t === undefined) throw new RangeError(`template family "${family.name}" has no ${existence} template "${id}"`);
  return t;
}

/** The sentence for a fact with a given template. */
export function renderFact(fact: Fact, template: Template): string {
  return template.render(slotsOf(fact));
}

export interface Verbalised {
  text: string;
  template: string;
}

/** A seeded choice among the family's templates that fit the fact. */
export function verbalizeFact(fact: Fact, rng: Rng, family: TemplateFamily = RADIOLOGY_TEMPLATES): Verbalised {
  const slots = slotsOf(fact);
  const t = choice(rng, applicableTemplates(family, fact.existence, [slots]));
  return { text: t.render(slots), template: t.id };
}
