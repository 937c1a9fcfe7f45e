/**
 * The two parameterised layers CLIP is made of, with LoRA as an optional low-rank branch on
 * Linear (y = W x + b + scale * B (A x)). Layers own no memory policy: callers decide what is
 * frozen (requiresGrad) and who disposes the weights.
 */
import { layerNorm, linear, matmul, scope, type LoraMerge, type Tensor } from '../engine/index.js';
import type { HiddenActivation } from './clip-config.js';

/** A low-rank update: a [r, in], b [out, r], scale = lora_alpha / r. */
export interface LoraBranch {
  a: Tensor;
  b: Tensor;
  scale: number;
}

/**
 * Whether a LoRA branch is folded into its weight for the product (see Tuning.loraMerge): under
 * 'auto' where out * in < 6 r (in + out), never for a weight stored f16.
 */
export function foldsLora(mode: LoraMerge, weight: Tensor, lora: LoraBranch): boolean {
  if (weight.dtype !== 'f32' || mode === 'never') return false;
  if (mode === 'always') return true;
  const [out, inF] = weight.shape;
  // Flops: the folded weight's gradient is one [out, in] product over the rows, the branch three
  // thin ones of r (r (in + out) each); the thin ones run at about half the rate (K or N = r).
  return out * inF < 2 * 3 * lora.a.shape[0] * (inF + out);
}

export class Linear {
  lora: LoraBranch | null = null;

  /** weight [out, in] (Hugging Face layout), bias [out]. */
  constructor(readonly weight: Tensor, readonly bias: Tensor | null) {}

  get inFeatures(): number {
    return this.weight.shape[1];
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  /**
   * act(x W^T + b + scale * (x A^T) B^T + residual): with the branch folded (foldsLora), the
   * weight W + scale B A (one small product, W in its epilogue) and one product; otherwise in
   * three dispatches: the down projection, the up projection (scale and residual in its
   * epilogue) and the base product (bias, the branch and the activation in its epilogue).
   */
  forward(x: Tensor, act: HiddenActivation | 'none' = 'none', residual?: Tensor): Tensor {
    const lora = this.lora;
    const bias = this.bias ?? undefined;
    if (!lora) return linear(x, this.weight, bias, act, { addend: residual });
    if (foldsLora(x.ctx.tuning.loraMerge, this.weight, lora)) {
      return scope(x.ctx, () => {
        const merged = matmul(lora.b, lora.a, { alpha: lora.scale, addend: this.weight });
        return linear(x, merged, bias, act, { addend: residual });
      });
    }
    return scope(x.ctx, () => {
      const up = linear(linear(x, lora.a), lora.b, undefined, 'none', { alpha: lora.scale, addend: residual });
      return linear(x, this.weight, bias, act, { addend: up });
    });
  }
}

export class LayerNorm {
  constructor(readonly weight: Tensor, readonly bias: Tensor, readonly eps: number) {}

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
