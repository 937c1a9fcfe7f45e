import { nodeContext } from '../../src/engine/node-gpu.js';
import type { GpuContext } from '../../src/engine/context.js';

/** The shared Dawn context for tests (one device per process). */
export function gpu(): Promise<GpuContext> {
  return nodeContext();
}
