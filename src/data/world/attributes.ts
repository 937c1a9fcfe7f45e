/**
 * What a world image shows, as binary attributes for linear probes of an image embedding: the
 * presence of every colour-shape condition of the spec, and for each drawn object its size and
 * its side (its row too, with quadrants). Exactly the attributes the claim sets, captions and
 * MCQs ask about, so a probe below chance on one of them means no text-side fine-tune can learn
 * the claims that test it.
 */
import { worldConditions, type WorldSpec } from './vocab.js';
import { objectCondition, objectRow, objectSide, type WorldScene } from './scene.js';

/**
 * `presence:{condition}` for every condition (1 drawn, 0 not); for each drawn object
 * `size:{condition}` (1 large, 0 small), `side:{condition}` (1 left, 0 right) and, with
 * quadrants, `row:{condition}` (1 top, 0 bottom).
 */
export function sceneAttributes(scene: WorldScene, spec: WorldSpec): Record<string, 0 | 1> {
  const out: Record<string, 0 | 1> = {};
  const drawn = new Map(scene.objects.map((o) => [objectCondition(o), o]));
  for (const c of worldConditions(spec)) {
    const o = drawn.get(c);
    out[`presence:${c}`] = o ? 1 : 0;
    if (!o) continue;
    out[`size:${c}`] = o.size === 'large' ? 1 : 0;
    out[`side:${c}`] = objectSide(o) === 'left' ? 1 : 0;
    if (spec.quadrants) out[`row:${c}`] = objectRow(o) === 'top' ? 1 : 0;
  }
  return out;
}
