import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { GpuContext } from '../src/engine/context.js';
import { requestGpuDevice, NO_ADAPTER_HELP } from '../src/engine/adapter.js';
import { nodeGpu } from '../src/engine/node-gpu.js';
import { empty, scope, tensor } from '../src/engine/tensor.js';
import { makeKernel } from '../src/kernels/kernel.js';
import * as ops from '../src/engine/ops/index.js';
import { GpuError } from '../src/engine/errors.js';

test('adapter summary reports features and limits', async () => {
  const ctx = await gpu();
  const line = ctx.adapterInfo();
  assert.ok(line.length > 0);
  assert.ok(ctx.info.limits.maxStorageBufferBindingSize > 0);
  for (const f of ctx.info.features) assert.ok(ctx.hasFeature(f), `feature ${f} requested`);
});

test('no adapter gives one error naming the fix', async () => {
  const fake = { requestAdapter: async () => null } as unknown as GPU;
  try {
    await requestGpuDevice(fake);
    assert.unreachable('expected an error');
  } catch (e) {
    assert.is((e as Error).message, NO_ADAPTER_HELP);
    assert.match(NO_ADAPTER_HELP, /setup-lavapipe\.sh/);
  }
});

test('every dtype round-trips through the GPU', async () => {
  const ctx = await gpu();
  const f = tensor(ctx, [1.5, -2, 3.25], [3]);
  assert.equal(Array.from(await f.toArray()), [1.5, -2, 3.25]);
  const i = tensor(ctx, [-7, 0, 2147483647], [3], 'i32');
  assert.equal(Array.from(await i.toArray()), [-7, 0, 2147483647]);
  const u = tensor(ctx, [0, 4294967295, 5], [3], 'u32');
  assert.equal(Array.from(await u.toArray()), [0, 4294967295, 5]);
  const h = tensor(ctx, [0.5, -1024, 3], [3], 'f16');
  assert.equal(Array.from(await h.toArray()), [0.5, -1024, 3]);
  if (ctx.hasFeature('shader-f16')) {
    const c = ops.cast(f, 'f16');
    assert.equal(Array.from(await c.toArray()), [1.5, -2, 3.25]);
    c.dispose();
  }
  for (const t of [f, i, u, h]) t.dispose();
});

test('scope frees intermediates and keeps what it returns', async () => {
  const ctx = await gpu();
  const start = ctx.pool.liveBytes;
  const x = tensor(ctx, [1, 2, 3, 4], [2, 2]);
  const y = scope(ctx, () => {
    const a = ops.exp(x);
    const b = ops.mul(a, x);
    return { out: ops.sum(b) };
  }).out;
  assert.ok(Math.abs((await y.item()) - (Math.E * 1 + Math.E ** 2 * 2 + Math.E ** 3 * 3 + Math.E ** 4 * 4)) < 1e-3);
  x.dispose();
  y.dispose();
  assert.is(ctx.pool.liveBytes, start);
});

test('a reshape shares storage: memory returns only when both handles are gone', async () => {
  const ctx = await gpu();
  const start = ctx.pool.liveBytes;
  const x = tensor(ctx, [1, 2, 3, 4, 5, 6], [2, 3]);
  const r = ops.reshape(x, [3, -1]);
  assert.equal([...r.shape], [3, 2]);
  x.dispose();
  assert.ok(ctx.pool.liveBytes > start);
  assert.equal(Array.from(await r.toArray()), [1, 2, 3, 4, 5, 6]);
  r.dispose();
  assert.is(ctx.pool.liveBytes, start);
  assert.throws(() => ops.reshape(tensor(ctx, [1, 2, 3], [3]), [2, 2]), /reshape: cannot reshape \[3\]/);
});

test('a repeated step reuses its buffers and bind groups, and cached groups see new data and new uniforms', async () => {
  const ctx = await gpu();
  const a = tensor(ctx, [1, 2, 3, 4, 5], [5]);
  const b = tensor(ctx, [10, 20, 30, 40, 50], [5]);
  // One "step": temporaries of two sizes, freed at the end in an order that differs from the
  // order they were made in (as a scope's end frees them).
  const step = (k: number) => scope(ctx, () => {
    const t1 = ops.mulScalar(ops.add(a, b), k);
    const wide = ops.concat([t1, t1, t1], 0);
    return ops.sum(ops.add(ops.mul(t1, a), ops.sum(wide)));
  });
  const first = step(1);
  const r1 = await first.item();
  first.dispose();
  const made = ctx.bindGroupsCreated;
  const liveBuffers = ctx.pool.liveBuffers;
  for (let k = 2; k <= 4; k++) {
    const s = step(k);
    const want = [1, 2, 3, 4, 5].reduce((acc, x, i) => acc + (x + 10 * (i + 1)) * k * x, 0) + 5 * 3 * k * 165;
    assert.is(await s.item(), want, `step ${k}: a cached bind group with new uniforms (k) computes the new value`);
    s.dispose();
  }
  assert.is(r1, [1, 2, 3, 4, 5].reduce((acc, x, i) => acc + (x + 10 * (i + 1)) * x, 0) + 5 * 3 * 165);
  assert.is(ctx.bindGroupsCreated, made, 'steps after the first made no bind group: same buffers, same groups');
  assert.is(ctx.pool.liveBuffers, liveBuffers);
  // New contents of a bound buffer are read through the cached group.
  ctx.upload(a.range('tensor'), new Uint8Array(new Float32Array([0, 0, 0, 0, 1]).buffer));
  const s = step(1);
  assert.is(await s.item(), 1 * 51 + 5 * 3 * (10 + 20 + 30 + 40 + 51));
  s.dispose();
  a.dispose();
  b.dispose();
});

test('ops encode lazily: one submission for a chain of ops', async () => {
  const ctx = await gpu();
  await ctx.sync();
  const before = ctx.submissions;
  const x = tensor(ctx, new Float32Array(1000).fill(0.5), [1000]);
  await ctx.sync();
  const mid = ctx.submissions;
  const y = scope(ctx, () => {
    let t = ops.exp(x);
    for (let i = 0; i < 20; i++) t = ops.addScalar(t, 1);
    return t;
  });
  await ctx.sync();
  assert.is(ctx.submissions - mid, 1, 'twenty-one ops, one submission');
  assert.ok(mid - before <= 1);
  assert.ok(Math.abs((await y.toArray())[0] - (Math.exp(0.5) + 20)) < 1e-4);
  x.dispose();
  y.dispose();
});

test('a GPU validation error surfaces as a thrown error naming the op', async () => {
  const ctx = await gpu();
  const broken = makeKernel('broken-kernel', [['n', 'u32']], [['Y', 'rw', 'f32']], '@compute @workgroup_size(64) fn main() { Y[0] = undefined_symbol; }');
  const y = empty(ctx, [4]);
  ctx.withOp('my-broken-op', () => ctx.dispatch(broken, { n: 4 }, [y.range('t')], [1]));
  try {
    await ctx.sync();
    assert.unreachable('expected a GpuError');
  } catch (e) {
    assert.instance(e, GpuError);
    assert.match((e as Error).message, /my-broken-op/);
  }
  // The context keeps working after a reported error.
  const z = ops.addScalar(tensor(ctx, [1], [1]), 1);
  assert.equal(Array.from(await z.toArray()), [2]);
  y.dispose();
  z.dispose();
});

test('a lost device makes every later op throw instead of returning zeros', async () => {
  const other = await GpuContext.create(nodeGpu());
  const x = tensor(other, [1, 2], [2]);
  other.device.destroy();
  await other.device.lost;
  assert.throws(() => ops.exp(x), /GPU device lost/);
});

test('uniforms are passed by name and packed in struct order; a missing or unknown field is named', async () => {
  const ctx = await gpu();
  const k = makeKernel('uniform-order', [['n', 'u32'], ['scale', 'f32'], ['shift', 'i32']], [['Y', 'rw', 'f32']],
    { linear: 64, body: '  Y[i] = f32(i) * u.scale + f32(u.shift);' });
  const y = empty(ctx, [5]);
  // Keys in another order than the struct's: packing follows the kernel's field list.
  ctx.dispatch(k, { shift: -3, scale: 2, n: 5 }, [y.range('t')], [1]);
  assert.equal([...await y.toArray()], [-3, -1, 1, 3, 5]);
  const loose = k as unknown as Parameters<typeof ctx.dispatch>[0];
  assert.throws(() => ctx.dispatch(loose, { n: 5, scale: 2 }, [y.range('t')], [1]), /uniform-order: uniforms missing shift \(fields: n, scale, shift\)/);
  assert.throws(() => ctx.dispatch(loose, { n: 5, scale: 2, shift: 1, bogus: 1 }, [y.range('t')], [1]), /unknown bogus/);
  y.dispose();
});

test.run();
