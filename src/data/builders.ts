/** The negation-data builders in one import: facts -> negations -> captions, claim sets, MCQs, probe pairs. */
export * from './rng.js';
export * from './templates.js';
export * from './negations.js';
export * from './claims.js';
export * from './captions.js';
export * from './mcq.js';
export * from './paired-mcq.js';
export * from './probe.js';
export * from './affirmatives.js';

import type { ClaimSet } from './claims.js';
import type { NegatedCaption, RetrievalNegCaption } from './captions.js';
import type { NegBenchMcq } from './mcq.js';
import type { PairedMcq } from './paired-mcq.js';
import type { ProbePair } from './probe.js';

/** Any record a builder returns; `kind` tells them apart. */
export type DataRecord = ClaimSet | NegatedCaption | RetrievalNegCaption | NegBenchMcq | PairedMcq | ProbePair;
export type DataRecordKind = DataRecord['kind'];
