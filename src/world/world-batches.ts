/**
 * Contrastive batches of the miniature world for pretraining: distinct scenes, affirmative
 * captions (full and partial), counterfactual twins, pixels and cut token ids, and the batch
 * loss. Every batch is a pure function of (seed, step). Browser-safe.
 */
import { cutAtPool } from '../models/text-rows.js';
import { noGrad, scope, type Tensor } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import type { WordTokenizer } from '../models/tokenizer/word.js';
import { clipImageConfig, normalizeToCHW } from '../models/image/preprocess.js';
import {
  CAPTION_TEMPLATE_COUNT, DEFAULT_SPEC, PARTIAL_TEMPLATE_COUNT, affirmativeCaptions, partialCaptions, renderScene,
  type WorldImage, type WorldRecord, type WorldScene, type WorldSpec,
} from '../data/world/index.js';
import { TWIN_KINDS, twinScene, type TwinKind } from '../data/world/twins.js';
import { WorldRng, itemState } from '../data/world/rng.js';
import { randInt, rngFor } from '../data/rng.js';
import { clipLoss } from '../models/clip-loss.js';
import { positiveInt } from './tiny-clip.js';

/**
 * The model's input for world records: [n, 3, size, size], CLIP's mean/std normalisation of the
 * rendered 8-bit pixels (no resizing: the world renders at the model's size). Pretraining, the
 * default run and every evaluation use this one function.
 */
export function worldPixels(records: readonly WorldRecord[], size: number): Float32Array {
  records.forEach((r) => {
    if (r.scene.size !== size) throw new RangeError(`worldPixels: record ${r.id} is ${r.scene.size}x${r.scene.size} px, the model takes ${size}x${size}`);
  });
  return scenePixels(records.map((r) => r.pixels ?? r.scene), size);
}

/** worldPixels for scenes (rendered here) or already rendered images. */
export function scenePixels(items: readonly (WorldScene | WorldImage)[], size: number): Float32Array {
  const per = 3 * size * size;
  const out = new Float32Array(items.length * per);
  const cfg = clipImageConfig(size);
  items.forEach((it, i) => {
    const img = 'objects' in it ? renderScene(it) : it;
    if (img.width !== size || img.height !== size) throw new RangeError(`scenePixels: item ${i} is ${img.width}x${img.height} px, the model takes ${size}x${size}`);
    normalizeToCHW(img, cfg, out, i * per);
  });
  return out;
}

/** Token ids of captions, cut at the batch's last end token. */
export function tokenizeCut(tok: WordTokenizer, texts: readonly string[]): { ids: Int32Array; seqLen: number } {
  return cutAtPool(tok.tokenize(texts), texts.length, tok.eotId);
}

export interface WorldBatch {
  n: number;
  /** [n, 3, size, size] (see worldPixels). */
  pixels: Float32Array;
  /** [n, seqLen] token ids. */
  ids: Int32Array;
  seqLen: number;
  captions: string[];
  /** Index of each item's record in the training set (for a twin, the record it was made from). */
  records: number[];
  /** null for a record as generated, else the change that made this item its record's twin. */
  twins: (TwinKind | null)[];
}

/**
 * What a scene looks like in words: two records with the same key are described by the same
 * captions (every template is a function of the same object list), so a contrastive batch must
 * not hold both.
 */
export function sceneKey(r: WorldRecord): string {
  return r.captions[0];
}

export interface BatcherOptions {
  seed: number;
  batchSize: number;
  imageSize: number;
  /**
   * Share of the batch that is a counterfactual twin of another item (see world/twins.ts), in
   * [0, 0.5]; default 0.5: every record in the batch comes with one twin.
   */
  twinShare?: number;
  /** The world's spec (recolouring and reshaping draw from it); default DEFAULT_SPEC. */
  spec?: WorldSpec;
  /** Also draw the partial captions (kind only, with size, with place; see world/captions.ts). Default true. */
  partialCaptions?: boolean;
}

export interface BatchPick {
  records: number[];
  captions: string[];
  twins: (TwinKind | null)[];
  /** The drawn scene of each item (a record's own, or its twin). */
  scenes: WorldScene[];
}

/**
 * Samples contrastive batches: distinct images whose scenes have distinct descriptions (the
 * world repeats: a single-object scene has only 64 descriptions in the default spec), each with
 * one of its affirmative captions, uniformly over templates (the record's own and, by default,
 * the partial ones, as long as no two items share a caption); with `twinShare`, the first records
 * each bring a counterfactual twin captioned with the same template, so that the pair differs in
 * exactly one attribute. Batch `step` depends only on (seed, step).
 */
export class WorldBatcher {
  readonly batchSize: number;
  readonly twinCount: number;
  private readonly keys: string[];
  private readonly spec: WorldSpec;
  private readonly partial: boolean;

  constructor(readonly records: readonly WorldRecord[], readonly tok: WordTokenizer, readonly opts: BatcherOptions) {
    this.batchSize = positiveInt('batchSize', opts.batchSize);
    const share = opts.twinShare ?? 0.5;
    if (!(share >= 0 && share <= 0.5)) throw new RangeError(`WorldBatcher: twinShare must be in [0, 0.5], got ${share}`);
    this.twinCount = Math.floor(this.batchSize * share);
    this.spec = opts.spec ?? DEFAULT_SPEC;
    this.partial = opts.partialCaptions ?? true;
    this.keys = records.map(sceneKey);
    const distinct = new Set(this.keys).size;
    const bases = this.batchSize - this.twinCount;
    if (distinct < bases) {
      throw new RangeError(`WorldBatcher: ${records.length} records have ${distinct} distinct scene descriptions, fewer than the ${bases} the batch size ${this.batchSize} needs`);
    }
    for (const r of records) {
      if (r.scene.size !== opts.imageSize) throw new RangeError(`WorldBatcher: record ${r.id} is ${r.scene.size} px, the model takes ${opts.imageSize}`);
      const unknown = r.captions.flatMap((c) => tok.unknownWords(c));
      if (unknown.length > 0) throw new RangeError(`WorldBatcher: record ${r.id}: caption words not in the tokenizer: ${unknown.join(', ')}`);
    }
  }

  /** The caption of `scene` under template t: the record templates, then the partial ones. */
  private caption(scene: WorldScene, t: number, own?: readonly string[]): string {
    return t < CAPTION_TEMPLATE_COUNT ? (own ?? affirmativeCaptions(scene, this.spec))[t] : partialCaptions(scene, this.spec)[t - CAPTION_TEMPLATE_COUNT];
  }

  /** Record indices, caption choices and twins of batch `step`. */
  pick(step: number): BatchPick {
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`WorldBatcher: step must be a non-negative integer, got ${step}`);
    const rng = rngFor(this.opts.seed, 'pretrain-batch', step);
    const twinRng = new WorldRng(itemState(this.opts.seed, step));
    const used = new Set<string>();
    const texts = new Set<string>();
    const out: BatchPick = { records: [], captions: [], twins: [], scenes: [] };
    const bases: { record: number; template: number; at: number }[] = [];
    const templates = CAPTION_TEMPLATE_COUNT + (this.partial ? PARTIAL_TEMPLATE_COUNT : 0);
    // Rejection sampling; the constructor guarantees enough distinct keys, this bounds bad luck.
    for (let tries = 0; out.records.length < this.batchSize; tries++) {
      if (tries > 1000 * this.batchSize) throw new Error(`WorldBatcher: could not fill batch ${step} with distinct scenes`);
      const wantTwin = out.records.length >= this.batchSize - this.twinCount && bases.length > 0;
      if (wantTwin) {
        // Each twin belongs to the next base that has not had one; a base with no usable twin is passed over.
        const base = bases.shift()!;
        const scene = this.records[base.record].scene;
        for (const kind of twinRng.shuffle(TWIN_KINDS)) {
          const twin = twinScene(scene, kind, this.spec, twinRng);
          if (!twin) continue;
          const full = affirmativeCaptions(twin, this.spec);
          if (used.has(full[0])) continue;
          used.add(full[0]);
          let caption = this.caption(twin, base.template, full);
          // A partial caption that leaves out what the twin changed describes both images: then
          // both get their full caption of one template.
          if (caption === out.captions[base.at] || texts.has(caption)) {
            const t = base.template < CAPTION_TEMPLATE_COUNT ? base.template : 0;
            texts.delete(out.captions[base.at]);
            out.captions[base.at] = this.records[base.record].captions[t];
            texts.add(out.captions[base.at]);
            caption = full[t];
          }
          texts.add(caption);
          out.records.push(base.record);
          out.captions.push(caption);
          out.twins.push(kind);
          out.scenes.push(twin);
          break;
        }
        continue;
      }
      const i = randInt(rng, this.records.length);
      if (used.has(this.keys[i])) continue;
      used.add(this.keys[i]);
      const rec = this.records[i];
      let template = randInt(rng, templates);
      let caption = this.caption(rec.scene, template, rec.captions);
      // A partial caption another item already has would be a false negative: use a full one.
      if (texts.has(caption)) {
        template = randInt(rng, CAPTION_TEMPLATE_COUNT);
        caption = rec.captions[template];
      }
      texts.add(caption);
      bases.push({ record: i, template, at: out.records.length });
      out.records.push(i);
      out.captions.push(caption);
      out.twins.push(null);
      out.scenes.push(rec.scene);
    }
    return out;
  }

  batch(step: number): WorldBatch {
    const { records, captions, twins, scenes } = this.pick(step);
    const { ids, seqLen } = tokenizeCut(this.tok, captions);
    const pixels = scenePixels(scenes.map((s, k) => (twins[k] === null ? this.records[records[k]].pixels ?? s : s)), this.opts.imageSize);
    return { n: records.length, pixels, ids, seqLen, captions, records, twins };
  }
}

/** The symmetric CLIP loss of a batch (differentiable when the model's weights require grad). */
export function batchLoss(model: ClipModel, b: WorldBatch): Tensor {
  return scope(model.ctx, () => {
    const img = model.encodeImage(b.pixels, b.n);
    const txt = model.encodeText(b.ids, b.n);
    return clipLoss(img.embeds, txt.embeds, model.param('logit_scale'));
  });
}

/** The loss of a batch without a graph, read back. */
export async function evalBatchLoss(model: ClipModel, b: WorldBatch): Promise<number> {
  const loss = noGrad(() => batchLoss(model, b));
  try {
    return await loss.item();
  } finally {
    loss.dispose();
  }
}
