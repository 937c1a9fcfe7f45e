/**
 * How well a pretrained tiny CLIP knows the miniature world, on held-out records: caption <->
 * image retrieval, and its affirmation bias (does "there is no red square" mean anything other
 * than "there is a red square" to it?). Browser-safe; embeddings are read back and scored on the
 * host.
 *
 * Retrieval counts any image with the same scene description as the query's image as a hit: the
 * world repeats (two images can have identical captions), and no text can tell those apart.
 */
import { noGrad, type Tensor } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import type { WordTokenizer } from '../models/tokenizer/word.js';
import { absentConditions, objectCondition, resolveSpec, type WorldRecord, type WorldSpec } from '../data/world/index.js';
import { randInt, rngFor } from '../data/rng.js';
import { sceneKey, tokenizeCut, worldPixels } from './world-batches.js';

/**
 * World records from this index on are held out: pretraining takes records 0..N-1 (N below it),
 * evaluations take records from here.
 */
export const WORLD_HELD_OUT_START = 1_000_000;

/** Unit-normalised rows of a [n, d] embedding, on the host. */
function normalizedRows(data: Float32Array, n: number): Float32Array {
  const d = data.length / n;
  const out = new Float32Array(data.length);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += data[i * d + j] ** 2;
    const inv = 1 / Math.sqrt(s || 1);
    for (let j = 0; j < d; j++) out[i * d + j] = data[i * d + j] * inv;
  }
  return out;
}

async function readEmbeds(t: Tensor): Promise<Float32Array> {
  try {
    return (await t.toArray()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Unit-normalised text embeddings [n, projection_dim], in chunks. */
export async function embedTexts(model: ClipModel, tok: WordTokenizer, texts: readonly string[], chunk = 256): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const out = new Float32Array(texts.length * dim);
  for (let s = 0; s < texts.length; s += chunk) {
    const part = texts.slice(s, s + chunk);
    const { ids } = tokenizeCut(tok, part);
    const r = noGrad(() => model.encodeText(ids, part.length));
    r.pooled.dispose();
    out.set(await readEmbeds(r.embeds), s * dim);
  }
  return normalizedRows(out, texts.length);
}

/** Unit-normalised image embeddings of world records [n, projection_dim], in chunks. */
export async function embedWorldImages(model: ClipModel, records: readonly WorldRecord[], chunk = 256): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const out = new Float32Array(records.length * dim);
  for (let s = 0; s < records.length; s += chunk) {
    const part = records.slice(s, s + chunk);
    const px = worldPixels(part, model.config.vision.imageSize);
    const r = noGrad(() => model.encodeImage(px, part.length));
    r.pooled.dispose();
    out.set(await readEmbeds(r.embeds), s * dim);
  }
  return normalizedRows(out, records.length);
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[i * d + k] * b[j * d + k];
  return s;
}

export interface Recall {
  /** Queries. */
  n: number;
  r1: number;
  r5: number;
  /** Median rank of the best relevant candidate. */
  medianRank: number;
}

/**
 * 1-based rank of the best relevant candidate: 1 + the irrelevant candidates scoring at least as
 * high (ties count against the model).
 */
function bestRank(scores: Float32Array, relevant: (c: number) => boolean): number {
  let best = -Infinity;
  for (let c = 0; c < scores.length; c++) if (relevant(c) && scores[c] > best) best = scores[c];
  let ahead = 0;
  for (let c = 0; c < scores.length; c++) if (!relevant(c) && !(scores[c] < best)) ahead++;
  return 1 + ahead;
}

function summarize(ranks: number[]): Recall {
  const n = ranks.length;
  const sorted = [...ranks].sort((a, b) => a - b);
  return {
    n,
    r1: ranks.filter((r) => r <= 1).length / n,
    r5: ranks.filter((r) => r <= 5).length / n,
    medianRank: n === 0 ? NaN : sorted[Math.floor((n - 1) / 2)],
  };
}

export interface RetrievalReport {
  images: number;
  /** Scene descriptions among them (fewer than images when the world repeats). */
  distinctScenes: number;
  /** Text -> image, every caption template of every image as a query. */
  textToImage: Recall;
  /** Image -> text among one caption (the first template) per image. */
  imageToText: Recall;
}

/** Retrieval among held-out records (each record's own captions are its queries). */
export async function worldRetrieval(model: ClipModel, tok: WordTokenizer, records: readonly WorldRecord[]): Promise<RetrievalReport> {
  if (records.length === 0) throw new RangeError('worldRetrieval: no records');
  const d = model.config.projectionDim;
  const keys = records.map(sceneKey);
  const img = await embedWorldImages(model, records);
  const queries: string[] = [];
  const owner: number[] = [];
  records.forEach((r, i) => r.captions.forEach((c) => {
    queries.push(c);
    owner.push(i);
  }));
  const txt = await embedTexts(model, tok, queries);
  const n = records.length;
  const t2i: number[] = [];
  const scores = new Float32Array(n);
  for (let q = 0; q < queries.length; q++) {
    for (let c = 0; c < n; c++) scores[c] = dot(txt, q, img, c, d);
    const key = keys[owner[q]];
    t2i.push(bestRank(scores, (c) => keys[c] === key));
  }
  // The first template's caption of each record is at query index sum of earlier caption counts.
  const firstOf: number[] = [];
  owner.forEach((o, q) => {
    if (firstOf[o] === undefined) firstOf[o] = q;
  });
  const i2t: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < n; c++) scores[c] = dot(img, i, txt, firstOf[c], d);
    i2t.push(bestRank(scores, (c) => keys[c] === keys[i]));
  }
  return { images: n, distinctScenes: new Set(keys).size, textToImage: summarize(t2i), imageToText: summarize(i2t) };
}

export interface BinaryChoice {
  n: number;
  /** Share of items where the true statement scores strictly higher. */
  accuracy: number;
}

export interface AffirmationBiasReport {
  images: number;
  /** "there is a {present}" vs "there is no {present}": the affirmative is true. */
  presentAffirmedOverNegated: BinaryChoice;
  /** "there is no {absent}" vs "there is a {absent}": the negation is true. */
  absentNegatedOverAffirmed: BinaryChoice;
  /**
   * "there is no {absent}" (true) vs "there is no {present}" (false). A model that reads "no X"
   * as "X" prefers the false one: accuracy well below 0.5 is affirmation bias.
   */
  negatedChoice: BinaryChoice;
  /** Control: "there is a {present}" (true) vs "there is a {absent}" (false). */
  affirmedChoice: BinaryChoice;
  /** Mean cosine between the text embeddings of "there is a X." and "there is no X.". */
  affirmedNegatedTextCosine: number;
}

function choice(wins: boolean[]): BinaryChoice {
  return { n: wins.length, accuracy: wins.filter(Boolean).length / wins.length };
}

/**
 * Affirmation bias on held-out records: for each image, one drawn object condition and one
 * undrawn condition (seeded), scored as "there is a X." and "there is no X.". Measured, never
 * trained for: pretraining sees no negation.
 */
export async function affirmationBias(
  model: ClipModel, tok: WordTokenizer, records: readonly WorldRecord[], opts: { seed?: number; spec?: Partial<WorldSpec> } = {},
): Promise<AffirmationBiasReport> {
  if (records.length === 0) throw new RangeError('affirmationBias: no records');
  const spec = resolveSpec(opts.spec);
  const seed = opts.seed ?? 0;
  const d = model.config.projectionDim;
  const pairs = records.map((r) => {
    const rng = rngFor(seed, 'affirmation-bias', r.id);
    const present = objectCondition(r.scene.objects[randInt(rng, r.scene.objects.length)]);
    const absentAll = absentConditions(r.scene, spec);
    if (absentAll.length === 0) throw new RangeError(`affirmationBias: record ${r.id} draws every condition of the spec`);
    return { present, absent: absentAll[randInt(rng, absentAll.length)] };
  });
  const aff = (c: string) => `there is a ${c}.`;
  const neg = (c: string) => `there is no ${c}.`;
  const texts = pairs.flatMap((p) => [aff(p.present), neg(p.present), aff(p.absent), neg(p.absent)]);
  const txt = await embedTexts(model, tok, texts);
  const img = await embedWorldImages(model, records);
  const presentWins: boolean[] = [];
  const absentWins: boolean[] = [];
  const negWins: boolean[] = [];
  const affWins: boolean[] = [];
  let cos = 0;
  pairs.forEach((_, i) => {
    const s = (k: number) => dot(img, i, txt, 4 * i + k, d);
    const [affP, negP, affA, negA] = [s(0), s(1), s(2), s(3)];
    presentWins.push(affP > negP);
    absentWins.push(negA > affA);
    negWins.push(negA > negP);
    affWins.push(affP > affA);
    cos += dot(txt, 4 * i, txt, 4 * i + 1, d) + dot(txt, 4 * i + 2, txt, 4 * i + 3, d);
  });
  return {
    images: records.length,
    presentAffirmedOverNegated: choice(presentWins),
    absentNegatedOverAffirmed: choice(absentWins),
    negatedChoice: choice(negWins),
    affirmedChoice: choice(affWins),
    affirmedNegatedTextCosine: cos / (2 * records.length),
  };
}
