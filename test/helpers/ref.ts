/**
 * Float64 host arrays for reference computations and finite-difference gradient checks.
 * Used by tests only, never by the product.
 */
import { mulberry32 } from '../../src/engine/prng.js';

export interface Nd {
  shape: number[];
  data: Float64Array;
}

export function nd(shape: number[], data?: ArrayLike<number>): Nd {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`nd: ${data.length} values for shape [${shape}]`);
    d.set(data);
  }
  return { shape: shape.slice(), data: d };
}

/** Deterministic PRNG: the project's mulberry32. */
export const rng = mulberry32;

export function randNd(shape: number[], seed: number, lo = -1, hi = 1): Nd {
  const r = rng(seed);
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = lo + (hi - lo) * r();
  return out;
}

/** Rounds to the nearest float32, so reference and GPU see the same inputs. */
export function f32(x: Nd): Nd {
  return { shape: x.shape.slice(), data: Float64Array.from(Float32Array.from(x.data)) };
}

export interface CloseReport {
  ok: boolean;
  maxAbs: number;
  maxRel: number;
  worst: number;
}

/** |a - b| <= atol + rtol * |b| elementwise. */
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): CloseReport {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs expected ${expected.length}`);
  let ok = true;
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const d = Math.abs(a - e);
    if (!(Number.isFinite(a) === Number.isFinite(e))) {
      ok = false;
      worst = i;
      worstExcess = Infinity;
      continue;
    }
    if (!Number.isFinite(e)) continue;
    const excess = d - (atol + rtol * Math.abs(e));
    if (excess > 0) ok = false;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
    maxAbs = Math.max(maxAbs, d);
    if (Math.abs(e) > 1e-12) maxRel = Math.max(maxRel, d / Math.abs(e));
  }
  return { ok, maxAbs, maxRel, worst };
}
