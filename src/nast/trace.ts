/**
 * Causal tracing of the CLIP text encoder (NAST, section 4.2): for an image and a caption/foil
 * pair of equal token length, the score of the caption with the foil's residual state patched in
 * at one (layer index l, position p). Every (l, p) of a pair runs in one batched forward pass.
 */
import { add, concat, inference, mul, sub, tensor, type Tensor } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import { cutAtPool } from '../models/text-rows.js';

export interface PairScores {
  /** Token ids of the caption, cut after its end-of-text token. */
  ids: number[];
  sCorr: number;
  sFoil: number;
  /** S_lp for residual index l = 0..L (rows) and position p = 0..EOT (columns). */
  patched: number[][];
}

export class TraceInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceInputError';
  }
}

/** Where a row of ids ends (the pooled position), and the ids up to and including it. */
function cut(ids: Int32Array, eos: number | null): number[] {
  return Array.from(cutAtPool(ids, 1, eos).ids);
}

/**
 * Scores one pair. `imageEmbeds` is the image's projected embedding [1, E]; caption and foil ids
 * are one row each (same context length). Positions after the end-of-text token cannot reach the
 * pooled output through the causal mask, so the sequences are cut there: shorter batches, same
 * scores.
 */
export async function tracePair(model: ClipModel, imageEmbeds: Tensor, captionIds: Int32Array, foilIds: Int32Array): Promise<PairScores> {
  const eos = model.config.text.eosTokenId;
  const cap = cut(captionIds, eos);
  const foil = cut(foilIds, eos);
  if (cap.length !== foil.length) {
    throw new TraceInputError(`caption and foil tokenise to different lengths (${cap.length} vs ${foil.length} tokens); causal tracing patches position by position and needs equal lengths`);
  }
  const t = cap.length;
  const layers = model.config.text.layers + 1;
  const n = layers * t;
  const scores = inference(model.ctx, () => {
    const foilStates: Tensor[] = [];
    const foilOut = model.encodeText(Int32Array.from(foil), 1, { hook: (_l, s) => { foilStates.push(s.alias().keep()); } });
    const capOut = model.encodeText(Int32Array.from(cap), 1);
    const batchIds = new Int32Array(n * t);
    for (let r = 0; r < n; r++) batchIds.set(cap, r * t);
    // Row r = l * t + p of the batch patches position p at residual index l: x + m * (foil - x).
    const patched = model.encodeText(batchIds, n, {
      hook: (l, x) => {
        const m = new Float32Array(n * t);
        for (let p = 0; p < t; p++) m[(l * t + p) * t + p] = 1;
        return add(x, mul(sub(foilStates[l], x), tensor(model.ctx, m, [n, t, 1])));
      },
    });
    for (const f of foilStates) f.dispose();
    return model.logitsPerImage(imageEmbeds, concat([capOut.embeds, foilOut.embeds, patched.embeds], 0));
  });
  const data = await scores.toArray();
  scores.dispose();
  const rows: number[][] = [];
  for (let l = 0; l < layers; l++) rows.push(Array.from(data.subarray(2 + l * t, 2 + (l + 1) * t)));
  return { ids: cap, sCorr: data[0], sFoil: data[1], patched: rows };
}
