/**
 * Times the engine's matmul on random square matrices and checks sampled entries against a
 * float64 product computed on the host.
 */
import { GpuTimer, matmul, matmulVariantName, tensor, type GpuContext, type Tensor } from './lib-entry.js';
import type { App } from './app.js';
import { $, ms, setState, setStatus, showError } from './ui.js';

const SAMPLES = 64;
/** Keep timing until this much time has passed (or MAX_REPS runs), so small sizes average out. */
const TIME_BUDGET_MS = 1000;
const MAX_REPS = 20;

export interface MatmulResult {
  size: number;
  kernel: string;
  firstMs: number;
  perRunMs: number;
  gflops: number;
  /** Median GPU time of a run from timestamp queries; null when the device has none. */
  gpuMs: number | null;
  maxRelError: number;
}

function randomMatrix(n: number, seed: number): Float32Array {
  // xorshift32: deterministic, so two runs of the page multiply the same matrices.
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

export async function runMatmul(ctx: GpuContext, size: number, onProgress: (text: string) => void): Promise<MatmulResult> {
  const n = size;
  const a = randomMatrix(n * n, 1);
  const b = randomMatrix(n * n, 2);
  const made: Tensor[] = [];
  try {
    const at = tensor(ctx, a, [n, n]);
    const bt = tensor(ctx, b, [n, n]);
    made.push(at, bt);
    await ctx.sync();
    onProgress('first run (compiles the kernel)…');
    let t0 = performance.now();
    const c = matmul(at, bt);
    made.push(c);
    await ctx.sync();
    const firstMs = performance.now() - t0;
    let reps = 0;
    t0 = performance.now();
    while (reps < MAX_REPS && performance.now() - t0 < TIME_BUDGET_MS) {
      onProgress(`timing: run ${reps + 1}…`);
      const y = matmul(at, bt);
      await ctx.sync();
      y.dispose();
      reps++;
    }
    const perRunMs = (performance.now() - t0) / reps;
    let gpuMs: number | null = null;
    const timer = GpuTimer.create(ctx);
    if (timer) {
      try {
        // Queued back to back between timestamps, then one wait: the kernel's own time.
        for (let r = 0; r < Math.min(reps, 8); r++) {
          timer.begin();
          made.push(matmul(at, bt));
          timer.end();
        }
        const spans = (await timer.take()).filter((x) => x > 0).sort((x, y) => x - y);
        if (spans.length) gpuMs = spans[spans.length >> 1];
      } finally {
        timer.destroy();
      }
    }
    const got = await c.toArray();
    let maxRelError = 0;
    for (let s = 0; s < SAMPLES; s++) {
      const i = (s * 7919) % n;
      const j = (s * 104729 + 13) % n;
      let want = 0;
      let scale = 0;
      for (let k = 0; k < n; k++) {
        want += a[i * n + k] * b[k * n + j];
        scale += Math.abs(a[i * n + k] * b[k * n + j]);
      }
      // Relative to sum |a_ik b_kj|: the bound f32 accumulation is held to, even when want ~ 0.
      maxRelError = Math.max(maxRelError, Math.abs(got[i * n + j] - want) / (scale || 1));
    }
    const best = gpuMs ?? perRunMs;
    return { size: n, kernel: matmulVariantName(ctx), firstMs, perRunMs, gpuMs, gflops: (2 * n ** 3) / (best * 1e6), maxRelError };
  } finally {
    for (const t of made) t.dispose();
  }
}

/**
 * `app`: the panel runs only while no other GPU job does (a timed matmul beside a fine-tuning
 * run would time both, and it would take the GPU from the run).
 */
export function setUpMatmulPanel(app: App): void {
  const ctx = app.ctx;
  const section = $('#matmul');
  const form = $('[data-testid="matmul-form"]', section) as HTMLFormElement;
  const button = form.querySelector('button')!;
  const status = $('[data-testid="matmul-status"]', section);
  const table = $('[data-testid="matmul-results"]', section) as HTMLTableElement;
  const refresh = () => {
    button.disabled = app.busy !== null;
    button.title = app.busy ? `wait until "${app.busy}" has finished (one GPU job at a time)` : '';
  };
  app.onChange(refresh);
  refresh();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const size = Number(new FormData(form).get('size'));
    setState(section, 'running');
    try {
      const r = await app.exclusive('matrix multiply', () => runMatmul(ctx, size, (t) => setStatus(status, `${size}×${size}×${size}: ${t}`, true)));
      const row = table.tBodies[0].insertRow();
      row.dataset.size = String(r.size);
      row.dataset.maxRelError = String(r.maxRelError);
      row.dataset.gpuMs = r.gpuMs === null ? '' : String(r.gpuMs);
      for (const v of [`${r.size}`, r.kernel, ms(r.firstMs), ms(r.perRunMs), r.gpuMs === null ? 'no timestamp queries' : ms(r.gpuMs), r.gflops.toFixed(2), r.maxRelError.toExponential(1)]) {
        row.insertCell().textContent = v;
      }
      table.hidden = false;
      setStatus(status, `${size}×${size}×${size}: done.`);
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, `${size}×${size}×${size}: failed (see the error below).`);
      showError('Matrix multiply', e, section);
    }
  });
}
