/**
 * Where a NAST step's time goes (`node build/bench/compare/profile-step.js [tiny|tiny12|vit] [STEPS]
 * [--by-kernel [--dispatches]]`): host time encoding it, device time after the submission, and
 * dispatches by kernel. `--by-kernel` then times one more step with each dispatch in its own
 * timestamped submission (slower as a whole, since nothing overlaps, but it says which kernels
 * the device time goes to); `--dispatches` also lists every dispatch with its time and, for
 * products, M x N x K.
 */
import { GpuTimer } from '../../src/engine/gpu-timer.js';
import { nodeContext } from '../../src/engine/node-gpu.js';
import { ourStep, STEP_SHAPES } from './step-cases.js';

const ctx = await nodeContext();
const key = process.argv[2] ?? 'tiny';
const shape = STEP_SHAPES.find((s) => s.torch === key && !s.weights && s.peerCase === undefined);
if (!shape) throw new Error(`profile-step: unknown case ${key} (tiny, tiny12 or vit)`);
const r = await ourStep(ctx, shape);
await r.step();
await r.step();
const ops = new Map<string, number>();
const orig = ctx.dispatch.bind(ctx);
(ctx as unknown as { dispatch: typeof orig }).dispatch = (k, u, s, w) => { ops.set(k.name, (ops.get(k.name) ?? 0) + 1); orig(k, u, s, w); };
for (let i = 0; i < Number(process.argv[3] ?? 5); i++) {
  ops.clear();
  const groups0 = ctx.bindGroupsCreated;
  const t = await r.profile();
  console.log(`step ${(t.encodeMs + t.deviceMs).toFixed(1)} ms: encode ${t.encodeMs.toFixed(1)} ms on the host, then ${t.deviceMs.toFixed(1)} ms to the loss on the host; ${r.dispatchesPerStep()} dispatches, ${ctx.bindGroupsCreated - groups0} bind groups created`);
}
if (!process.argv.includes('--by-kernel')) {
  console.log([...ops.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${String(n).padStart(5)} ${k}`).join('\n'));
} else {
  const timer = GpuTimer.create(ctx, 2048);
  if (!timer) throw new Error('profile-step --by-kernel: this adapter has no timestamp-query');
  const names: string[] = [];
  const shapes: string[] = [];
  (ctx as unknown as { dispatch: typeof orig }).dispatch = (k, u, s, w) => {
    names.push(k.name);
    const m = u as unknown as Record<string, number>;
    shapes.push(k.name.startsWith('matmul') ? `${m.M}x${m.N}x${m.K}${m.splits > 1 ? ` split ${m.splits}` : ''}${m.strideA || m.strideB ? ' batched' : ''}` : '');
    timer.begin(); orig(k, u, s, w); timer.end();
  };
  await r.step();
  const spans = await timer.take();
  const byKernel = new Map<string, { n: number; ms: number }>();
  names.forEach((k, i) => { const e = byKernel.get(k) ?? { n: 0, ms: 0 }; e.n++; e.ms += spans[i] ?? 0; byKernel.set(k, e); });
  const total = spans.reduce((a, b) => a + b, 0);
  console.log(`device time by kernel, one step with every dispatch timed alone: ${total.toFixed(1)} ms in ${names.length} dispatches`);
  console.log([...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms)
    .map(([k, e]) => `${e.ms.toFixed(1).padStart(8)} ms ${(100 * e.ms / total).toFixed(1).padStart(5)} % ${String(e.n).padStart(5)} x ${k}`).join('\n'));
  if (process.argv.includes('--dispatches')) {
    names.forEach((k, i) => console.log(`${(spans[i] ?? 0).toFixed(2).padStart(7)} ms ${k} ${shapes[i]}`));
  }
  timer.destroy();
}
r.dispose();
