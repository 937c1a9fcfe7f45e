import type { GpuContext } from '../../src/engine/context.js';
import { noGrad, scope } from '../../src/engine/index.js';
import { ClipModel } from '../../src/models/clip.js';
import type { ClipConfig } from '../../src/models/clip-config.js';
import { hostWeights, initClipWeights } from '../../src/models/clip-init.js';
import type { BenchCase } from '../case.js';

/** OpenAI ViT-B/32: text 12 x 512 (8 heads, 77 tokens), vision 12 x 768 (12 heads, 224 px, patch 32). */
export const VIT_B32: ClipConfig = {
  text: { hiddenSize: 512, intermediateSize: 2048, layers: 12, heads: 8, layerNormEps: 1e-5, activation: 'quick_gelu', vocabSize: 49408, maxPositions: 77, eosTokenId: null },
  vision: { hiddenSize: 768, intermediateSize: 3072, layers: 12, heads: 12, layerNormEps: 1e-5, activation: 'quick_gelu', imageSize: 224, patchSize: 32, channels: 3 },
  projectionDim: 512,
  logitScaleInit: Math.log(1 / 0.07),
};

/** Forward flops of one tower: 2 per multiply-add of every matmul, attention scores included. */
function towerFlops(d: number, mlp: number, layers: number, tokens: number, batch: number): number {
  const perToken = layers * (2 * 4 * d * d + 2 * 2 * d * mlp + 2 * 2 * tokens * d);
  return perToken * tokens * batch;
}

/** Whole-encoder forward passes at ViT-B/32 shape, batch 32, random weights (no checkpoint needed). */
export async function clipCases(ctx: GpuContext): Promise<BenchCase[]> {
  const cfg = VIT_B32;
  const model = await ClipModel.load(ctx, cfg, hostWeights(initClipWeights(cfg, 1)));
  const B = 32;
  const T = cfg.text.maxPositions;
  const ids = new Int32Array(B * T);
  for (let i = 0; i < B; i++) {
    ids[i * T] = 49406;
    for (let p = 1; p < 20 + (i % 10); p++) ids[i * T + p] = 1000 + ((i * 31 + p * 7) % 40000);
    ids[i * T + 20 + (i % 10)] = 49407;
  }
  const S = cfg.vision.imageSize;
  const pixels = new Float32Array(B * 3 * S * S);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.013);
  const grid = (S / cfg.vision.patchSize) ** 2 + 1;
  const t = cfg.text;
  const v = cfg.vision;
  const patchFlops = 2 * B * (grid - 1) * 3 * cfg.vision.patchSize ** 2 * v.hiddenSize;
  return [
    {
      kernel: 'clip.text_forward', shape: `ViT-B/32 text ${B}x${T}`,
      flops: towerFlops(t.hiddenSize, t.intermediateSize, t.layers, T, B),
      note: 'whole text tower, noGrad',
      iterations: 2,
      run: () => noGrad(() => scope(ctx, () => { model.encodeText(ids, B); })),
      dispose: () => {},
    },
    {
      kernel: 'clip.image_forward', shape: `ViT-B/32 image ${B}x3x${S}x${S}`,
      flops: towerFlops(v.hiddenSize, v.intermediateSize, v.layers, grid, B) + patchFlops,
      note: 'whole vision tower incl. host patchify, noGrad',
      iterations: 2,
      run: () => noGrad(() => scope(ctx, () => { model.encodeImage(pixels, B); })),
      dispose: () => model.dispose(),
    },
  ];
}

clipCases.kernels = ['clip.text_forward', 'clip.image_forward'];
