/**
 * The package's main entry, `negclip-webgpu`: the browser-safe library (engine and ops, CLIP
 * models and their loaders from bytes, tokenizers, image preprocessing, LoRA / PEFT adapters,
 * causal tracing, CTE, the losses and the training loop, evaluation, the data builders and
 * ingesters of data.js's source formats, the miniature world).
 * Nothing reachable from here imports a Node built-in or the `webgpu` package: the device comes
 * from `navigator.gpu` (`GpuContext.create(navigator.gpu)`) or, in Node, from `nodeContext()` in
 * `negclip-webgpu/node` (src/node.ts), which also holds the file and folder loaders.
 * web/lib-entry.ts (the demo site's lib.js) re-exports this module.
 */
export * from './engine/index.js';
export * from './models/clip-config.js';
export * from './models/clip-weights.js';
export * from './models/safetensors.js';
export * from './models/tokenizer/index.js';
export * from './models/image/resample.js';
export * from './models/image/preprocess.js';
export * from './models/errors.js';
export * from './models/clip.js';
export * from './models/text-rows.js';
export * from './models/load-bytes.js';
export * from './models/lora.js';
export * from './models/peft.js';
export * from './nast/trace.js';
export * from './nast/cte.js';
export * from './nast/heatmap-svg.js';
export { cteUpgradeNote, parseCteReport } from './nast/cte-report-parse.js';
export * from './nast/train-bounds.js';
export * from './nast/losses.js';
export * from './nast/trainer.js';
export * from './nast/training-loop.js';
export * from './nast/recipe.js';
export { updateShares, type UpdateShares } from './nast/update-shares.js';
export { ExampleBatcher, type Example as TrainExample } from './nast/train-data.js';
export { escapeXml, formatNumber } from './io/report.js';
// The data builders and the miniature world share a few helper names (locationPhrase): only
// what a page needs to make world images, captions and claim sets is re-exported.
export {
  DEFAULT_SPEC, generateWorld, renderScene, worldConditions, type WorldImage, type WorldRecord, type WorldOptions,
} from './data/world/index.js';
export { buildProbePairs, type ProbePair, type ProbeOptions } from './data/probe.js';
export { isPairsText, parsePairLines, type PairLine } from './nast/pairs-file.js';
export { ingestJsonl } from './data/ingest-jsonl.js';
export { matchImages, readUserData, templateLines, type PickedImage, type UserData } from './data/user-data.js';
export { SOURCE_FORMATS, guessSourceFormat, ingestText, sourceFormatOf, type SourceFormat } from './data/ingest-text.js';
export { buildStudy, type BuildContext, type Domain, type Kind as RecordKindGroup } from './data/build-records.js';
export { GENERIC_NEGATION_VOCAB, fileDomain, worldDomain } from './data/build-domains.js';
export type { EvalRecord } from './data/records.js';
export {
  evaluateClip, planEvaluation, reportFromScores, scoresFromEmbeddings,
  type EvalPlan, type EvalReport, type EvaluateOptions, type EvaluateResult, type ClaimReport, type RetrievalReport,
} from './nast/evaluate.js';
export type { Study, Fact } from './data/facts.js';
export {
  GENERIC_TEMPLATES, buildClaimSets, buildNegatedCaptions, makeRng, shuffle,
  type ClaimSet, type NegatedCaption, type NegationVocab,
} from './data/builders.js';
export type { Activation } from './engine/index.js';
/** @deprecated the MLP activation of a CLIP config: HiddenActivation. */
export type { HiddenActivation as ClipActivation } from './models/clip-config.js';
