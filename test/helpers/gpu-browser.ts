/**
 * Browser variant of ./gpu.ts (swapped in by scripts/build-web.mjs for the in-browser tests):
 * the same functions, with the device from navigator.gpu instead of Dawn.
 */
import { GpuContext } from '../../src/engine/context.js';

function browserGpu(): GPU {
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    throw new Error('navigator.gpu is missing: this browser has no WebGPU (Chromium needs --enable-unsafe-webgpu on Linux, and the page must come from http://127.0.0.1 or https)');
  }
  return navigator.gpu;
}

let shared: Promise<GpuContext> | null = null;

/** The shared context for tests (one device per page). */
export function gpu(): Promise<GpuContext> {
  if (!shared) {
    shared = GpuContext.create(browserGpu()).catch((e: unknown) => {
      shared = null;
      throw e;
    });
  }
  return shared;
}

/** A context of its own (for tests that destroy or lose their device). */
export function newContext(): Promise<GpuContext> {
  return GpuContext.create(browserGpu());
}
