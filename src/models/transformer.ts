/**
 * CLIP's pre-LayerNorm transformer encoder, with hooks on the residual stream: index 0 is the
 * encoder's input (the embeddings output), index l the output of block l — Hugging Face's
 * `hidden_states` numbering, which causal tracing patches into.
 */
import { attention, checkpoint, packedAttention, reshape, scope, type PackedSegment, type Tensor } from '../engine/index.js';
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

/**
 * One block: x + attn(ln1(x)), then + mlp(ln2(.)). Intermediates are freed on return.
 * x is [batch, T, width], or with `segments` a packed [tokens, width] batch of sequences of
 * different lengths (see packedAttention). Attention reads the projections token-major as
 * [.., heads, head_dim] views and writes the same layout, so no head split or merge is copied.
 */
export function encoderLayerForward(layer: EncoderLayer, x: Tensor, causal: boolean, segments?: readonly PackedSegment[]): Tensor {
  return scope(x.ctx, () => {
    const h = layer.ln1.forward(x);
    const width = x.shape[x.rank - 1];
    const heads = [layer.heads, width / layer.heads];
    const lead = x.shape.slice(0, -1);
    const split = (t: Tensor) => reshape(t, [...lead, ...heads]);
    const [q, k, v] = [layer.q, layer.k, layer.v].map((p) => split(p.forward(h)));
    const a = reshape(segments ? packedAttention(q, k, v, segments, { causal }) : attention(q, k, v, { causal, layout: 'bthd' }), x.shape);
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
  /** x is a packed [tokens, width] batch of these segments (no hook: states are not [batch, seq, width]). */
  segments?: readonly PackedSegment[];
}

/** Runs every block; returns the last block's output (before any final layer norm). */
export function encoderForward(layers: readonly EncoderLayer[], x: Tensor, opts: EncoderOptions): Tensor {
  if (opts.segments && opts.hook) throw new Error('encoderForward: residual hooks need [batch, seq, width] states, not a packed batch');
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
      ? checkpoint((input) => encoderLayerForward(layer, input, opts.causal, opts.segments), [h])
      : encoderLayerForward(layer, h, opts.causal, opts.segments);
    if (owned) h.dispose();
    h = next;
    owned = true;
    visit(i + 1);
  }
  return owned ? h : h.alias();
}
