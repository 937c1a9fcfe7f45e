/**
 * TensorFlow.js's WebGPU backend on the same Dawn adapter as ours, in this Node process:
 * tfjs looks for `navigator.gpu`, so it gets the one `nodeGpu()` made.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { nodeGpu } from '../../src/engine/node-gpu.js';

/**
 * tfjs-core's gradient functions ship only as extensionless ES modules (for bundlers), which
 * Node cannot import; the tfjs umbrella package that registers them drags in layers, converter
 * and WebGL. So core, its gradients and the WebGPU backend are bundled once into one module
 * (one engine, one kernel registry) with esbuild, already a dev dependency.
 */
async function tfjsBundle(): Promise<string> {
  const out = join(dirname(fileURLToPath(import.meta.url)), 'tfjs-bundle.cjs');
  if (existsSync(out)) return out;
  const esbuild = await import('esbuild');
  await esbuild.build({
    stdin: {
      contents: "export * from '@tensorflow/tfjs-core';\nimport '@tensorflow/tfjs-core/dist/register_all_gradients';\nimport '@tensorflow/tfjs-backend-webgpu';\n",
      resolveDir: process.cwd(), loader: 'js',
    },
    bundle: true, format: 'cjs', platform: 'node', mainFields: ['module', 'main'], outfile: out, logLevel: 'error',
  });
  return out;
}

export type Tf = typeof import('@tensorflow/tfjs-core');

export interface TfPeer {
  tf: Tf;
  /** Submits what tfjs has queued and waits for the device to finish it. */
  sync(): Promise<void>;
  version: string;
}

export async function tfjsPeer(): Promise<TfPeer> {
  const gpu = nodeGpu();
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav) Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true });
  else if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  const tf = createRequire(import.meta.url)(await tfjsBundle()) as Tf;
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js: the webgpu backend did not initialise');
  await tf.ready();
  const backend = tf.backend() as unknown as { ensureCommandEncoderReady(): void; endComputePassEncoder(): void; submitQueue(): void; device: GPUDevice };
  return {
    tf,
    version: tf.version_core,
    sync: async () => {
      // As tfjs's own readback does: close the open pass, submit, then wait.
      backend.ensureCommandEncoderReady();
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    },
  };
}
