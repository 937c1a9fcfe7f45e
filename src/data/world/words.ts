/**
 * The word list of the world's word-level tokenizer: every word the world itself writes
 * (conditions, captions, scene properties and their affirmative alternatives), plus the words the
 * data builders' templates use (negation cues, MCQ stems, claim phrasings, the probing modifier
 * "severe"), so that no builder output needs the unknown token.
 */
import { splitWords } from '../../models/tokenizer/word.js';
import { ALL_COLOURS, ALL_SHAPES, ROWS, SHAPE_PLURAL, SIDES, SIZES, worldConditions, type WorldSpec } from './vocab.js';
import { affirmativeCaptions } from './captions.js';
import { sceneProperties } from './properties.js';
import { objectExtent, type WorldObject, type WorldScene } from './scene.js';

/** Template words of the data builders (existence, location and severity phrasings, NegBench and paired MCQs). */
export const BUILDER_WORDS: readonly string[] = [
  // Articles, copulas, pronouns, conjunctions, prepositions.
  'a', 'an', 'the', 'this', 'that', 'these', 'those', 'it', 'its', 'there', "there's", 'here',
  'is', 'are', 'was', 'were', 'be', 'been', 'being', 'has', 'have', 'had',
  'does', 'do', 'did', 'can', 'may', 'and', 'or', 'but', 'nor', 'neither', 'either', 'while', 'whereas',
  'also', 'however', 'yet', 'both', 'as', 'well', 'so', 'than', 'other', 'others', 'another', 'else',
  'of', 'in', 'on', 'at', 'to', 'from', 'by', 'for', 'with', 'within', 'without', 'into', 'near', 'beside',
  'except', 'apart', 'besides', 'instead', 'rather', 'only', 'just', 'exactly', 'alone',
  // Negation cues.
  'no', 'not', 'none', 'nothing', 'never', 'absent', 'absence', 'lacking', 'lacks', 'lack', 'free', 'missing',
  "isn't", "aren't", "doesn't", "don't", "can't", 'cannot', 'negative', 'excluded', 'ruled', 'out',
  // Presence cues.
  'present', 'presence', 'see', 'seen', 'noted', 'visible', 'evident', 'evidence', 'identified', 'observed', 'detected',
  'shown', 'appears', 'appear', 'sign', 'signs', 'finding', 'findings', 'positive', 'there', 'demonstrated',
  'features', 'feature', 'featuring', 'include', 'includes', 'including', 'included', 'contain', 'contains',
  'containing', 'show', 'shows', 'showing', 'depict', 'depicts', 'depicting', 'has', 'having', 'with',
  // Nouns of the image and the question.
  'image', 'images', 'picture', 'photo', 'scene', 'view', 'object', 'objects', 'shape', 'shapes', 'thing',
  'things', 'item', 'items', 'colour', 'colours', 'color', 'colors', 'size', 'sizes', 'side', 'sides',
  'half', 'corner', 'region', 'area', 'part', 'which', 'what', 'following', 'best', 'describes', 'describe',
  'description', 'descriptions', 'correct', 'correctly', 'option', 'options', 'answer', 'statement', 'summary',
  'true', 'false', 'any', 'some', 'all', 'each', 'every', 'one', 'two', 'three', 'four', 'single', 'several',
  'many', 'more', 'most', 'least', 'same', 'different',
  // Places and amounts.
  'left', 'right', 'top', 'bottom', 'upper', 'lower', 'middle', 'centre', 'center', 'bilateral', 'both',
  'small', 'large', 'big', 'tiny', 'mild', 'moderate', 'severe', 'minimal', 'slight', 'extensive',
  // Punctuation the tokenizer splits off.
  '.', ',', ';', ':', '?', '!', '(', ')', '"', "'", '-',
];

/** Every object of every kind in every cell and size, so that captions cover all their words. */
function coverageScenes(spec: WorldSpec): WorldScene[] {
  const size = 32;
  const scenes: WorldScene[] = [];
  for (const colour of spec.colours) {
    for (const shape of spec.shapes) {
      const objects: WorldObject[] = [0, 1, 2, 3].map((cell) => {
        const s = SIZES[cell % 2];
        const column = (cell % 2) as 0 | 1;
        const row = (cell >> 1) as 0 | 1;
        return { shape, colour, size: s, column, row, extent: objectExtent(size, s), x: column * 16 + 1, y: row * 16 + 1 };
      });
      scenes.push({ size, objects });
    }
  }
  return scenes;
}

/** Words the world writes for one spec (captions, conditions, properties, alternatives), sorted. */
export function worldWords(spec: WorldSpec): string[] {
  const words = new Set<string>();
  const add = (text: string) => splitWords(text).forEach((w) => words.add(w));
  for (const c of worldConditions(spec)) add(c);
  for (const s of spec.shapes) add(SHAPE_PLURAL[s]);
  for (const p of sceneProperties(spec)) {
    add(p.condition);
    add(p.alternative);
  }
  for (const scene of coverageScenes(spec)) for (const c of affirmativeCaptions(scene, spec)) add(c);
  return [...words].sort();
}

/** Every spec's words at once: all shapes and colours, sides and quadrants. */
export const FULL_SPEC: WorldSpec = { shapes: ALL_SHAPES, colours: ALL_COLOURS, quadrants: true };

/**
 * The word tokenizer's list: the world's words and the builders' words, sorted and unique. The
 * default covers every spec, so one tokenizer (and one embedding table) serves all of them.
 */
export function worldVocabulary(spec: WorldSpec = FULL_SPEC): string[] {
  const words = new Set<string>(worldWords(spec));
  for (const w of BUILDER_WORDS) words.add(w);
  for (const w of [...SIZES, ...SIDES, ...ROWS]) words.add(w);
  return [...words].sort();
}
