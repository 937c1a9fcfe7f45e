/**
 * Whole NAST fine-tuning steps on our engine: LoRA r 8 on the text encoder's q/k/v/o, a batch
 * of 32 images x (1 caption + 5 claims), frozen image embeddings, lambda 0.5, AdamW with the
 * per-layer rates of `--scale-mode update`. `torch_step.py` runs the same step in PyTorch.
 */
import type { GpuContext } from '../../src/engine/context.js';
import { tensor } from '../../src/engine/index.js';
import { ClipModel } from '../../src/models/clip.js';
import type { ClipConfig } from '../../src/models/clip-config.js';
import { hostWeights, initClipWeights } from '../../src/models/clip-init.js';
import { attachLora } from '../../src/models/lora.js';
import { Trainer, type TrainItem } from '../../src/nast/trainer.js';
import { VIT_B32 } from '../cases/clip.js';

export interface StepShape {
  name: string;
  config: ClipConfig;
  /** Tokens per text (start and end included); every text is this long, the rest is padding. */
  tokens: number;
  images: number;
  claims: number;
  /** Activation recomputation per block (train.js --recompute). */
  recompute?: boolean;
  /** The PyTorch row this one is compared with, when not its own name. */
  peerCase?: string;
  /** Storage of the frozen projection weights (f16 needs shader-f16). */
  weights?: 'f32' | 'f16';
  /** torch_step.py's key for the same shape. */
  torch: 'tiny' | 'tiny12' | 'vit';
}

export const TINY_WORLD: ClipConfig = {
  text: { hiddenSize: 64, intermediateSize: 256, layers: 4, heads: 2, layerNormEps: 1e-5, activation: 'quick_gelu', vocabSize: 241, maxPositions: 40, eosTokenId: 240 },
  vision: { hiddenSize: 64, intermediateSize: 256, layers: 4, heads: 2, layerNormEps: 1e-5, activation: 'quick_gelu', imageSize: 32, patchSize: 8, channels: 3 },
  projectionDim: 64,
  logitScaleInit: Math.log(1 / 0.07),
};

/** The shipped models/tiny-world's depth (the 4-block case is the one issue 21's targets name). */
export const TINY_WORLD_12: ClipConfig = { ...TINY_WORLD, text: { ...TINY_WORLD.text, layers: 12 } };

export const STEP_SHAPES: StepShape[] = [
  { name: 'tiny-world NAST step', config: TINY_WORLD, tokens: 20, images: 32, claims: 5, torch: 'tiny' },
  { name: 'tiny-world NAST step, f16 weights', config: TINY_WORLD, tokens: 20, images: 32, claims: 5, weights: 'f16', peerCase: 'tiny-world NAST step', torch: 'tiny' },
  { name: 'tiny-world NAST step, 12 blocks', config: TINY_WORLD_12, tokens: 20, images: 32, claims: 5, torch: 'tiny12' },
  // As train.js runs it by default at this width (--recompute on), and without recomputation.
  { name: 'ViT-B/32 text NAST step', config: VIT_B32, tokens: 77, images: 32, claims: 5, recompute: true, torch: 'vit' },
  { name: 'ViT-B/32 text NAST step, no recompute', config: VIT_B32, tokens: 77, images: 32, claims: 5, recompute: false, peerCase: 'ViT-B/32 text NAST step', torch: 'vit' },
];

export function shapeLabel(s: StepShape): string {
  const t = s.config.text;
  return `${t.layers}x${t.hiddenSize}, ${s.images} img x ${1 + s.claims} texts x ${s.tokens} tok${s.recompute ? ', recompute' : ''}${s.weights === 'f16' ? ', f16 weights' : ''}`;
}

/** A text row of `tokens` ids: start, words, end, then padding to the context length. */
function textRow(cfg: ClipConfig, tokens: number, seed: number): Int32Array {
  const t = cfg.text;
  const row = new Int32Array(t.maxPositions);
  const [sot, eot] = t.eosTokenId === null ? [t.vocabSize - 2, t.vocabSize - 1] : [t.eosTokenId - 1, t.eosTokenId];
  row[0] = sot;
  for (let p = 1; p < tokens - 1; p++) row[p] = 1 + ((seed * 131 + p * 17) % (sot - 1));
  row[tokens - 1] = eot;
  return row;
}

export interface StepRunner {
  step(): Promise<void>;
  /** One step, split into host encoding time and the wait for the loss after submitting. */
  profile(): Promise<{ encodeMs: number; deviceMs: number }>;
  dispatchesPerStep(): number;
  peakBytes(): number;
  dispose(): void;
}

export async function ourStep(ctx: GpuContext, s: StepShape): Promise<StepRunner> {
  const cfg = s.config;
  const model = await ClipModel.load(ctx, cfg, hostWeights(initClipWeights(cfg, 1)), { weights: s.weights ?? 'f32' });
  model.recompute = s.recompute ?? false;
  const lora = attachLora(model, { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'out_proj'] });
  const layerScales = Array.from({ length: cfg.text.layers }, (_, l) => (l + 1) / cfg.text.layers);
  const trainer = new Trainer(model, lora, {
    lambda: 0.5, lr: 1e-4, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000, layerScales, scaleMode: 'update', schedule: 'constant',
  });
  const d = cfg.projectionDim;
  const emb = new Float32Array(s.images * d);
  for (let i = 0; i < emb.length; i++) emb[i] = Math.sin(i * 0.71);
  const images = tensor(ctx, emb, [s.images, d]);
  const t = cfg.text.maxPositions;
  const items: TrainItem[] = Array.from({ length: s.images }, (_, i) => {
    const claims = new Int32Array(s.claims * t);
    for (let k = 0; k < s.claims; k++) claims.set(textRow(cfg, s.tokens, i * 7 + k + 1), k * t);
    return { image: i, caption: textRow(cfg, s.tokens, 1000 + i), choices: claims, choiceCount: s.claims, answer: i % s.claims };
  });
  let dispatches = 0;
  const profile = async () => {
    const before = ctx.dispatches;
    const t0 = performance.now();
    const loss = trainer.accumulate(images, items);
    trainer.apply();
    const t1 = performance.now();
    dispatches = ctx.dispatches - before;
    await loss.item();
    loss.dispose();
    return { encodeMs: t1 - t0, deviceMs: performance.now() - t1 };
  };
  return {
    step: async () => { await profile(); },
    profile,
    dispatchesPerStep: () => dispatches,
    peakBytes: () => ctx.pool.peakBytes,
    dispose: () => {
      trainer.dispose();
      images.dispose();
      lora.dispose();
      model.dispose();
    },
  };
}
