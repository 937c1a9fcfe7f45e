/**
 * NAST's diagnostic benchmark (section 3.2, appendices A and B): for a study with several
 * present and absent conditions, an MCQ over three of them whose options are the true
 * present/absent configuration and three other configurations. Each question comes as twins:
 * options written with negations ("no cardiomegaly"), and the same options with every negated
 * phrase replaced by its affirmative alternative ("normal heart size"). The twins share their
 * structure and answer index, so any accuracy gap between them is due to polarity alone.
 */
import type { Study } from './facts.js';
import { CHEXPERT_AFFIRMATIVES, CHEXPERT_DISPLAY_NAMES, affirmativeFor, checkAffirmatives, type AffirmativeMap } from './affirmatives.js';
import { choice, rngFor, sample, shuffle, type Rng } from './rng.js';
import { capitalize, checkStudy, hasNegationCue, joinList } from './templates.js';

export interface PairedMcqTwin {
  options: string[];
  answer: number;
}

export interface PairedMcq {
  kind: 'paired-mcq';
  studyId: string;
  image: string;
  question: string;
  /** The three conditions, as the facts name them, in the order the configurations use. */
  conditions: string[];
  /** Per option: whether each condition is present. configurations[answer] is the truth. */
  configurations: boolean[][];
  /** Options that state absences with negation cues. */
  negated: PairedMcqTwin;
  /** The same options with each negated phrase replaced by its affirmative alternative. */
  affirmative: PairedMcqTwin;
  /** Phrasing of each option ("pattern:presence-form:absence-form"), shared by both twins. */
  phrasings: string[];
}

export interface PairedMcqOptions {
  seed: number;
  /** Condition -> affirmative description of its absence. Default: NAST Table 5. */
  affirmatives?: AffirmativeMap;
  /** Condition -> name used when it is present. Default: appendix A's two renamings. */
  names?: Readonly<Record<string, string>>;
  question?: string;
  /** Eligibility, as in the paper: at least 2 present and 3 absent conditions. */
  minPresent?: number;
  minAbsent?: number;
}

export const PAIRED_MCQ_QUESTION = 'Which of the following radiology report summaries best describes the findings on this chest radiograph?';

type PresForm = 'present' | 'noted' | 'evident' | 'evidence-of';
type AbsForm = 'no' | 'with-no' | 'without' | 'absent' | 'free-of' | 'lacking' | 'no-sign-of' | 'no-evidence-of';
type Pattern = 'only-present' | 'only-absent' | 'present-then-absent' | 'absent-then-present' | 'bare-without' | 'but-not' | 'absent-while';

interface Phrasing {
  pattern: Pattern;
  pres: PresForm;
  abs: AbsForm;
}

const PRES_FORMS: readonly PresForm[] = ['present', 'noted', 'evident', 'evidence-of'];

/** Which absence forms read well in each pattern (with both twins' grammar in mind). */
const ABS_FORMS: Record<Pattern, readonly AbsForm[]> = {
  'only-present': ['no'],
  'only-absent': ['no', 'absent', 'free-of', 'lacking', 'no-sign-of', 'no-evidence-of', 'without'],
  'present-then-absent': ['no', 'with-no', 'without', 'absent', 'free-of', 'lacking', 'no-sign-of', 'no-evidence-of'],
  'absent-then-present': ['no', 'absent', 'free-of', 'lacking', 'no-evidence-of'],
  'bare-without': ['without', 'with-no'],
  'but-not': ['no'],
  'absent-while': ['absent'],
};

function presClause(form: PresForm, names: readonly string[]): string {
  const list = joinList(names, 'and');
  switch (form) {
    case 'present': return `${list} present`;
    case 'noted': return `${list} noted`;
    case 'evident': return `${list} evident`;
    case 'evidence-of': return `evidence of ${list}`;
  }
}

/** The absence clause; in the affirmative twin, the alternatives joined in its place. */
function absClause(form: AbsForm, names: readonly string[], alts: readonly string[], negated: boolean): string {
  if (!negated) {
    const list = joinList(alts, 'and');
    return form === 'without' || form === 'with-no' ? `with ${list}` : list;
  }
  const or = joinList(names, 'or');
  switch (form) {
    case 'no': return `no ${or}`;
    case 'with-no': return `with no ${or}`;
    case 'without': return `without ${or}`;
    case 'absent': return `${joinList(names, 'and')} absent`;
    case 'free-of': return `free of ${or}`;
    case 'lacking': return `lacking ${or}`;
    case 'no-sign-of': return `no sign of ${or}`;
    case 'no-evidence-of': return `no evidence of ${or}`;
  }
}

function render(ph: Phrasing, pres: readonly string[], absNames: readonly string[], alts: readonly string[], negated: boolean): string {
  const P = joinList(pres, 'and');
  const abs = (): string => absClause(ph.abs, absNames, alts, negated);
  let s: string;
  switch (ph.pattern) {
    case 'only-present': s = presClause(ph.pres, pres); break;
    case 'only-absent': s = abs(); break;
    case 'present-then-absent': s = `${presClause(ph.pres, pres)}, ${abs()}`; break;
    case 'absent-then-present': s = `${abs()}, with ${P}`; break;
    case 'bare-without': s = `${P} ${abs()}`; break;
    // The adversative "but" goes with the negation (appendix B's rewriting rule).
    case 'but-not': s = negated ? `${P}, but not ${joinList(absNames, 'or')}` : `${P}, with ${joinList(alts, 'and')}`; break;
    case 'absent-while': s = negated ? `${joinList(absNames, 'and')} absent while ${P} present` : `${joinList(alts, 'and')} while ${P} present`; break;
  }
  return `${capitalize(s)}.`;
}

function pickPhrasing(rng: Rng, nPresent: number, nAbsent: number): Phrasing {
  const patterns: Pattern[] = nAbsent === 0 ? ['only-present']
    : nPresent === 0 ? ['only-absent']
    : ['present-then-absent', 'absent-then-present', 'bare-without', 'but-not', 'absent-while'];
  const pattern = choice(rng, patterns);
  return { pattern, pres: choice(rng, PRES_FORMS), abs: choice(rng, ABS_FORMS[pattern]) };
}

/** Each condition's definite label; conditions stated both present and absent (e.g. per side) are left out. */
export function conditionLabels(study: Study): Map<string, boolean> {
  const seen = new Map<string, Set<boolean>>();
  for (const f of study.facts) {
    const s = seen.get(f.condition) ?? new Set<boolean>();
    s.add(f.existence === 'present');
    seen.set(f.condition, s);
  }
  const out = new Map<string, boolean>();
  for (const [c, s] of seen) if (s.size === 1) out.set(c, [...s][0]);
  return out;
}

function checkMin(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
}

/** Whether the study has enough present and absent conditions (paper: >= 2 and >= 3). */
export function pairedMcqEligible(study: Study, opts: Pick<PairedMcqOptions, 'minPresent' | 'minAbsent'> = {}): boolean {
  const minPresent = opts.minPresent ?? 2;
  const minAbsent = opts.minAbsent ?? 3;
  checkMin('minPresent', minPresent);
  checkMin('minAbsent', minAbsent);
  const labels = [...conditionLabels(study).values()];
  return labels.filter((p) => p).length >= minPresent && labels.filter((p) => !p).length >= minAbsent;
}

// A mapping is checked once, not once per study (callers are expected not to mutate it).
const checkedMaps = new WeakSet<object>();

/**
 * The twin MCQs for a study, or null when it is not eligible or fewer than three of its
 * conditions have an affirmative alternative (every sampled condition needs one: a wrong option
 * may call a present condition absent).
 */
export function buildPairedMcq(study: Study, opts: PairedMcqOptions): PairedMcq | null {
  checkStudy(study);
  const map = opts.affirmatives ?? CHEXPERT_AFFIRMATIVES;
  if (!checkedMaps.has(map)) {
    checkAffirmatives(map, opts.affirmatives ? 'affirmatives option' : 'CHEXPERT_AFFIRMATIVES');
    checkedMaps.add(map);
  }
  const names = opts.names ?? CHEXPERT_DISPLAY_NAMES;
  if (!pairedMcqEligible(study, opts)) return null;

  // Conditions with an alternative, one per alternative text, so that no two options can read alike.
  const labels = conditionLabels(study);
  const byAlt = new Map<string, string>();
  for (const c of labels.keys()) {
    const alt = affirmativeFor(c, map);
    if (alt !== undefined && !byAlt.has(alt)) byAlt.set(alt, c);
  }
  const pool = [...byAlt.values()];
  const present = pool.filter((c) => labels.get(c));
  const absent = pool.filter((c) => !labels.get(c));
  if (present.length === 0 || absent.length === 0 || pool.length < 3) return null;

  const rng = rngFor(opts.seed, 'paired-mcq', study.id);
  // One of each polarity for sure: the true option then states a presence and an absence, so
  // neither twin can be answered from polarity alone and the negated twin's answer has a negation.
  const first = [choice(rng, present), choice(rng, absent)];
  const third = choice(rng, pool.filter((c) => !first.includes(c)));
  const conditions = shuffle(rng, [...first, third]);
  const truth = conditions.map((c) => labels.get(c)!);

  const all: boolean[][] = [];
  for (let m = 0; m < 8; m++) all.push(conditions.map((_, i) => ((m >> i) & 1) === 1));
  const key = (cfg: readonly boolean[]): string => cfg.map((b) => (b ? 1 : 0)).join('');
  const wrong = sample(rng, all.filter((cfg) => key(cfg) !== key(truth)), 3);
  const configurations = shuffle(rng, [truth, ...wrong]);
  const answer = configurations.findIndex((cfg) => key(cfg) === key(truth));

  const display = (c: string): string => names[c] ?? c;
  const negated: string[] = [];
  const affirmative: string[] = [];
  const phrasings: string[] = [];
  for (const cfg of configurations) {
    const pres = conditions.filter((_, i) => cfg[i]).map(display);
    const abs = conditions.filter((_, i) => !cfg[i]);
    const ph = pickPhrasing(rng, pres.length, abs.length);
    negated.push(render(ph, pres, abs.map(display), abs.map((c) => affirmativeFor(c, map)!), true));
    const aff = render(ph, pres, abs.map(display), abs.map((c) => affirmativeFor(c, map)!), false);
    if (hasNegationCue(aff)) {
      throw new Error(`study ${study.id}: affirmative option ${JSON.stringify(aff)} contains a negation cue; a condition name (${conditions.join(', ')}) must not contain one`);
    }
    affirmative.push(aff);
    phrasings.push(`${ph.pattern}:${ph.pres}:${ph.abs}`);
  }
  return {
    kind: 'paired-mcq',
    studyId: study.id,
    image: study.image,
    question: opts.question ?? PAIRED_MCQ_QUESTION,
    conditions,
    configurations,
    negated: { options: negated, answer },
    affirmative: { options: affirmative, answer },
    phrasings,
  };
}
