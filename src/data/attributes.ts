/**
 * Binary attributes of an ingested study for linear probes of an image embedding, from its
 * definite facts: `presence:{condition}`, 1 present and 0 absent. A condition stated both
 * present and absent in one study gets no label. Locations and severities are left out: an
 * ingested study states them for present findings only, so no image has the opposite label of
 * one. (World images use world/attributes.ts, which knows every object of the scene.)
 */
import type { Study } from './facts.js';

export function factAttributes(study: Study): Record<string, 0 | 1> {
  const out: Record<string, 0 | 1> = {};
  const conflicting = new Set<string>();
  for (const f of study.facts) {
    const key = `presence:${f.condition}`;
    const v = f.existence === 'present' ? 1 : 0;
    if (out[key] !== undefined && out[key] !== v) conflicting.add(f.condition);
    out[key] = v;
  }
  for (const c of conflicting) delete out[`presence:${c}`];
  return out;
}
