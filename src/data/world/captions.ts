/**
 * Affirmative captions of a scene: every drawn object with its size, colour, shape and place, in
 * reading order, through several phrasings. They name only what is drawn, so they are true by
 * construction; negated captions are the data builders' job, from the facts.
 */
import type { WorldSpec } from './vocab.js';
import { objectLocation, type WorldObject, type WorldScene } from './scene.js';

/** "on the left" for a side, "in the top left" for a quadrant. */
export function locationPhrase(location: string): string {
  return location.includes(' ') ? `in the ${location}` : `on the ${location}`;
}

/** "a", "a and b", "a, b and c". */
export function andList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

type Phrase = (o: WorldObject, spec: WorldSpec) => string;

const placed: Phrase = (o, spec) => `a ${o.size} ${o.colour} ${o.shape} ${locationPhrase(objectLocation(o, spec))}`;
// Radiology order, as in "a small left pneumothorax".
const reportStyle: Phrase = (o, spec) => `a ${o.size} ${objectLocation(o, spec)} ${o.colour} ${o.shape}`;

const TEMPLATES: readonly ((list: (p: Phrase) => string) => string)[] = [
  (list) => `there is ${list(placed)}.`,
  (list) => `this image features ${list(placed)}.`,
  (list) => `this image shows ${list(placed)}.`,
  (list) => `${list(placed)}.`,
  (list) => `there is ${list(reportStyle)}.`,
];

/** Number of captions `affirmativeCaptions` returns. */
export const CAPTION_TEMPLATE_COUNT = TEMPLATES.length;

/** One caption per template, in template order. */
export function affirmativeCaptions(scene: WorldScene, spec: WorldSpec): string[] {
  const list = (p: Phrase) => andList(scene.objects.map((o) => p(o, spec)));
  return TEMPLATES.map((t) => t(list));
}

const kindOnly: Phrase = (o) => `a ${o.colour} ${o.shape}`;
const sized: Phrase = (o) => `a ${o.size} ${o.colour} ${o.shape}`;
const located: Phrase = (o, spec) => `a ${o.colour} ${o.shape} ${locationPhrase(objectLocation(o, spec))}`;

const PARTIAL_TEMPLATES: readonly ((list: (p: Phrase) => string) => string)[] = [
  (list) => `this image features ${list(kindOnly)}.`,
  (list) => `there is ${list(sized)}.`,
  (list) => `there is ${list(located)}.`,
];

/** Number of captions `partialCaptions` returns. */
export const PARTIAL_TEMPLATE_COUNT = PARTIAL_TEMPLATES.length;

/**
 * Captions that leave an attribute out: every object by kind only, with its size, or with its
 * place. Still true of the image and still affirmative. Pretraining mixes them in so that a kind
 * ("a red square") has one direction in the embedding space wherever and however large it is
 * drawn (a claim such as "There is a red square." asks exactly that); with only full
 * descriptions, the first tiny model carried a kind's presence at 70 % balanced accuracy under a
 * linear probe. Not part of a record's `captions`, which stay unique to their scene.
 */
export function partialCaptions(scene: WorldScene, spec: WorldSpec): string[] {
  const list = (p: Phrase) => andList(scene.objects.map((o) => p(o, spec)));
  return PARTIAL_TEMPLATES.map((t) => t(list));
}
