/**
 * Patient-level train/validation/test splits, so that no patient's images sit in two splits
 * (the NAST paper splits at the patient level to prevent leakage).
 *
 * Method: the distinct patients are sorted (so the input order does not matter), shuffled with a
 * seeded Fisher-Yates, and cut into consecutive runs whose sizes follow the fractions
 * (largest-remainder rounding; every split with a non-zero fraction gets at least one patient
 * when there are enough patients). Same patients + same seed + same fractions = same splits, on
 * any machine. Fractions apply to patients, not images.
 *
 * The seeded generator here is also what the shard reader uses for its per-epoch shuffle. It is the
 * same splitmix-style construction as rng.ts but takes string seeds; it stays separate so that
 * split assignments, pinned by a test, cannot move when the builders' generator changes.
 */

export type SplitName = 'train' | 'validation' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'validation', 'test'];

export type SplitFractions = Record<SplitName, number> | readonly [number, number, number];

export interface SplitOptions {
  seed?: number | string;
  /** Default 0.8 / 0.1 / 0.1. Must be non-negative and sum to 1. */
  fractions?: SplitFractions;
}

export const DEFAULT_FRACTIONS: Readonly<Record<SplitName, number>> = { train: 0.8, validation: 0.1, test: 0.1 };

/** murmur3's 32-bit finaliser: spreads every input bit over the output. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A 32-bit seed from any mix of strings and numbers (FNV-1a over the parts, then mixed). */
function hashSeed(...parts: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5;
  const text = parts.map(String).join('\u0000');
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Uniform numbers in [0, 1) from a 32-bit seed: a Weyl sequence through fmix32 (splitmix-style). */
export function seededRandom(...seedParts: ReadonlyArray<string | number>): () => number {
  let state = hashSeed(...seedParts);
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return fmix32(state) / 0x100000000;
  };
}

/** Fisher-Yates in place with the given generator; returns the same array. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

function normaliseFractions(f: SplitFractions | undefined): [number, number, number] {
  const list: [number, number, number] = f === undefined
    ? [DEFAULT_FRACTIONS.train, DEFAULT_FRACTIONS.validation, DEFAULT_FRACTIONS.test]
    : Array.isArray(f) ? [f[0]!, f[1]!, f[2]!] : [(f as Record<SplitName, number>).train, (f as Record<SplitName, number>).validation, (f as Record<SplitName, number>).test];
  list.forEach((x, k) => {
    if (!(typeof x === 'number' && Number.isFinite(x) && x >= 0)) {
      throw new RangeError(`split fractions: ${SPLIT_NAMES[k]} must be a non-negative number, got ${String(x)}`);
    }
  });
  const sum = list[0] + list[1] + list[2];
  if (Math.abs(sum - 1) > 1e-9) throw new RangeError(`split fractions must sum to 1, got ${list.join(' + ')} = ${sum}`);
  return list;
}

/** How many of n patients each split gets. */
export function splitCounts(n: number, fractions?: SplitFractions): [number, number, number] {
  const f = normaliseFractions(fractions);
  const exact = f.map((x) => x * n);
  const counts = exact.map(Math.floor) as [number, number, number];
  let left = n - counts[0] - counts[1] - counts[2];
  // Largest remainders first; ties go to the earlier split so the result does not depend on float noise order.
  const order = [0, 1, 2].sort((a, b) => (exact[b]! - counts[b]!) - (exact[a]! - counts[a]!) || a - b);
  for (const k of order) if (left > 0) { counts[k]!++; left--; }
  // A split asked for should not come out empty on a small data set: borrow from the largest.
  const wanted = [0, 1, 2].filter((k) => f[k]! > 0);
  if (n >= wanted.length) {
    for (const k of wanted) {
      if (counts[k] === 0) {
        const donor = [0, 1, 2].reduce((a, b) => (counts[b]! > counts[a]! ? b : a));
        counts[donor]!--;
        counts[k]!++;
      }
    }
  }
  return counts;
}

/** The split of every distinct patient. */
export function assignPatientSplits(patients: Iterable<string>, options: SplitOptions = {}): Map<string, SplitName> {
  const unique = [...new Set(patients)].sort();
  const counts = splitCounts(unique.length, options.fractions);
  shuffleInPlace(unique, seededRandom('patient-splits', options.seed ?? 0));
  const out = new Map<string, SplitName>();
  let k = 0;
  SPLIT_NAMES.forEach((name, s) => {
    for (let c = 0; c < counts[s]!; c++) out.set(unique[k++]!, name);
  });
  return out;
}

/** Items (studies, records) grouped by their patient's split, input order kept within a split. */
export function splitByPatient<T extends { patient: string }>(items: readonly T[], options: SplitOptions = {}): Record<SplitName, T[]> {
  const assignment = assignPatientSplits(items.map((it) => it.patient), options);
  const out: Record<SplitName, T[]> = { train: [], validation: [], test: [] };
  for (const it of items) out[assignment.get(it.patient)!].push(it);
  return out;
}
