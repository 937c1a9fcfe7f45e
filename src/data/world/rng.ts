/**
 * The world's own seeded generator, kept private to this folder so that a change elsewhere can
 * never alter the rendered images of a given seed.
 */

/** Mixes a 32-bit value into a well-spread 32-bit value (the murmur3 finaliser). */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Checks a seed: a non-negative safe integer, so that it survives JSON and CLI round trips. */
export function checkSeed(seed: number, what = 'seed'): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${seed}`);
  }
}

/** One 32-bit state from a seed and an item index: item i never depends on how many items are made. */
export function itemState(seed: number, index: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return mix32(mix32(mix32(lo ^ 0x9e3779b9) ^ hi) ^ Math.imul(index + 1, 0x27d4eb2f));
}

/** mulberry32: small, fast, and identical on every JavaScript engine (integer arithmetic only). */
export class WorldRng {
  private state: number;

  constructor(state: number) {
    this.state = state >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`WorldRng.int: n must be a positive integer, got ${n}`);
    // Multiply-shift keeps the bias below n / 2^32, negligible for the small n used here.
    return Math.floor((this.nextU32() / 0x1_0000_0000) * n);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('WorldRng.pick: empty list');
    return items[this.int(items.length)];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
