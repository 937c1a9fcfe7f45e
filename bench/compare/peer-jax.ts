/**
 * jax-js (`@jax-js/jax`) on the same Dawn adapter: it finds `navigator.gpu` as tfjs does. Timed
 * on the square matmul only (its arrays are consumed by the ops they feed, so each run makes
 * fresh references): the median of 5 runs, each waited for with `blockUntilReady`.
 */
import { nodeGpu } from '../../src/engine/node-gpu.js';

export interface JaxResult {
  version: string;
  /** ms per 1024^3 matmul, or why jax-js could not run here. */
  matmulMs: number | null;
  reason?: string;
}

export async function jaxMatmul(n = 1024): Promise<JaxResult> {
  let version = '?';
  try {
    const gpu = nodeGpu();
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!nav) Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true });
    const jax = await import('@jax-js/jax');
    const { createRequire } = await import('node:module');
    const { readFileSync } = await import('node:fs');
    const { dirname, join } = await import('node:path');
    const entry = createRequire(import.meta.url).resolve('@jax-js/jax');
    version = (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string }).version;
    const got = await jax.init('webgpu');
    if (!got.includes('webgpu')) return { version, matmulMs: null, reason: `init('webgpu') gave ${JSON.stringify(got)}: no WebGPU device` };
    jax.defaultDevice('webgpu');
    const np = jax.numpy;
    const a = np.ones([n, n]).mul(0.01);
    const b = np.ones([n, n]).mul(0.02);
    const f = jax.jit((x: typeof a, y: typeof a) => np.matmul(x, y));
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const c = await jax.blockUntilReady(f(a.ref, b.ref));
      if (i > 0) times.push(performance.now() - t0);
      c.dispose();
    }
    a.dispose();
    b.dispose();
    times.sort((x, y) => x - y);
    return { version, matmulMs: times[times.length >> 1] };
  } catch (e) {
    return { version, matmulMs: null, reason: (e as Error).message.split('\n')[0] };
  }
}
