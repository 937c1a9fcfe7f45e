/**
 * The two parameterised layers CLIP is made of, with LoRA as an optional low-rank branch on
 * Linear (y = W x + b + scale * B (A x)). Layers own no memory policy: callers decide what is
 * frozen (requiresGrad) and who disposes the weights.
 */
import {
  add, gelu, layerNorm, linear, mulScalar, quickGelu, relu, type Tensor,
} from '../engine/index.js';
import type { Activation } from './clip-config.js';

/** A low-rank update: a [r, in], b [out, r], scale = lora_alpha / r. */
export interface LoraBranch {
  a: Tensor;
  b: Tensor;
  scale: number;
}

function activate(x: Tensor, act: Activation): Tensor {
  switch (act) {
    case 'quick_gelu': return quickGelu(x);
    case 'gelu_erf': return gelu(x, 'none');
    case 'gelu_tanh': return gelu(x, 'tanh');
    case 'relu': return relu(x);
  }
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

  /** act(x W^T + b + scale * (x A^T) B^T); the activation is fused into the matmul without LoRA. */
  forward(x: Tensor, act: Activation | 'none' = 'none'): Tensor {
    const lora = this.lora;
    if (!lora) return linear(x, this.weight, this.bias ?? undefined, act);
    const base = linear(x, this.weight, this.bias ?? undefined);
    const down = linear(x, lora.a);
    const up = linear(down, lora.b);
    down.dispose();
    const scaled = lora.scale === 1 ? up : mulScalar(up, lora.scale);
    if (scaled !== up) up.dispose();
    const y = add(base, scaled);
    base.dispose();
    scaled.dispose();
    if (act === 'none') return y;
    const z = activate(y, act);
    y.dispose();
    return z;
  }
}

export class LayerNorm {
  constructor(readonly weight: Tensor, readonly bias: Tensor, readonly eps: number) {}

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
