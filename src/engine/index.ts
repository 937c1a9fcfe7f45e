/** The engine's browser-safe entry: nothing here imports Node built-ins or the `webgpu` package. */
export { GpuContext, type BufferRange, type ContextOptions } from './context.js';
export { describeTuning, type Tuning, type TuningOverride, type MatmulTuning, type LoraMerge } from './tuning.js';
export { requestGpuDevice, NO_ADAPTER_HELP, type AdapterSummary } from './adapter.js';
export { Tensor, Storage, empty, tensor, viewTensor, scope, scopeAsync, sizeOf } from './tensor.js';
export { noGrad, enableGrad, inference, isGradEnabled, record, freeGraph, GradNode } from './autograd.js';
export type { ActivationOut, BackwardFn, FusedActivationGrad, PendingGrads } from './autograd.js';
export { OpError, GpuError } from './errors.js';
export { GpuTimer } from './gpu-timer.js';
export type { DType, HostArray } from './dtype.js';
export * from './ops/index.js';
export * from './optim/index.js';
