/**
 * Facts of a scene in the radiology structure: object condition = "{colour} {shape}",
 * location = side (or quadrant), severity = size. With a closed vocabulary every condition not
 * drawn is a definite absence; a few of them are listed, half of them near misses (sharing the
 * colour or the shape of a drawn object) so that an absence cannot be read off one attribute.
 */
import type { Fact } from '../facts.js';
import { conditionName, worldConditions, type WorldSpec } from './vocab.js';
import { objectCondition, objectLocation, type WorldScene } from './scene.js';
import type { WorldRng } from './rng.js';

export function presentFacts(scene: WorldScene, spec: WorldSpec): Fact[] {
  return scene.objects.map((o) => ({
    condition: objectCondition(o),
    existence: 'present',
    location: objectLocation(o, spec),
    severity: o.size,
  }));
}

/** Every condition of the spec that the scene does not draw. */
export function absentConditions(scene: WorldScene, spec: WorldSpec): string[] {
  const present = new Set(scene.objects.map(objectCondition));
  return worldConditions(spec).filter((c) => !present.has(c));
}

/** Absent conditions that share a colour or a shape with a drawn object. */
export function nearMissConditions(scene: WorldScene, spec: WorldSpec): string[] {
  const present = new Set(scene.objects.map(objectCondition));
  const near = new Set<string>();
  for (const o of scene.objects) {
    for (const s of spec.shapes) near.add(conditionName(o.colour, s));
    for (const c of spec.colours) near.add(conditionName(c, o.shape));
  }
  return worldConditions(spec).filter((c) => near.has(c) && !present.has(c));
}

/** `count` absent conditions (fewer when the world has fewer): even picks near misses when any are left. */
export function sampleAbsent(scene: WorldScene, spec: WorldSpec, rng: WorldRng, count: number): string[] {
  const all = absentConditions(scene, spec);
  const near = nearMissConditions(scene, spec);
  const chosen: string[] = [];
  for (let k = 0; k < count && chosen.length < all.length; k++) {
    const nearLeft = near.filter((c) => !chosen.includes(c));
    const pool = k % 2 === 0 && nearLeft.length > 0 ? nearLeft : all.filter((c) => !chosen.includes(c));
    chosen.push(rng.pick(pool));
  }
  return chosen;
}

/** Present facts in reading order, then the sampled absences (no location or severity). */
export function sceneFacts(scene: WorldScene, spec: WorldSpec, rng: WorldRng, absentCount: number): Fact[] {
  const absent: Fact[] = sampleAbsent(scene, spec, rng, absentCount).map((condition) => ({ condition, existence: 'absent' }));
  return [...presentFacts(scene, spec), ...absent];
}
