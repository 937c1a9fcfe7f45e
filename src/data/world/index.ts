/**
 * The procedural miniature world: images of one to three (up to four) flat-coloured shapes on a
 * dark background, with ground-truth facts in the radiology structure, so that every data builder
 * (captions, claim sets, NegBench and paired MCQs, probing pairs) runs on it unchanged and a tiny
 * CLIP can learn it on a CPU.
 *
 * Mapping onto the facts: condition = "{colour} {shape}" ("red square"), location = side of the
 * image ("left" / "right"; "top left" ... with `quadrants`), severity = size ("small" / "large").
 * A record lists its drawn objects as present facts and a few undrawn conditions as definite
 * absences (with a closed vocabulary every undrawn condition is absent; `absentConditions` lists
 * them all). Scene-level properties with exact affirmative alternatives are in `propertyFacts`
 * (see properties.ts). Everything is a pure function of (seed, index, options).
 */
import type { Fact, Study } from '../facts.js';
import { WorldRng, checkSeed, itemState } from './rng.js';
import { resolveSpec, type WorldSpec } from './vocab.js';
import { checkImageSize, checkObjectCounts, sampleScene, type WorldScene } from './scene.js';
import { renderScene, type WorldImage } from './render.js';
import { sceneFacts } from './scene-facts.js';
import { propertyFacts } from './properties.js';
import { affirmativeCaptions } from './captions.js';

export interface WorldOptions {
  seed: number;
  /** Records to make. */
  count: number;
  /** Image width and height in pixels: even, 24..1024; default 32. */
  size?: number;
  /** Index of the first record (default 0): record i is the same whatever count and start are. */
  start?: number;
  spec?: Partial<WorldSpec>;
  /** Objects per image, uniform in [minObjects, maxObjects]; default 1..3, at most 4. */
  minObjects?: number;
  maxObjects?: number;
  /** Undrawn conditions listed as absent facts per image; default 2. */
  absentPerImage?: number;
  /** Attach rendered pixels (default true); without them, call `renderScene(record.scene)`. */
  render?: boolean;
}

export interface WorldRecord extends Study {
  /** Affirmative captions, one per template (all true of the image). */
  captions: string[];
  /** The ground truth the pixels are drawn from. */
  scene: WorldScene;
  /** Every scene property, present or absent, for the paired-MCQ builder (existence only). */
  propertyFacts: Fact[];
  pixels?: WorldImage;
}

/** Options with defaults filled in and checked; the spec is resolved. */
export interface ResolvedWorldOptions {
  seed: number;
  size: number;
  spec: WorldSpec;
  minObjects: number;
  maxObjects: number;
  absentPerImage: number;
  render: boolean;
}

export function resolveWorldOptions(opts: Omit<WorldOptions, 'count' | 'start'>): ResolvedWorldOptions {
  checkSeed(opts.seed, 'generateWorld: seed');
  const size = opts.size ?? 32;
  checkImageSize(size, 'generateWorld: size');
  const minObjects = opts.minObjects ?? 1;
  const maxObjects = opts.maxObjects ?? Math.max(3, minObjects);
  checkObjectCounts({ minObjects, maxObjects });
  const absentPerImage = opts.absentPerImage ?? 2;
  if (!Number.isInteger(absentPerImage) || absentPerImage < 0) {
    throw new RangeError(`generateWorld: absentPerImage must be a non-negative integer, got ${absentPerImage}`);
  }
  return { seed: opts.seed, size, spec: resolveSpec(opts.spec), minObjects, maxObjects, absentPerImage, render: opts.render ?? true };
}

/** The record at one index: what `generateWorld` makes there. */
export function worldRecord(index: number, o: ResolvedWorldOptions): WorldRecord {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`worldRecord: index must be a non-negative integer, got ${index}`);
  const rng = new WorldRng(itemState(o.seed, index));
  const scene = sampleScene(rng, o.spec, o.size, o);
  const id = `world-${o.seed}-${index}`;
  const record: WorldRecord = {
    id,
    // One image per "patient": patient-level splits are image-level splits here.
    patient: id,
    image: `world:${o.seed}:${index}`,
    facts: sceneFacts(scene, o.spec, rng, o.absentPerImage),
    captions: affirmativeCaptions(scene, o.spec),
    scene,
    propertyFacts: propertyFacts(scene, o.spec),
  };
  if (o.render) record.pixels = renderScene(scene);
  return record;
}

/** Records start .. start + count - 1 of the world of `seed`. */
export function generateWorld(opts: WorldOptions): WorldRecord[] {
  const resolved = resolveWorldOptions(opts);
  const start = opts.start ?? 0;
  if (!Number.isSafeInteger(opts.count) || opts.count < 0) throw new RangeError(`generateWorld: count must be a non-negative integer, got ${opts.count}`);
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`generateWorld: start must be a non-negative integer, got ${start}`);
  const out: WorldRecord[] = [];
  for (let i = 0; i < opts.count; i++) out.push(worldRecord(start + i, resolved));
  return out;
}

export {
  ALL_COLOURS, ALL_SHAPES, BACKGROUND_RGB, COLOUR_RGB, DEFAULT_SPEC, ROWS, SHAPE_PLURAL, SIDES, SIZES, WorldSpecError,
  conditionName, parseCondition, resolveSpec, worldConditions,
  type Colour, type Row, type Shape, type Side, type Size, type WorldSpec,
} from './vocab.js';
export {
  MAX_OBJECTS, objectCondition, objectExtent, objectLocation, objectRow, objectSide, type WorldObject, type WorldScene,
} from './scene.js';
export { objectPixels, renderScene, shapeMask, type WorldImage } from './render.js';
export { absentConditions, nearMissConditions, presentFacts } from './scene-facts.js';
export { propertyFacts, sceneProperties, worldAffirmativeAlternatives, type SceneProperty } from './properties.js';
export { CAPTION_TEMPLATE_COUNT, PARTIAL_TEMPLATE_COUNT, affirmativeCaptions, locationPhrase, partialCaptions } from './captions.js';
export { BUILDER_WORDS, FULL_SPEC, worldVocabulary, worldWords } from './words.js';
export { TWIN_KINDS, dropObject, mirrorScene, recolourObject, reshapeObject, resizeObject, twinScene, type TwinKind } from './twins.js';
export { sceneAttributes } from './attributes.js';
