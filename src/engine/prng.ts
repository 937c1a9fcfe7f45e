/**
 * The project's one small seeded generator, mulberry32: integer arithmetic only, so every
 * JavaScript engine gives the same stream. LoRA's A initialisation, the miniature world and the
 * tests' random inputs all draw from it. (The data builders' `makeRng` in src/data/rng.ts is a
 * counter-based splitmix on purpose: item i of a study never depends on how many came before.)
 */

/** Uniform 32-bit unsigned integers from a 32-bit seed. */
export function mulberry32U32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform numbers in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  const next = mulberry32U32(seed);
  return () => next() / 4294967296;
}
