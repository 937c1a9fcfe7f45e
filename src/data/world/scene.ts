/**
 * Scene layout: the image is a 2 x 2 grid of cells and each object sits inside its own cell with
 * at least one background pixel around it, so objects never touch or overlap and an object's side
 * (and row) is the side of its cell.
 */
import { conditionName, type Colour, type Row, type Shape, type Side, type Size, type WorldSpec } from './vocab.js';
import type { WorldRng } from './rng.js';

export interface WorldObject {
  readonly shape: Shape;
  readonly colour: Colour;
  readonly size: Size;
  /** Grid cell: column 0 is the left half, row 0 the top half. */
  readonly column: 0 | 1;
  readonly row: 0 | 1;
  /** Top-left pixel of the object's extent x extent box. */
  readonly x: number;
  readonly y: number;
  readonly extent: number;
}

export interface WorldScene {
  /** Width and height in pixels. */
  readonly size: number;
  /** In reading order: top row first, left before right. */
  readonly objects: readonly WorldObject[];
}

export const MIN_IMAGE_SIZE = 24;
export const MAX_IMAGE_SIZE = 1024;
/** Four cells, so at most four objects. */
export const MAX_OBJECTS = 4;

/** Image sizes must be even (two equal halves) and big enough that small shapes stay distinct. */
export function checkImageSize(size: number, what = 'size'): void {
  if (!Number.isInteger(size) || size % 2 !== 0 || size < MIN_IMAGE_SIZE || size > MAX_IMAGE_SIZE) {
    throw new RangeError(`${what} must be an even integer in [${MIN_IMAGE_SIZE}, ${MAX_IMAGE_SIZE}], got ${size}`);
  }
}

const oddDown = (n: number) => (n % 2 === 1 ? n : n - 1);

/** Side of an object's square box; odd, so symmetric shapes have a centre pixel. */
export function objectExtent(imageSize: number, size: Size): number {
  const cell = imageSize / 2;
  return size === 'large' ? oddDown(Math.min(Math.round(cell * 0.8), cell - 2)) : oddDown(Math.round(cell * 0.5));
}

export function objectSide(o: WorldObject): Side {
  return o.column === 0 ? 'left' : 'right';
}

export function objectRow(o: WorldObject): Row {
  return o.row === 0 ? 'top' : 'bottom';
}

/** "left" / "right", or "top left" ... when the spec names quadrants. */
export function objectLocation(o: WorldObject, spec: WorldSpec): string {
  return spec.quadrants ? `${objectRow(o)} ${objectSide(o)}` : objectSide(o);
}

export function objectCondition(o: WorldObject): string {
  return conditionName(o.colour, o.shape);
}

export interface SceneOptions {
  minObjects: number;
  maxObjects: number;
}

export function checkObjectCounts(opts: SceneOptions): void {
  const { minObjects: lo, maxObjects: hi } = opts;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi < lo || hi > MAX_OBJECTS) {
    throw new RangeError(`minObjects/maxObjects must be integers with 1 <= minObjects <= maxObjects <= ${MAX_OBJECTS}, got ${lo}/${hi}`);
  }
}

/**
 * Draws one scene: a uniform object count, distinct cells, and distinct conditions (no two objects
 * of the same colour and shape, so every present fact has one location and one size).
 */
export function sampleScene(rng: WorldRng, spec: WorldSpec, imageSize: number, opts: SceneOptions): WorldScene {
  const kinds = spec.colours.length * spec.shapes.length;
  const n = Math.min(opts.minObjects + rng.int(opts.maxObjects - opts.minObjects + 1), kinds);
  const cells = rng.shuffle([0, 1, 2, 3]).slice(0, n).sort((a, b) => a - b);
  const used = new Set<number>();
  const cell = imageSize / 2;
  const objects: WorldObject[] = cells.map((c) => {
    let kind = rng.int(kinds);
    while (used.has(kind)) kind = (kind + 1) % kinds;
    used.add(kind);
    const colour = spec.colours[Math.floor(kind / spec.shapes.length)];
    const shape = spec.shapes[kind % spec.shapes.length];
    const size: Size = rng.int(2) === 0 ? 'small' : 'large';
    const extent = objectExtent(imageSize, size);
    const column = (c % 2) as 0 | 1;
    const row = (c >> 1) as 0 | 1;
    // One pixel of background on every side of the box inside its cell; the rest is jitter.
    const slack = cell - 2 - extent;
    return {
      shape, colour, size, column, row, extent,
      x: column * cell + 1 + rng.int(slack + 1),
      y: row * cell + 1 + rng.int(slack + 1),
    };
  });
  return { size: imageSize, objects };
}
