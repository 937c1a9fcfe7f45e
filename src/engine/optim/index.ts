export { AdamW, type ParamGroupSpec, type AdamWOptions, type StepOptions, type ParamGroup, type GroupState, type OptimizerState } from './adamw.js';
export { SLOT_ALIGN_BYTES } from './arena.js';
export { warmupCosine, warmupConstant, type Schedule, type WarmupCosineOptions } from './schedules.js';
