/**
 * Models from test/fixtures, loaded the same way in Node and in the browser. Node loads them
 * from disk with the product's Node loader; the browser variant (./fixture-models-browser.ts)
 * fetches the same files and loads them from bytes.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GpuContext } from '../../src/engine/index.js';
import type { ClipModel, LoadOptions } from '../../src/models/clip.js';
import { loadClip } from '../../src/models/load-node.js';

// Compiled to build/test/helpers/, so the repository root is three levels up.
const FIXTURES = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'fixtures');

export interface FixtureClipOptions extends LoadOptions {
  /** A config.json (relative to test/fixtures) to use instead of the one beside the weights. */
  config?: string;
}

/**
 * A CLIP checkpoint under test/fixtures: a Hugging Face folder (`clip/tiny-hf`) or an
 * OpenAI-layout `.safetensors` file (config inferred from the shapes unless `config` is given).
 */
export function loadFixtureClip(ctx: GpuContext, rel: string, opts: FixtureClipOptions = {}): Promise<ClipModel> {
  const { config, ...load } = opts;
  return loadClip(ctx, join(FIXTURES, rel), { ...load, configPath: config ? join(FIXTURES, config) : undefined });
}
