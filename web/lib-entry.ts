/**
 * The library as one browser ES module (bundled to build/site/lib.js by scripts/build-web.mjs).
 * Only browser-safe modules: the device comes from `navigator.gpu`
 * (`GpuContext.create(navigator.gpu)`), files come in as bytes, `Response`s or `File`s.
 * Node-only modules (*-node.ts, the `webgpu` package, image decoding) stay out; the build fails
 * if one is reached.
 */
export * from '../src/engine/index.js';
export * from '../src/models/clip-config.js';
export * from '../src/models/clip-weights.js';
export * from '../src/models/safetensors.js';
export * from '../src/models/tokenizer/index.js';
export * from '../src/models/image/resample.js';
export * from '../src/models/image/preprocess.js';
export * from '../src/models/errors.js';
export * from '../src/models/clip.js';
export * from '../src/models/text-rows.js';
export * from '../src/models/load-bytes.js';
export * from '../src/models/lora.js';
export * from '../src/models/peft.js';
export * from '../src/nast/trace.js';
export * from '../src/nast/cte.js';
export * from '../src/nast/heatmap-svg.js';
export * from '../src/nast/losses.js';
export * from '../src/nast/train-loop.js';
export * from '../src/nast/nast-run.js';
export { ExampleBatcher, type Example as TrainExample } from '../src/nast/train-data.js';
export { escapeXml, formatNumber } from '../src/io/report.js';
// The data builders and the miniature world share a few helper names (locationPhrase): only
// what a page needs to make world images, captions and claim sets is re-exported.
export {
  DEFAULT_SPEC, generateWorld, renderScene, worldConditions, type WorldImage, type WorldRecord, type WorldOptions,
} from '../src/data/world/index.js';
export {
  GENERIC_TEMPLATES, buildClaimSets, buildNegatedCaptions, makeRng, shuffle,
  type ClaimSet, type NegatedCaption, type NegationVocab,
} from '../src/data/builders.js';
export type { Activation } from '../src/engine/index.js';
/** @deprecated the MLP activation of a CLIP config: HiddenActivation. */
export type { HiddenActivation as ClipActivation } from '../src/models/clip-config.js';
