/**
 * Rows of token ids [n, contextLength] and where each text ends: the one place that knows how
 * CLIP finds the position it pools at, and how a batch is cut after its longest text (the text
 * tower is causal and pools at the end token, so padding after it never matters).
 */
import { ModelInputError } from './errors.js';

/**
 * The position HF CLIP pools at in each row, as a flat index: the arg-max id (legacy
 * eos_token_id, given as null) or the first end-of-text id.
 */
export function poolPositions(ids: Int32Array, n: number, eosTokenId: number | null): Int32Array {
  const t = ids.length / n;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let at = -1;
    if (eosTokenId === null) {
      let best = -Infinity;
      for (let p = 0; p < t; p++) if (ids[i * t + p] > best) { best = ids[i * t + p]; at = p; }
    } else {
      for (let p = 0; p < t && at < 0; p++) if (ids[i * t + p] === eosTokenId) at = p;
      if (at < 0) throw new ModelInputError(`text ${i}: no end-of-text token (id ${eosTokenId}) in its ids`);
    }
    out[i] = i * t + at;
  }
  return out;
}

/**
 * The rows cut to the longest row's pooled position + 1 (`seqLen`); the same array when
 * nothing is cut. Throws, naming the row, where a row has no end-of-text id.
 */
export function cutAtPool(ids: Int32Array, n: number, eosTokenId: number | null): { ids: Int32Array; seqLen: number } {
  const full = ids.length / n;
  const pos = poolPositions(ids, n, eosTokenId);
  let seqLen = 1;
  for (let i = 0; i < n; i++) seqLen = Math.max(seqLen, pos[i] - i * full + 1);
  if (seqLen === full) return { ids, seqLen };
  const out = new Int32Array(n * seqLen);
  for (let i = 0; i < n; i++) out.set(ids.subarray(i * full, i * full + seqLen), i * seqLen);
  return { ids: out, seqLen };
}
