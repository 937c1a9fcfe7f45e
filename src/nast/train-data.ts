/**
 * What a fine-tuning recipe trains on, from a built data folder's records, and the order it sees
 * it in. Browser-safe.
 *
 * Both recipes pair an image with one caption (for L_CLIP) and one set of choices with a single
 * correct one (the second term's cross-entropy):
 *   nast      claim sets (NAST's L_claim), each with a negated caption of its image;
 *   negbench  NegBench MCQs (L_MCQ over four options, Affirmation / Negation / Hybrid answers),
 *             each with a negated caption of its image (NegBench's CC12M-NegCap part).
 * The caption is, by default, a negated caption of the image (`CaptionKind` picks another); an
 * image without one falls back to its affirmative caption, then to the true choice, so every
 * example has a caption.
 */
import { makeRng, shuffle } from '../data/rng.js';
import { asRecipe, RECIPE_BY_NAME, RECIPE_NAMES, type Recipe as RecipeObject, type RecipeName } from './recipe.js';

/** @deprecated the recipe names: use RECIPE_NAMES from recipe.ts (recipes are objects now). */
export const RECIPES = RECIPE_NAMES;
/** @deprecated a recipe's name: use RecipeName, or the Recipe object of recipe.ts. */
export type Recipe = RecipeName;

export interface Example {
  image: string;
  caption: string;
  choices: string[];
  answer: number;
}

/**
 * Which captions the L_CLIP term pairs with the images: the builders' negated captions (facts
 * through templates, at least one absence), NegBench-style Retrieval-Neg captions (an image's own
 * affirmative caption with one "There is no X in the image." sentence), the affirmative ones, or
 * all of an image's captions in turn.
 */
export const CAPTION_KINDS = ['negated', 'retrieval-neg', 'affirmative', 'all'] as const;
export type CaptionKind = (typeof CAPTION_KINDS)[number];
const RECORD_KIND: Record<Exclude<CaptionKind, 'all'>, string> = { negated: 'negated-caption', 'retrieval-neg': 'retrieval-neg-caption', affirmative: 'caption' };

/** @deprecated the record kinds a recipe's choice sets come from: use `recipe.choiceKind`. */
export const CHOICE_KIND: Record<RecipeName, 'claim-set' | 'negbench-mcq'> = { nast: RECIPE_BY_NAME.nast.choiceKind, negbench: RECIPE_BY_NAME.negbench.choiceKind };

interface RecordLike {
  kind: string;
  image: string;
}

/** Each choice set of the recipe with a caption of its image (of `captions` kind, in turn). */
export function readExamples(records: readonly RecordLike[], recipeOrName: RecipeObject | RecipeName, where: string, captions: CaptionKind = 'negated'): Example[] {
  const recipe = asRecipe(recipeOrName);
  const negated = new Map<string, string[]>();
  const plain = new Map<string, string>();
  const wanted = captions === 'all' ? Object.values(RECORD_KIND) : [RECORD_KIND[captions]];
  for (const r of records) {
    const text = (r as unknown as { caption?: string }).caption;
    if (typeof text !== 'string') continue;
    if (wanted.includes(r.kind)) negated.set(r.image, [...(negated.get(r.image) ?? []), text]);
    if (r.kind === 'caption' && !plain.has(r.image)) plain.set(r.image, text);
  }
  const out: Example[] = [];
  const used = new Map<string, number>();
  const kind = recipe.choiceKind;
  for (const r of records) {
    if (r.kind !== kind) continue;
    const { choices, answer } = recipe.readChoices(r);
    const caps = negated.get(r.image);
    const k = used.get(r.image) ?? 0;
    used.set(r.image, k + 1);
    out.push({ image: r.image, caption: caps ? caps[k % caps.length] : plain.get(r.image) ?? choices[answer], choices, answer });
  }
  if (out.length === 0) {
    throw new Error(`${where}: no ${kind} records for --recipe ${recipe.name} to train on (build them with ${recipe.buildHint})`);
  }
  return out;
}

export interface BatchState {
  step: number;
  epoch: number;
  /** Position in this epoch's image order. */
  cursor: number;
  seed: number;
}

export interface DrawnExample {
  /** Row of the image in `images` (the image-embedding table). */
  image: number;
  example: Example;
}

/**
 * Batches of distinct images: each epoch visits every image once in a seeded order, and moves
 * every image on to its next example (images have one claim set per fact, several MCQs), so a
 * batch never holds two examples of one image (CLIP's loss needs distinct images) and every
 * example is seen in turn. The state is plain data: a checkpoint stores it, resume restores it.
 *
 * `clipBatch` (>= batchSize) lets the L_CLIP term contrast more pairs than the choice term
 * scores: each step draws clipBatch distinct images, the first batchSize with their choice sets
 * and captions, the rest with captions only. The papers count the two batches apart (NAST: N
 * caption pairs, M claim sets); a contrastive term over 8 images only learns to tell 8 apart,
 * while retrieval ranks among hundreds. clipBatch = batchSize draws exactly what it always did.
 */
export class ExampleBatcher {
  readonly images: string[];
  private readonly byImage = new Map<string, Example[]>();
  private readonly index = new Map<string, number>();
  private perm: string[];

  constructor(readonly examples: readonly Example[], readonly batchSize: number, public state: BatchState, readonly clipBatch = batchSize) {
    for (const e of examples) this.byImage.set(e.image, [...(this.byImage.get(e.image) ?? []), e]);
    this.images = [...this.byImage.keys()];
    this.images.forEach((im, i) => this.index.set(im, i));
    if (!Number.isInteger(batchSize) || batchSize < 2) throw new RangeError(`batch size must be an integer >= 2, got ${batchSize}`);
    if (!Number.isInteger(clipBatch) || clipBatch < batchSize) throw new RangeError(`the CLIP batch must be an integer >= the batch size ${batchSize}, got ${clipBatch}`);
    // A step draws clipBatch distinct images (batchSize of them when the two are equal).
    if (this.images.length < clipBatch) {
      throw new RangeError(`${this.images.length} distinct images, fewer than the ${clipBatch === batchSize ? 'batch size' : 'CLIP batch'} ${clipBatch}`);
    }
    this.perm = this.order(state.epoch);
  }

  private order(epoch: number): string[] {
    return shuffle(makeRng(this.state.seed * 1000003 + epoch), this.images);
  }

  /** Image-table row of an image (the order of `images`). */
  row(image: string): number {
    return this.index.get(image)!;
  }

  /** Batches per epoch. */
  get perEpoch(): number {
    return Math.floor(this.images.length / this.clipBatch);
  }

  /** The next step's examples (their choice sets and captions); a CLIP batch's caption-only draws are dropped. */
  next(): DrawnExample[] {
    return this.draw().examples;
  }

  /** The next step: `examples` (batchSize, choices and captions) and `captionsOnly` (clipBatch - batchSize more images). */
  draw(): { examples: DrawnExample[]; captionsOnly: DrawnExample[] } {
    const s = this.state;
    const size = this.clipBatch;
    if (s.cursor + size > this.perm.length) {
      s.epoch++;
      s.cursor = 0;
      this.perm = this.order(s.epoch);
    }
    const pick = this.perm.slice(s.cursor, s.cursor + size);
    s.cursor += size;
    const drawn = pick.map((img) => {
      const opts = this.byImage.get(img)!;
      const at = this.row(img);
      return { image: at, example: opts[(s.epoch + at) % opts.length] };
    });
    return { examples: drawn.slice(0, this.batchSize), captionsOnly: drawn.slice(this.batchSize) };
  }
}
