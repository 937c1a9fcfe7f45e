/**
 * The causal probing set (NAST section 4.2, appendix D): per image and confident finding, a
 * correct caption and a foil of the opposite polarity, "There is severe X." against "There is
 * no X.". Both configurations are kept: a present finding puts the negation in the foil, an
 * absent one puts it in the caption.
 */
import type { Study } from './facts.js';
import { rngFor, shuffle } from './rng.js';
import { checkStudy } from './templates.js';

export interface ProbePair {
  kind: 'probe-pair';
  studyId: string;
  image: string;
  condition: string;
  /** The correct caption's polarity: 'affirmative' (finding present, negated foil) or 'negated' (finding absent, affirmative foil). */
  polarity: 'affirmative' | 'negated';
  caption: string;
  foil: string;
}

export interface ProbeOptions {
  /** A present condition qualifies only when one of its facts has this severity (CAD-Chest: 'severe'); any when unset. Absent conditions always qualify. */
  presentSeverity?: string;
  /** At most this many pairs, half of each polarity where possible, drawn with `seed`. */
  maxPairs?: number;
  seed?: number;
}

/**
 * The two sentences of a pair. "severe" and "no" are one CLIP BPE token each and the rest of the
 * sentence is shared, so caption and foil tokenise to the same length and token positions line
 * up for patching (the tracer checks this).
 */
export function probeSentences(condition: string): { affirmative: string; negated: string } {
  return { affirmative: `There is severe ${condition}.`, negated: `There is no ${condition}.` };
}

/** One pair per (study, condition, polarity); conditions stated both present and absent in a study are skipped. */
export function buildProbePairs(studies: readonly Study[], opts: ProbeOptions = {}): ProbePair[] {
  if (opts.maxPairs !== undefined && (!Number.isInteger(opts.maxPairs) || opts.maxPairs < 0)) {
    throw new RangeError(`maxPairs must be a non-negative integer, got ${String(opts.maxPairs)}`);
  }
  const pairs: ProbePair[] = [];
  for (const study of studies) {
    checkStudy(study);
    const polarity = new Map<string, Set<'affirmative' | 'negated'>>();
    const severe = new Set<string>();
    for (const f of study.facts) {
      const s = polarity.get(f.condition) ?? new Set();
      s.add(f.existence === 'present' ? 'affirmative' : 'negated');
      polarity.set(f.condition, s);
      if (f.existence === 'present' && f.severity === opts.presentSeverity) severe.add(f.condition);
    }
    for (const [condition, pols] of polarity) {
      if (pols.size !== 1) continue;
      const pol = [...pols][0];
      if (pol === 'affirmative' && opts.presentSeverity !== undefined && !severe.has(condition)) continue;
      const { affirmative, negated } = probeSentences(condition);
      pairs.push({
        kind: 'probe-pair', studyId: study.id, image: study.image, condition, polarity: pol,
        caption: pol === 'affirmative' ? affirmative : negated,
        foil: pol === 'affirmative' ? negated : affirmative,
      });
    }
  }
  if (opts.maxPairs === undefined || pairs.length <= opts.maxPairs) return pairs;

  const rng = rngFor(opts.seed ?? 0, 'probe-pairs');
  const aff = shuffle(rng, pairs.filter((p) => p.polarity === 'affirmative'));
  const neg = shuffle(rng, pairs.filter((p) => p.polarity === 'negated'));
  const half = Math.floor(opts.maxPairs / 2);
  const nAff = Math.min(aff.length, Math.max(half, opts.maxPairs - neg.length));
  const nNeg = Math.min(neg.length, opts.maxPairs - nAff);
  const keep = new Set([...aff.slice(0, nAff), ...neg.slice(0, nNeg)]);
  // Keep dataset order, so that the selection reads like the input.
  return pairs.filter((p) => keep.has(p));
}
