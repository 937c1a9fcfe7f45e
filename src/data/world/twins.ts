/**
 * Counterfactual twins of a scene: the same image with exactly one thing changed (every object
 * mirrored to the other side, one object resized, recoloured, reshaped, or removed). Pretraining
 * puts a scene and its twin in the same contrastive batch, so the only way to tell their
 * captions apart is the changed attribute: without them, two images in a batch of 64 almost
 * never differ only in side or size, and the image tower learns to drop both (measured on the
 * first tiny-world model: a linear probe read the side of an object at 50 %, chance). Captions
 * stay affirmative: twins are hard negatives, not negations.
 */
import { conditionName, type Colour, type Shape, type WorldSpec } from './vocab.js';
import { objectExtent, type WorldObject, type WorldScene } from './scene.js';
import type { WorldRng } from './rng.js';

export const TWIN_KINDS = ['mirror', 'size', 'colour', 'shape', 'drop'] as const;
export type TwinKind = (typeof TWIN_KINDS)[number];

/** Reading order: top row first, left before right (as sampleScene lists objects). */
function inReadingOrder(objects: WorldObject[]): WorldObject[] {
  return objects.sort((a, b) => a.row - b.row || a.column - b.column);
}

/** Every object moved to the other column, at the mirrored pixel position. */
export function mirrorScene(scene: WorldScene): WorldScene {
  const objects = scene.objects.map((o) => ({ ...o, column: (1 - o.column) as 0 | 1, x: scene.size - o.x - o.extent }));
  return { size: scene.size, objects: inReadingOrder(objects) };
}

/** Object k at the other size, its box kept centred where it was and inside its cell's margin. */
export function resizeObject(scene: WorldScene, k: number): WorldScene {
  const o = scene.objects[k];
  const size = o.size === 'small' ? 'large' : 'small';
  const extent = objectExtent(scene.size, size);
  const cell = scene.size / 2;
  // Both extents are odd, so the centre shift is a whole pixel.
  const shift = (o.extent - extent) / 2;
  const place = (start: number, at: number) => Math.min(Math.max(at + shift, start + 1), start + cell - 1 - extent);
  const moved: WorldObject = { ...o, size, extent, x: place(o.column * cell, o.x), y: place(o.row * cell, o.y) };
  return { size: scene.size, objects: scene.objects.map((x, i) => (i === k ? moved : x)) };
}

function kindsOf(scene: WorldScene, except: number): Set<string> {
  return new Set(scene.objects.filter((_, i) => i !== except).map((o) => conditionName(o.colour, o.shape)));
}

/** Object k in another colour of the spec that no other object of its shape has; null when none is left. */
export function recolourObject(scene: WorldScene, k: number, spec: WorldSpec, rng: WorldRng): WorldScene | null {
  const o = scene.objects[k];
  const taken = kindsOf(scene, k);
  const free = spec.colours.filter((c) => c !== o.colour && !taken.has(conditionName(c, o.shape)));
  if (free.length === 0) return null;
  const colour: Colour = rng.pick(free);
  return { size: scene.size, objects: scene.objects.map((x, i) => (i === k ? { ...x, colour } : x)) };
}

/** Object k as another shape of the spec that no other object of its colour has; null when none is left. */
export function reshapeObject(scene: WorldScene, k: number, spec: WorldSpec, rng: WorldRng): WorldScene | null {
  const o = scene.objects[k];
  const taken = kindsOf(scene, k);
  const free = spec.shapes.filter((s) => s !== o.shape && !taken.has(conditionName(o.colour, s)));
  if (free.length === 0) return null;
  const shape: Shape = rng.pick(free);
  return { size: scene.size, objects: scene.objects.map((x, i) => (i === k ? { ...x, shape } : x)) };
}

/** The scene without object k; null for a one-object scene (every image has an object). */
export function dropObject(scene: WorldScene, k: number): WorldScene | null {
  if (scene.objects.length < 2) return null;
  return { size: scene.size, objects: scene.objects.filter((_, i) => i !== k) };
}

/** One twin of the given kind (the changed object drawn with rng), or null when the scene has none. */
export function twinScene(scene: WorldScene, kind: TwinKind, spec: WorldSpec, rng: WorldRng): WorldScene | null {
  if (kind === 'mirror') return mirrorScene(scene);
  const k = rng.int(scene.objects.length);
  switch (kind) {
    case 'size':
      return resizeObject(scene, k);
    case 'colour':
      return recolourObject(scene, k, spec, rng);
    case 'shape':
      return reshapeObject(scene, k, spec, rng);
    case 'drop':
      return dropObject(scene, k);
  }
}
