/**
 * Browser variant of ./fixture-models.ts (swapped in by scripts/build-web.mjs): fetches the
 * checkpoint's files from /fixtures/ and loads them from bytes, as a page would.
 */
import type { GpuContext } from '../../src/engine/index.js';
import { ClipModel, type LoadOptions } from '../../src/models/clip.js';
import { inferOpenAiConfig, parseHfConfig, type ClipConfig } from '../../src/models/clip-config.js';
import { hfWeights } from '../../src/models/clip-weights.js';
import { parseSafetensors } from '../../src/models/safetensors.js';
import { fixtureBytes, fixtureJson } from './fixtures.js';

export interface FixtureClipOptions extends LoadOptions {
  /** A config.json (relative to test/fixtures) to use instead of the one beside the weights. */
  config?: string;
}

export async function loadFixtureClip(ctx: GpuContext, rel: string, opts: FixtureClipOptions = {}): Promise<ClipModel> {
  const { config: configRel, ...load } = opts;
  const file = rel.endsWith('.safetensors');
  const weightsRel = file ? rel : `${rel}/model.safetensors`;
  const weights = parseSafetensors(await fixtureBytes(weightsRel), weightsRel);
  let config: ClipConfig;
  if (configRel !== undefined || !file) {
    const c = configRel ?? `${rel}/config.json`;
    config = parseHfConfig(await fixtureJson(c), c);
  } else {
    config = inferOpenAiConfig(new Map(weights.keys().map((k) => [k, weights.shape(k)])), weightsRel);
  }
  return ClipModel.load(ctx, config, hfWeights(weights, config), load);
}
