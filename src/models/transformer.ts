/**
 * CLIP's pre-LayerNorm transformer encoder, with hooks on the residual stream: index 0 is the
 * encoder's input (the embeddings output), index l the output of block l — Hugging Face's
 * `hidden_states` numbering, which causal tracing patches into.
 */
import { attention, checkpoint, permute, reshape, scope, type Tensor } from '../engine/index.js';
import type { HiddenActivation } from './clip-config.js';
import type { LayerNorm, Linear } from './layers.js';

/**
 * Called with each residual-stream index and state [batch, seq, width]. Returning a tensor
 * replaces the state from there on (the hook owns neither tensor: return a new one, or nothing
 * to keep the state; a recording hook must `keep()` what it stores beyond the forward pass).
 */
export type ResidualHook = (index: number, state: Tensor) => Tensor | void;

export interface EncoderLayer {
  heads: number;
  ln1: LayerNorm;
  q: Linear;
  k: Linear;
  v: Linear;
  out: Linear;
  ln2: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  activation: HiddenActivation;
}

function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, t, d] = x.shape;
  return scope(x.ctx, () => permute(reshape(x, [b, t, heads, d / heads]), [0, 2, 1, 3]));
}

function mergeHeads(x: Tensor): Tensor {
  const [b, h, t, hd] = x.shape;
  return scope(x.ctx, () => reshape(permute(x, [0, 2, 1, 3]), [b, t, h * hd]));
}

/** One block: x + attn(ln1(x)), then + mlp(ln2(.)). Intermediates are freed on return. */
export function encoderLayerForward(layer: EncoderLayer, x: Tensor, causal: boolean): Tensor {
  return scope(x.ctx, () => {
    const h = layer.ln1.forward(x);
    const q = splitHeads(layer.q.forward(h), layer.heads);
    const k = splitHeads(layer.k.forward(h), layer.heads);
    const v = splitHeads(layer.v.forward(h), layer.heads);
    const a = mergeHeads(attention(q, k, v, { causal }));
    // Residual adds ride in the out and fc2 products' epilogues.
    const x1 = layer.out.forward(a, 'none', x);
    const m = layer.fc1.forward(layer.ln2.forward(x1), layer.activation);
    return layer.fc2.forward(m, 'none', x1);
  });
}

export interface EncoderOptions {
  causal: boolean;
  hook?: ResidualHook;
  /**
   * Activation recomputation: keep only each block's input while recording, and run the block
   * again in backward (one extra forward per step for a peak of one block's activations).
   */
  recompute?: boolean;
}

/** Runs every block; returns the last block's output (before any final layer norm). */
export function encoderForward(layers: readonly EncoderLayer[], x: Tensor, opts: EncoderOptions): Tensor {
  let h = x;
  let owned = false;
  const visit = (index: number) => {
    const r = opts.hook?.(index, h);
    if (r && r !== h) {
      if (owned) h.dispose();
      h = r;
      owned = true;
    }
  };
  visit(0);
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const next = opts.recompute
      ? checkpoint((input) => encoderLayerForward(layer, input, opts.causal), [h])
      : encoderLayerForward(layer, h, opts.causal);
    if (owned) h.dispose();
    h = next;
    owned = true;
    visit(i + 1);
  }
  return owned ? h : h.alias();
}
