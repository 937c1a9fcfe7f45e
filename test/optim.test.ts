import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { assertClose } from './helpers/check.js';
import { f32, randNd } from './helpers/ref.js';
import { AdamW, SLOT_ALIGN_BYTES, type ParamGroupSpec } from '../src/engine/optim/index.js';
import { tensor, type Tensor } from '../src/engine/tensor.js';
import { OpError } from '../src/engine/errors.js';
import type { GpuContext } from '../src/engine/context.js';

/** Float64 AdamW (torch.optim.AdamW semantics, clipping over raw gradients before gradScale). */
interface RefGroup { p: Float64Array[]; m: Float64Array[]; v: Float64Array[]; lr: number; wd: number; scale: number }
interface RefOpts { b1: number; b2: number; eps: number }

function refNorm(grads: (Float64Array | null)[][]): number {
  let s = 0;
  for (const g of grads) for (const x of g) if (x) for (const e of x) s += e * e;
  return Math.sqrt(s);
}

function refStep(groups: RefGroup[], grads: (Float64Array | null)[][], t: number, o: RefOpts, lrFactor = 1, maxNorm?: number): void {
  const coef = maxNorm === undefined ? 1 : Math.min(1, maxNorm / (refNorm(grads) + 1e-6));
  const bc1 = 1 - o.b1 ** t;
  const bc2 = 1 - o.b2 ** t;
  groups.forEach((g, gi) => {
    const lr = g.lr * lrFactor;
    g.p.forEach((p, k) => {
      const gr = grads[gi][k];
      for (let i = 0; i < p.length; i++) {
        const gs = (gr ? gr[i] : 0) * g.scale * coef;
        p[i] *= 1 - lr * g.wd;
        g.m[k][i] = o.b1 * g.m[k][i] + (1 - o.b1) * gs;
        g.v[k][i] = o.b2 * g.v[k][i] + (1 - o.b2) * gs * gs;
        p[i] -= (lr / bc1) * g.m[k][i] / (Math.sqrt(g.v[k][i]) / Math.sqrt(bc2) + o.eps);
      }
    });
  });
}

const SIZES_A = [[1], [3], [7]];
const SIZES_B = [[7, 11], [3, 43]]; // 77 and 129 elements
const OPTS: RefOpts = { b1: 0.9, b2: 0.999, eps: 1e-8 };

function makeParams(ctx: GpuContext, shapes: number[][], seed: number): { ts: Tensor[]; host: Float64Array[] } {
  const host = shapes.map((s, i) => f32(randNd(s, seed + i, -1, 1)).data);
  const ts = shapes.map((s, i) => {
    const t = tensor(ctx, host[i], s);
    t.requiresGrad = true;
    t.name = `p${seed}.${i}`;
    return t;
  });
  return { ts, host: host.map((h) => h.slice()) };
}

/** Random f32 gradients for every param (null where `skip` says), assigned to `.grad`. */
function setGrads(ctx: GpuContext, params: Tensor[][], seed: number, range = 1, skip?: (gi: number, k: number) => boolean): (Float64Array | null)[][] {
  return params.map((ps, gi) => ps.map((p, k) => {
    p.grad?.dispose();
    p.grad = null;
    if (skip?.(gi, k)) return null;
    const g = f32(randNd([...p.shape], seed * 100 + gi * 10 + k, -range, range)).data;
    p.grad = tensor(ctx, g, p.shape);
    return g;
  }));
}

async function expectParams(what: string, params: Tensor[][], ref: RefGroup[], rtol = 1e-5, atol = 1e-6): Promise<void> {
  for (let gi = 0; gi < params.length; gi++) {
    for (let k = 0; k < params[gi].length; k++) {
      assertClose(`${what}: group ${gi} param ${k} [${params[gi][k].shape}]`, await params[gi][k].toArray(), ref[gi].p[k], rtol, atol);
    }
  }
}

function refGroups(host: Float64Array[][], specs: { lr: number; wd: number; scale: number }[]): RefGroup[] {
  return host.map((ps, gi) => ({
    p: ps.map((p) => p.slice()),
    m: ps.map((p) => new Float64Array(p.length)),
    v: ps.map((p) => new Float64Array(p.length)),
    ...specs[gi],
  }));
}

function disposeAll(opt: AdamW, params: Tensor[][]): void {
  opt.zeroGrad();
  opt.dispose();
  for (const ps of params) for (const p of ps) p.dispose();
}

test('AdamW matches a float64 reference: two groups, odd sizes, schedule, a missing gradient', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const A = makeParams(ctx, SIZES_A, 1);
  const B = makeParams(ctx, SIZES_B, 2);
  const hyper = [{ lr: 1e-2, wd: 0.1, scale: 0.5 }, { lr: 3e-3, wd: 0, scale: 2 }];
  const schedule = (t: number) => 1 / (1 + 0.5 * t);
  const opt = new AdamW(ctx, [
    { params: A.ts, lr: hyper[0].lr, weightDecay: hyper[0].wd, gradScale: hyper[0].scale, name: 'A' },
    { params: B.ts, weightDecay: hyper[1].wd, gradScale: hyper[1].scale, name: 'B' },
  ], { lr: hyper[1].lr, schedule });
  const params = [A.ts, B.ts];
  for (const p of [...A.ts, ...B.ts]) {
    const off = p.range('test').offset;
    assert.is(off % SLOT_ALIGN_BYTES, 0, `param ${p.name} bound at offset ${off}`);
  }
  // Parameters read back unchanged after moving into the arena.
  await expectParams('after construction', params, refGroups([A.host, B.host], hyper), 0, 0);
  const ref = refGroups([A.host, B.host], hyper);
  for (let t = 1; t <= 5; t++) {
    // Step 3 leaves B's first param without a gradient: it counts as zeros.
    const grads = setGrads(ctx, params, t, 1, (gi, k) => t === 3 && gi === 1 && k === 0);
    opt.step();
    refStep(ref, grads, t, OPTS, schedule(t - 1));
  }
  await expectParams('after 5 steps', params, ref);
  const st = await opt.state();
  assert.is(st.step, 5);
  st.groups.forEach((g, gi) => g.m.forEach((m, k) => {
    assertClose(`m group ${gi} param ${k}`, m, ref[gi].m[k], 1e-5, 1e-7);
    assertClose(`v group ${gi} param ${k}`, g.v[k], ref[gi].v[k], 1e-5, 1e-9);
  }));
  disposeAll(opt, params);
  assert.is(ctx.pool.liveBytes, live, 'GPU memory leaked');
});

test('gradScale = 0 with weight decay 0 leaves parameters exactly unchanged', async () => {
  const ctx = await gpu();
  const A = makeParams(ctx, SIZES_A, 3);
  const B = makeParams(ctx, SIZES_B, 4);
  const opt = new AdamW(ctx, [
    { params: A.ts, gradScale: 0, weightDecay: 0 },
    { params: B.ts, gradScale: 1 },
  ], { lr: 0.1 });
  for (let t = 1; t <= 3; t++) {
    setGrads(ctx, [A.ts, B.ts], 10 + t, 5);
    opt.step({ maxGradNorm: t === 2 ? 0.1 : undefined });
  }
  for (let k = 0; k < A.ts.length; k++) {
    const got = await A.ts[k].toArray();
    assert.equal(Array.from(got), Array.from(A.host[k]), `frozen-by-scale param ${k} changed`);
  }
  const moved = await B.ts[0].toArray();
  assert.not.equal(Array.from(moved), Array.from(B.host[0]), 'the scale-1 group should move');
  disposeAll(opt, [A.ts, B.ts]);
});

test('global-norm clipping over raw gradients matches the reference (active and inactive)', async () => {
  const ctx = await gpu();
  const hyper = [{ lr: 5e-3, wd: 0.01, scale: 0.25 }, { lr: 2e-2, wd: 0.05, scale: 3 }];
  for (const maxNorm of [0.3, 1e3]) {
    const A = makeParams(ctx, SIZES_A, 5);
    const B = makeParams(ctx, SIZES_B, 6);
    const params = [A.ts, B.ts];
    const opt = new AdamW(ctx, hyper.map((h, i): ParamGroupSpec => ({ params: params[i], lr: h.lr, weightDecay: h.wd, gradScale: h.scale })), { lr: 1 });
    const ref = refGroups([A.host, B.host], hyper);
    for (let t = 1; t <= 4; t++) {
      const grads = setGrads(ctx, params, 20 + t, 2);
      const expectedNorm = refNorm(grads);
      assert.ok(maxNorm > 1 ? expectedNorm < maxNorm : expectedNorm > 10 * maxNorm, `clipping should be ${maxNorm > 1 ? 'inactive' : 'active'}`);
      if (t % 2 === 0) {
        // gradNorm() first: the step must reuse the gathered gradients and their norm.
        const n = opt.gradNorm();
        const before = ctx.dispatches;
        opt.step({ maxGradNorm: maxNorm });
        assert.is(ctx.dispatches - before, 2, 'step after gradNorm() should only run the two AdamW dispatches');
        assertClose(`gradNorm step ${t}`, await n.toArray(), [expectedNorm], 1e-5, 0);
        n.dispose();
      } else {
        opt.step({ maxGradNorm: maxNorm });
        const n = opt.gradNorm(); // the norm of the gradients just used, without recomputation
        assertClose(`gradNorm after step ${t}`, await n.toArray(), [expectedNorm], 1e-5, 0);
        n.dispose();
      }
      refStep(ref, grads, t, OPTS, 1, maxNorm);
    }
    await expectParams(`maxGradNorm ${maxNorm}`, params, ref);
    disposeAll(opt, params);
  }
});

test('gradNorm spans several reduction workgroups and groups', async () => {
  const ctx = await gpu();
  // 40001 elements: 3 norm workgroups of 4096 vec4s, the last one partial.
  const A = makeParams(ctx, [[40001], [3]], 11);
  const B = makeParams(ctx, [[129]], 12);
  const params = [A.ts, B.ts];
  const opt = new AdamW(ctx, [{ params: A.ts, gradScale: 5 }, { params: B.ts }], { lr: 1e-3 });
  const grads = setGrads(ctx, params, 50);
  const n = opt.gradNorm();
  assertClose('gradNorm', await n.toArray(), [refNorm(grads)], 1e-5, 0);
  assert.equal([...n.shape], []);
  n.dispose();
  disposeAll(opt, params);
});

test('no GPU memory leak across steps; dispose gives parameters their own buffers back', async () => {
  const ctx = await gpu();
  const live0 = ctx.pool.liveBytes;
  const A = makeParams(ctx, SIZES_A, 7);
  const B = makeParams(ctx, SIZES_B, 8);
  const params = [A.ts, B.ts];
  const withParams = ctx.pool.liveBytes;
  const opt = new AdamW(ctx, [{ params: A.ts }, { params: B.ts, gradScale: 0.7 }], { lr: 1e-3 });
  let warm = 0;
  for (let t = 1; t <= 8; t++) {
    setGrads(ctx, params, 30 + t);
    opt.step({ maxGradNorm: t % 2 ? 1 : undefined });
    opt.gradNorm().dispose();
    opt.zeroGrad();
    if (t === 2) warm = ctx.pool.liveBytes;
  }
  await ctx.sync();
  assert.is(ctx.pool.liveBytes, warm, `live bytes grew by ${ctx.pool.liveBytes - warm} after warm-up`);
  const values = await Promise.all(A.ts.map((p) => p.toArray()));
  opt.dispose();
  assert.is(ctx.pool.liveBytes, withParams, 'after dispose only the parameters themselves stay live');
  for (let k = 0; k < A.ts.length; k++) {
    assert.is(A.ts[k].range('test').offset, 0);
    assert.equal(Array.from(await A.ts[k].toArray()), Array.from(values[k]), `param ${k} kept its value after dispose`);
  }
  for (const ps of params) for (const p of ps) p.dispose();
  assert.is(ctx.pool.liveBytes, live0);
});

test('state() / loadState() round trip, then identical continued steps', async () => {
  const ctx = await gpu();
  const hyper = { lr: 1e-2, weightDecay: 0.02 };
  const A = makeParams(ctx, [...SIZES_A, ...SIZES_B], 9);
  const optA = new AdamW(ctx, [{ params: A.ts.slice(0, 3), gradScale: 0.5, name: 'first' }, { params: A.ts.slice(3), name: 'second' }], hyper);
  for (let t = 1; t <= 3; t++) {
    setGrads(ctx, [A.ts], 40 + t);
    optA.step({ maxGradNorm: 1 });
  }
  const saved = await optA.state();
  const values = await Promise.all(A.ts.map((p) => p.toArray()));
  const B = A.ts.map((p, i) => {
    const t = tensor(ctx, values[i], p.shape);
    t.requiresGrad = true;
    return t;
  });
  const optB = new AdamW(ctx, [{ params: B.slice(0, 3), name: 'first' }, { params: B.slice(3), name: 'second' }], { lr: 0.5 });
  optB.loadState(saved);
  assert.is(optB.stepCount, 3);
  assert.is(optB.groups[0].gradScale, 0.5);
  assert.is(optB.groups[1].lr, hyper.lr);
  for (let t = 4; t <= 5; t++) {
    setGrads(ctx, [A.ts], 40 + t);
    setGrads(ctx, [B], 40 + t);
    optA.step({ maxGradNorm: 1 });
    optB.step({ maxGradNorm: 1 });
  }
  for (let k = 0; k < B.length; k++) {
    assert.equal(Array.from(await B[k].toArray()), Array.from(await A.ts[k].toArray()), `param ${k} diverged after loadState`);
  }
  const [sa, sb] = [await optA.state(), await optB.state()];
  assert.equal(sb.groups.map((g) => g.m.map((x) => Array.from(x))), sa.groups.map((g) => g.m.map((x) => Array.from(x))));
  assert.equal(sb.groups.map((g) => g.v.map((x) => Array.from(x))), sa.groups.map((g) => g.v.map((x) => Array.from(x))));
  assert.throws(() => optB.loadState({ ...saved, groups: saved.groups.slice(1) }), /AdamW: loadState: state has 1 groups/);
  disposeAll(optA, [A.ts]);
  disposeAll(optB, [B]);
});

test('bad arguments raise OpError naming the optimizer and the parameter', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const p = tensor(ctx, [1, 2, 3], [3]);
  p.name = 'frozen';
  assert.throws(() => new AdamW(ctx, [{ params: [p] }], { lr: 1 }), (e: Error) => e instanceof OpError && /AdamW: group 0 param 0 'frozen' \[3\] f32 does not require grad/.test(e.message));
  p.requiresGrad = true;
  assert.throws(() => new AdamW(ctx, [{ params: [p] }, { params: [p] }], { lr: 1 }), /is also passed as group 0 param 0/);
  const alias = p.alias();
  alias.requiresGrad = true;
  assert.throws(() => new AdamW(ctx, [{ params: [p, alias] }], { lr: 1 }), /alias/);
  alias.dispose();
  assert.throws(() => new AdamW(ctx, [{ params: [] }], { lr: 1 }), /no parameters/);
  assert.throws(() => new AdamW(ctx, [{ params: [p] }], { lr: 1, betas: [1, 0.999] }), /betas\[0\]/);
  const opt = new AdamW(ctx, [{ params: [p] }], { lr: 1 });
  p.grad = tensor(ctx, [1, 2], [2]);
  assert.throws(() => opt.step(), /AdamW: group 0 param 0 'frozen' \[3\] f32 has a f32 gradient \[2\]/);
  assert.throws(() => opt.step({ maxGradNorm: -1 }), /maxGradNorm/);
  assert.throws(() => opt.setLr(1, 'nope'), /no parameter group "nope"/);
  opt.zeroGrad();
  opt.dispose();
  assert.throws(() => opt.step(), /after dispose/);
  p.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test.run();
