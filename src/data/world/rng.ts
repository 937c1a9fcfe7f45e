/**
 * The world's seeded draws. The generator is the project's mulberry32 (engine/prng.ts), whose
 * stream test/prng.test.ts pins, so a change elsewhere cannot alter the rendered images of a seed.
 */
import { mulberry32U32 } from '../../engine/prng.js';

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

/** The project's mulberry32 (src/engine/prng.ts) with the draws the world needs. */
export class WorldRng {
  /** Uniform 32-bit unsigned integer. */
  readonly nextU32: () => number;

  constructor(state: number) {
    this.nextU32 = mulberry32U32(state);
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
