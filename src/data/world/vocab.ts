/**
 * What the miniature world is made of: shapes, colours, sizes and places, and how a condition
 * ("red square") is spelt. The choices keep every object recognisable at 24-64 px with 8 px
 * patches, and every colour exactly checkable in the pixels (flat fills, no anti-aliasing).
 */

export const ALL_SHAPES = ['square', 'circle', 'triangle', 'cross', 'diamond'] as const;
export type Shape = (typeof ALL_SHAPES)[number];

/** Saturated, mutually distant colours; none is near the background. */
export const COLOUR_RGB = {
  red: [220, 40, 40],
  green: [40, 190, 70],
  blue: [40, 90, 230],
  yellow: [235, 210, 40],
  purple: [160, 70, 210],
  white: [235, 235, 235],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Colour = keyof typeof COLOUR_RGB;
export const ALL_COLOURS = Object.keys(COLOUR_RGB) as Colour[];

/** Plain dark grey: no object colour is within 150 of it on any channel sum. */
export const BACKGROUND_RGB: readonly [number, number, number] = [24, 24, 28];

/** Severity of the radiology facts maps onto object size. */
export const SIZES = ['small', 'large'] as const;
export type Size = (typeof SIZES)[number];

export const SIDES = ['left', 'right'] as const;
export type Side = (typeof SIDES)[number];
export const ROWS = ['top', 'bottom'] as const;
export type Row = (typeof ROWS)[number];

export const SHAPE_PLURAL: Record<Shape, string> = {
  square: 'squares',
  circle: 'circles',
  triangle: 'triangles',
  cross: 'crosses',
  diamond: 'diamonds',
};

/** The part of the world a generator draws from; it fixes the conditions and the vocabulary. */
export interface WorldSpec {
  readonly shapes: readonly Shape[];
  readonly colours: readonly Colour[];
  /** Locations name the quadrant ("top left") instead of only the side ("left"). */
  readonly quadrants: boolean;
}

/** Four shapes, four colours, sides only: 16 conditions, small enough to learn on a CPU in minutes. */
export const DEFAULT_SPEC: WorldSpec = {
  shapes: ['square', 'circle', 'triangle', 'cross'],
  colours: ['red', 'green', 'blue', 'yellow'],
  quadrants: false,
};

export class WorldSpecError extends Error {
  constructor(key: string, message: string) {
    super(`world spec: ${key}: ${message}`);
    this.name = 'WorldSpecError';
  }
}

function checkList<T extends string>(key: string, got: readonly string[], known: readonly T[], min: number): T[] {
  if (!Array.isArray(got) || got.length < min) throw new WorldSpecError(key, `expected at least ${min} entries, got ${JSON.stringify(got)}`);
  const seen = new Set<string>();
  for (const g of got) {
    if (!(known as readonly string[]).includes(g)) throw new WorldSpecError(key, `unknown entry ${JSON.stringify(g)} (known: ${known.join(', ')})`);
    if (seen.has(g)) throw new WorldSpecError(key, `duplicate entry ${JSON.stringify(g)}`);
    seen.add(g);
  }
  return got as T[];
}

/** Fills defaults and checks names; two colours and two shapes at least, so absences exist. */
export function resolveSpec(spec: Partial<WorldSpec> = {}): WorldSpec {
  return {
    shapes: checkList('shapes', spec.shapes ?? DEFAULT_SPEC.shapes, ALL_SHAPES, 2),
    colours: checkList('colours', spec.colours ?? DEFAULT_SPEC.colours, ALL_COLOURS, 2),
    quadrants: spec.quadrants ?? DEFAULT_SPEC.quadrants,
  };
}

/** A condition is "{colour} {shape}": the object kind, as captions name it. */
export function conditionName(colour: Colour, shape: Shape): string {
  return `${colour} ${shape}`;
}

/** Every object condition of a spec, colour-major. */
export function worldConditions(spec: WorldSpec = DEFAULT_SPEC): string[] {
  const out: string[] = [];
  for (const c of spec.colours) for (const s of spec.shapes) out.push(conditionName(c, s));
  return out;
}

/** The colour and shape of an object condition, or undefined when it is not one. */
export function parseCondition(condition: string): { colour: Colour; shape: Shape } | undefined {
  const parts = condition.split(' ');
  if (parts.length !== 2) return undefined;
  const [colour, shape] = parts;
  if (!(ALL_COLOURS as string[]).includes(colour) || !(ALL_SHAPES as readonly string[]).includes(shape)) return undefined;
  return { colour: colour as Colour, shape: shape as Shape };
}

/** "a", "a or b", "a, b or c": the disjunctive list used by the affirmative alternatives. */
export function orList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
