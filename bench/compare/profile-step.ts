/**
 * Where a NAST step's time goes (`node build/bench/compare/profile-step.js [tiny|tiny12|vit] [STEPS]`): host
 * time encoding it, device time after the submission, and dispatches by kernel.
 */
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
console.log([...ops.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${String(n).padStart(5)} ${k}`).join('\n'));
r.dispose();
