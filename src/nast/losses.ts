/**
 * NAST's training objectives on the engine (NAST paper Sec. 4.3; NegBench Sec. 5.2):
 *   L_CLIP  - CLIP's symmetric contrastive loss over a batch of (image, caption) pairs;
 *   L_claim - cross-entropy over each image's own claim set (NegBench's L_MCQ, with K per sample);
 *   L_total = lambda * L_CLIP + (1 - lambda) * L_claim (NegBench calls the weight alpha).
 *
 * The NAST paper prints L_claim without the leading minus sign; NegBench's Eq. (1) has it, and
 * only the negative log-likelihood is a loss to minimise, so that is what is computed here.
 *
 * Every function is a handful of engine ops with autograd through them; intermediates are freed
 * on return (the graph keeps what backward needs), so only the returned loss needs disposing.
 */
import { OpError, shapeStr } from '../engine/errors.js';
import { scope, tensor, type Tensor } from '../engine/tensor.js';
import {
  add, crossEntropy, indexSelect, l2Normalize, matmul, mulScalar, reshape,
} from '../engine/ops/index.js';
import { clipLoss, expectEmbeddings, i32, scaleLogits, type LogitScale } from '../models/clip-loss.js';

export { clipLoss, type LogitScale };

/**
 * Masked (padded) claim slots get this added to their logit. Finite, so no inf - inf NaN can
 * appear; far enough below any real logit (|cos| <= 1 times a scale CLIP clamps at 100) that
 * softmax gives them exactly 0 in f32, hence exactly no gradient.
 */
export const CLAIM_PAD_LOGIT = -1e9;

/** Checks claim-set bookkeeping against the tensors and returns each sample's first claim row. */
function claimOffsets(op: string, batch: number, claimRows: number, counts: readonly number[], answers: readonly number[]): number[] {
  if (counts.length !== batch) {
    throw new OpError(op, `counts has ${counts.length} entries but imageEmb has ${batch} rows (one claim count per image)`);
  }
  if (answers.length !== batch) {
    throw new OpError(op, `answers has ${answers.length} entries but imageEmb has ${batch} rows (one correct-claim index per image)`);
  }
  const offsets: number[] = [];
  let total = 0;
  for (let i = 0; i < batch; i++) {
    const k = counts[i];
    if (!Number.isInteger(k) || k < 1) throw new OpError(op, `counts[${i}] = ${k}: a claim set needs an integer count >= 1`);
    const a = answers[i];
    if (!Number.isInteger(a) || a < 0 || a >= k) {
      throw new OpError(op, `answers[${i}] = ${a} is not a claim index in [0, ${k}) (counts[${i}] = ${k})`);
    }
    offsets.push(total);
    total += k;
  }
  if (total !== claimRows) {
    throw new OpError(op, `counts sum to ${total} claims but claimEmb has ${claimRows} rows`);
  }
  return offsets;
}

/**
 * The claim-ranking loss: for image i with claims claimEmb[o_i .. o_i + K_i) (the rows of all
 * samples concatenated in order, K_i = counts[i]), logits_ij = exp(logitScale) * cos(img_i,
 * claim_ij); the loss is the mean over images of the cross-entropy with target answers[i].
 * Returns a [] tensor.
 *
 * Uneven K is handled without per-sample ops: claims are gathered into [B, Kmax, dim] (padding
 * slots repeat row 0), one batched product gives [B, Kmax] logits, and padding slots get
 * CLAIM_PAD_LOGIT added so they take no probability and pass back no gradient. When every K is
 * equal the gather and the mask are skipped.
 */
export function choiceLoss(
  imageEmb: Tensor,
  claimEmb: Tensor,
  counts: readonly number[],
  answers: readonly number[],
  logitScale: LogitScale,
): Tensor {
  const op = 'choiceLoss';
  expectEmbeddings(op, 'imageEmb', imageEmb);
  expectEmbeddings(op, 'claimEmb', claimEmb);
  const [b, dim] = imageEmb.shape;
  if (claimEmb.shape[1] !== dim) {
    throw new OpError(op, `claimEmb ${shapeStr(claimEmb.shape)} and imageEmb ${shapeStr(imageEmb.shape)} differ in embedding size`);
  }
  if (b === 0) throw new OpError(op, 'empty batch');
  const offsets = claimOffsets(op, b, claimEmb.shape[0], counts, answers);
  const kMax = Math.max(...counts);
  const uniform = counts.every((k) => k === kMax);
  const ctx = imageEmb.ctx;
  return scope(ctx, () => {
    const img = reshape(l2Normalize(imageEmb), [b, 1, dim]);
    const claimsFlat = l2Normalize(claimEmb);
    let claims: Tensor;
    let mask: Tensor | null = null;
    if (uniform) {
      claims = reshape(claimsFlat, [b, kMax, dim]);
    } else {
      const rows: number[] = [];
      const pad: number[] = [];
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < kMax; j++) {
          const real = j < counts[i];
          rows.push(real ? offsets[i] + j : 0);
          pad.push(real ? 0 : CLAIM_PAD_LOGIT);
        }
      }
      claims = reshape(indexSelect(claimsFlat, 0, i32(ctx, rows)), [b, kMax, dim]);
      mask = tensor(ctx, pad, [b, kMax]);
    }
    const cos = reshape(matmul(img, claims, { transB: true }), [b, kMax]);
    const scaled = scaleLogits(op, cos, logitScale);
    const logits = mask ? add(scaled, mask) : scaled;
    return crossEntropy(logits, i32(ctx, answers));
  });
}

/**
 * L_total = lambda * L_CLIP + (1 - lambda) * L_claim, lambda in [0, 1]. A term whose weight is
 * 0 may be passed as null (a run with only claim sets, or only captions).
 */
export function nastLoss(lambda: number, lClip: Tensor | null, lClaim: Tensor | null): Tensor {
  const op = 'nastLoss';
  if (!(lambda >= 0 && lambda <= 1)) throw new OpError(op, `lambda must be in [0, 1], got ${lambda}`);
  if (!lClip && lambda > 0) throw new OpError(op, `lClip is missing but lambda = ${lambda} gives it weight`);
  if (!lClaim && lambda < 1) throw new OpError(op, `lClaim is missing but 1 - lambda = ${1 - lambda} gives it weight`);
  for (const [name, t] of [['lClip', lClip], ['lClaim', lClaim]] as const) {
    if (t && t.size !== 1) throw new OpError(op, `${name} must be a one-element loss, got ${shapeStr(t.shape)}`);
  }
  if (!lClaim) return mulScalar(lClip!, lambda);
  if (!lClip) return mulScalar(lClaim, 1 - lambda);
  return scope(lClip.ctx, () => add(mulScalar(lClip, lambda), mulScalar(lClaim, 1 - lambda)));
}

/** @deprecated the choice loss's old name (it scores NegBench's MCQ options too): choiceLoss. */
export const claimLoss = choiceLoss;
