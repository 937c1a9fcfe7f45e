/**
 * Scene properties with exact affirmative alternatives, for the paired negated / affirmative MCQs
 * (the world's counterpart of the NAST paper's Appendix A table).
 *
 * An object condition ("red square") has no affirmative equivalent of its absence, as "no car"
 * has none in photographs. A property of the whole scene does, because every image has at least
 * one object and every object has exactly one colour, shape, size, side and row, so "no X" is
 * equivalent to "only the complement of X":
 *
 *   "red object"         absent <-> "only green, blue or yellow objects"  (the spec's other colours)
 *   "square"             absent <-> "only circles, triangles or crosses"  (the spec's other shapes)
 *   "large object"       absent <-> "only small objects"
 *   "small object"       absent <-> "only large objects"
 *   "object on the left" absent <-> "objects only on the right"  (and right <-> left)
 *   "object at the top"  absent <-> "objects only at the bottom" (and bottom <-> top; quadrant specs only)
 *
 * The equivalence is exact in both directions, so a paired MCQ's correct option stays correct and
 * every foil stays false after the rewrite.
 */
import type { Fact } from '../facts.js';
import { SHAPE_PLURAL, orList, type WorldSpec } from './vocab.js';
import { objectRow, objectSide, type WorldScene } from './scene.js';

export interface SceneProperty {
  /** Written like a condition: "there is no {condition}", "a {condition} is seen". */
  readonly condition: string;
  /** Affirmative phrase true exactly when the property is absent. */
  readonly alternative: string;
  holds(scene: WorldScene): boolean;
}

/** The properties of a spec, in a fixed order: colours, shapes, sizes, sides, rows. */
export function sceneProperties(spec: WorldSpec): SceneProperty[] {
  const out: SceneProperty[] = [];
  for (const c of spec.colours) {
    out.push({
      condition: `${c} object`,
      alternative: `only ${orList(spec.colours.filter((x) => x !== c))} objects`,
      holds: (s) => s.objects.some((o) => o.colour === c),
    });
  }
  for (const sh of spec.shapes) {
    out.push({
      condition: sh,
      alternative: `only ${orList(spec.shapes.filter((x) => x !== sh).map((x) => SHAPE_PLURAL[x]))}`,
      holds: (s) => s.objects.some((o) => o.shape === sh),
    });
  }
  out.push(
    { condition: 'large object', alternative: 'only small objects', holds: (s) => s.objects.some((o) => o.size === 'large') },
    { condition: 'small object', alternative: 'only large objects', holds: (s) => s.objects.some((o) => o.size === 'small') },
    { condition: 'object on the left', alternative: 'objects only on the right', holds: (s) => s.objects.some((o) => objectSide(o) === 'left') },
    { condition: 'object on the right', alternative: 'objects only on the left', holds: (s) => s.objects.some((o) => objectSide(o) === 'right') },
  );
  if (spec.quadrants) {
    out.push(
      { condition: 'object at the top', alternative: 'objects only at the bottom', holds: (s) => s.objects.some((o) => objectRow(o) === 'top') },
      { condition: 'object at the bottom', alternative: 'objects only at the top', holds: (s) => s.objects.some((o) => objectRow(o) === 'bottom') },
    );
  }
  return out;
}

/** condition -> affirmative alternative of its absence, for the paired-MCQ builder. */
export function worldAffirmativeAlternatives(spec: WorldSpec): Map<string, string> {
  return new Map(sceneProperties(spec).map((p) => [p.condition, p.alternative]));
}

/** Every scene property as an existence-only fact; all are definite, none has location or severity. */
export function propertyFacts(scene: WorldScene, spec: WorldSpec): Fact[] {
  return sceneProperties(spec).map((p) => ({ condition: p.condition, existence: p.holds(scene) ? 'present' : 'absent' }));
}
