/**
 * CLIP's own objective, the symmetric contrastive loss, and the pieces every loss over CLIP
 * embeddings shares (the learned temperature, the embedding checks). Pretraining the tiny CLIP
 * and NAST's L_CLIP term both use it.
 */
import type { GpuContext } from '../engine/context.js';
import { OpError, shapeStr } from '../engine/errors.js';
import { scope, tensor, type Tensor } from '../engine/tensor.js';
import { add, crossEntropy, exp, l2Normalize, matmul, mul, mulScalar, reshape, transpose } from '../engine/ops/index.js';

/**
 * The learned temperature as CLIP stores it: the log of the logit scale (CLIP's `logit_scale`
 * parameter, init ln(1/0.07)). A one-element tensor (trainable if it requires grad) or a fixed
 * number. The logits are exp(logitScale) * cosine.
 */
export type LogitScale = Tensor | number;

export function expectEmbeddings(op: string, name: string, t: Tensor): void {
  if (t.dtype !== 'f32' || t.rank !== 2) {
    throw new OpError(op, `${name} must be an f32 [rows, dim] tensor, got ${t.dtype} ${shapeStr(t.shape)}`);
  }
}

/** logits * exp(logitScale), recorded so that d/d logitScale flows when it requires grad. */
export function scaleLogits(op: string, logits: Tensor, logitScale: LogitScale): Tensor {
  if (typeof logitScale === 'number') {
    if (!Number.isFinite(logitScale)) throw new OpError(op, `logitScale must be a finite number, got ${logitScale}`);
    return mulScalar(logits, Math.exp(logitScale));
  }
  if (logitScale.size !== 1 || logitScale.dtype !== 'f32') {
    throw new OpError(op, `logitScale must be a one-element f32 tensor, got ${logitScale.dtype} ${shapeStr(logitScale.shape)}`);
  }
  // A [] or [1] factor broadcasts as a scalar; its gradient is summed back by mul's backward.
  return mul(logits, exp(reshape(logitScale, [])));
}

export function i32(ctx: GpuContext, values: readonly number[]): Tensor {
  return tensor(ctx, values, [values.length], 'i32');
}

/**
 * CLIP's symmetric contrastive loss: with unit-normalised rows, logits = exp(logitScale) *
 * img @ txt^T [B, B]; the loss is the mean of the image->text and text->image cross-entropies
 * with targets 0..B-1 (row i's own caption). Returns a [] tensor.
 */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logitScale: LogitScale): Tensor {
  const op = 'clipLoss';
  expectEmbeddings(op, 'imageEmb', imageEmb);
  expectEmbeddings(op, 'textEmb', textEmb);
  if (imageEmb.shape[0] !== textEmb.shape[0] || imageEmb.shape[1] !== textEmb.shape[1]) {
    throw new OpError(op, `imageEmb ${shapeStr(imageEmb.shape)} and textEmb ${shapeStr(textEmb.shape)} must have the same [batch, dim]`);
  }
  const b = imageEmb.shape[0];
  if (b === 0) throw new OpError(op, 'empty batch');
  const ctx = imageEmb.ctx;
  return scope(ctx, () => {
    const img = l2Normalize(imageEmb);
    const txt = l2Normalize(textEmb);
    const logits = scaleLogits(op, matmul(img, txt, { transB: true }), logitScale);
    const targets = i32(ctx, Array.from({ length: b }, (_, i) => i));
    const imageToText = crossEntropy(logits, targets);
    const textToImage = crossEntropy(transpose(logits), targets);
    return mulScalar(add(imageToText, textToImage), 0.5);
  });
}
