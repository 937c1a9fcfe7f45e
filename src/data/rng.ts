/**
 * Small seeded randomness for the data builders. Every builder derives its own generator from
 * (seed, builder name, study id, ...) so that what it makes for one study does not depend on
 * which other studies were processed before it, nor in what order: shards can be rebuilt in
 * parallel or in part and still match.
 */

/** Uniform numbers in [0, 1). */
export type Rng = () => number;

const GOLDEN = 0x9e3779b9;

/** Murmur3's 32-bit finaliser: good avalanche for a cheap counter-based generator. */
function mix32(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isInteger(seed)) throw new RangeError(`${what}: seed must be an integer, got ${String(seed)}`);
}

/** A splitmix-style generator: a Weyl sequence passed through a mixer. */
export function makeRng(seed: number): Rng {
  checkSeed(seed, 'makeRng');
  // Fold the high bits in too, so seeds that differ only above bit 31 still differ.
  let state = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
  return () => {
    state = (state + GOLDEN) >>> 0;
    return mix32(state) / 0x1_0000_0000;
  };
}

/** A 32-bit seed from a base seed and any labels (FNV-1a over their text, then mixed). */
export function hashSeed(seed: number, ...parts: readonly (string | number)[]): number {
  checkSeed(seed, 'hashSeed');
  let h = 0x811c9dc5 ^ mix32((seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0);
  for (const part of parts) {
    // The separator keeps ('ab', 'c') and ('a', 'bc') apart.
    const text = `${typeof part}:${String(part)}\u0000`;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  }
  return mix32(h >>> 0);
}

/** The generator for one unit of work, e.g. `rngFor(seed, 'claims', study.id)`. */
export function rngFor(seed: number, ...parts: readonly (string | number)[]): Rng {
  return makeRng(hashSeed(seed, ...parts));
}

/** An integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`randInt: n must be a positive integer, got ${n}`);
  return Math.floor(rng() * n);
}

export function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

export function choice<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new RangeError('choice: cannot choose from an empty list');
  return items[randInt(rng, items.length)];
}

/** A shuffled copy (Fisher-Yates); the input is left alone. */
export function shuffle<T>(rng: Rng, items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** k distinct items in random order; all of them (shuffled) when k >= items.length. */
export function sample<T>(rng: Rng, items: readonly T[], k: number): T[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`sample: k must be a non-negative integer, got ${k}`);
  return shuffle(rng, items).slice(0, k);
}
