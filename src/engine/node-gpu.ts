/**
 * Node-only: the single importer of the `webgpu` package (Dawn). Everything else takes a
 * GPUDevice or a GpuContext, so the browser can pass `navigator.gpu` instead.
 */
import { create, globals } from 'webgpu';
import { GpuContext } from './context.js';
import { NO_ADAPTER_HELP } from './adapter.js';
import { parseTuningOverride } from './tuning.js';

/** JSON TuningOverride for benchmarks, e.g. NEGCLIP_TUNING='{"matmul":"tiled"}'. */
export const TUNING_ENV = 'NEGCLIP_TUNING';

// dawn.node crashes at the next await if the object `create()` returned is garbage-collected.
let dawnGpu: GPU | null = null;

export function nodeGpu(): GPU {
  if (!dawnGpu) {
    Object.assign(globalThis, globals);
    if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp'; // silences a Mesa warning
    dawnGpu = create([]) as unknown as GPU;
  }
  return dawnGpu;
}

let shared: Promise<GpuContext> | null = null;

/** The process-wide context on Dawn; created on first use. */
export function nodeContext(): Promise<GpuContext> {
  if (!shared) {
    const env = process.env[TUNING_ENV];
    const tuning = env ? parseTuningOverride(env, TUNING_ENV) : undefined;
    shared = GpuContext.create(nodeGpu(), { tuning, tuningSource: TUNING_ENV }).catch((e: unknown) => {
      shared = null;
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(msg.includes('No WebGPU adapter') ? msg : `${msg}\n${NO_ADAPTER_HELP}`);
    });
  }
  return shared;
}
