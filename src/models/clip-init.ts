/**
 * Fresh CLIP weights for a config: for pretraining from scratch (the miniature world) and for
 * benchmarks at real shapes without a checkpoint. Initialisation follows OpenAI CLIP's
 * `initialize_parameters` (normal with the same standard deviations), seeded.
 */
import type { ClipConfig, TowerConfig } from './clip-config.js';
import { expectedHfShapes, type HfWeights, type HostTensor } from './clip-weights.js';

/** splitmix32 + Box-Muller: a small, fast, reproducible normal generator. */
function normalSource(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

function stdFor(key: string, cfg: ClipConfig): number | 'ones' | 'zeros' {
  const tower: TowerConfig = key.startsWith('vision_model') ? cfg.vision : cfg.text;
  const d = tower.hiddenSize;
  const attnStd = d ** -0.5;
  const projStd = d ** -0.5 * (2 * tower.layers) ** -0.5;
  const fcStd = (2 * d) ** -0.5;
  if (/layer_norm\d?\.weight$|layrnorm\.weight$|layernorm\.weight$/.test(key)) return 'ones';
  if (key.endsWith('.bias')) return 'zeros';
  if (key.endsWith('token_embedding.weight')) return 0.02;
  if (key.startsWith('text_model') && key.endsWith('position_embedding.weight')) return 0.01;
  if (key.startsWith('vision_model.embeddings')) return d ** -0.5;
  if (/q_proj|k_proj|v_proj/.test(key)) return attnStd;
  if (key.includes('out_proj') || key.includes('mlp.fc2')) return projStd;
  if (key.includes('mlp.fc1')) return fcStd;
  if (key === 'text_projection.weight') return cfg.text.hiddenSize ** -0.5;
  if (key === 'visual_projection.weight') return cfg.vision.hiddenSize ** -0.5;
  return 0.02;
}

/** Every weight of a CLIPModel of this config, freshly initialised from `seed`. */
export function initClipWeights(cfg: ClipConfig, seed = 0): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const normal = normalSource(seed);
  for (const [key, shape] of expectedHfShapes(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (key === 'logit_scale') data[0] = cfg.logitScaleInit;
    else {
      const std = stdFor(key, cfg);
      if (std === 'ones') data.fill(1);
      else if (std !== 'zeros') for (let i = 0; i < size; i++) data[i] = std * normal();
    }
    out.set(key, { shape: [...shape], data });
  }
  return out;
}

/** An `HfWeights` reader over host tensors keyed by Hugging Face names. */
export function hostWeights(tensors: ReadonlyMap<string, HostTensor>, source = 'memory'): HfWeights {
  return {
    source,
    async get(key: string): Promise<HostTensor> {
      const t = tensors.get(key);
      if (!t) throw new Error(`${source}: ${key}: missing`);
      return t;
    },
  };
}
