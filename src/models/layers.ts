/**
 * The two parameterised layers CLIP is made of, with LoRA as an optional low-rank branch on
 * Linear (y = W x + b + scale * B (A x)). Layers own no memory policy: callers decide what is
 * frozen (requiresGrad) and who disposes the weights.
 */
import { layerNorm, linear, scope, type Tensor } from '../engine/index.js';
import type { HiddenActivation } from './clip-config.js';

/** A low-rank update: a [r, in], b [out, r], scale = lora_alpha / r. */
export interface LoraBranch {
  a: Tensor;
  b: Tensor;
  scale: number;
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
   * act(x W^T + b + scale * (x A^T) B^T + residual) in at most three dispatches: the down
   * projection, the up projection (scale and residual in its epilogue) and the base product
   * (bias, the branch and the activation in its epilogue).
   */
  forward(x: Tensor, act: HiddenActivation | 'none' = 'none', residual?: Tensor): Tensor {
    const lora = this.lora;
    const bias = this.bias ?? undefined;
    if (!lora) return linear(x, this.weight, bias, act, { addend: residual });
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
