/**
 * Browser variant of ./fixture-models.ts (swapped in by scripts/build-web.mjs): fetches the
 * checkpoint's files from /fixtures/ and loads them from bytes with the product's byte loader,
 * as a page would.
 */
import type { GpuContext } from '../../src/engine/index.js';
import type { ClipModel, LoadOptions } from '../../src/models/clip.js';
import { loadClipFromBytes } from '../../src/models/load-bytes.js';
import { fixtureBytes, fixtureText } from './fixtures.js';

export interface FixtureClipOptions extends LoadOptions {
  /** A config.json (relative to test/fixtures) to use instead of the one beside the weights. */
  config?: string;
}

export async function loadFixtureClip(ctx: GpuContext, rel: string, opts: FixtureClipOptions = {}): Promise<ClipModel> {
  const { config: configRel, ...load } = opts;
  const file = rel.endsWith('.safetensors');
  const weightsName = file ? rel : `${rel}/model.safetensors`;
  const weights = await fixtureBytes(weightsName);
  // A folder always has its config.json; a lone OpenAI-layout file has its config inferred.
  const configName = configRel ?? (file ? undefined : `${rel}/config.json`);
  const config = configName === undefined ? undefined : await fixtureText(configName);
  return loadClipFromBytes(ctx, { config, configName, weights, weightsName }, load);
}
