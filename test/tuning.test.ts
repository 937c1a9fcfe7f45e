import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdapterSummary } from '../src/engine/adapter.js';
import { attentionSubgroup, decideTuning, describeTuning, matmulSubgroup, parseTuningOverride, regblockKnobs } from '../src/engine/tuning.js';
import * as ops from '../src/engine/ops/index.js';
import { gpu } from './helpers/gpu.js';

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '..');

const adapter = (cpuBacked: boolean, sg?: [number, number]): AdapterSummary => ({
  vendor: '', architecture: '', device: '', description: '', cpuBacked, compatibilityMode: false,
  features: sg ? ['subgroups'] : [], subgroupMinSize: sg?.[0], subgroupMaxSize: sg?.[1], limits: {},
});

test('a CPU adapter gets the barrier-free kernels and fat copies; a GPU the tiled ones', () => {
  const cpu = decideTuning(adapter(true, [8, 8]));
  assert.equal([cpu.adapterClass, cpu.matmul.variant, cpu.rows, cpu.attention.impl, cpu.copyChunk], ['cpu', 'regblock', 'lane', 'register', 64]);
  assert.is(matmulSubgroup(cpu), 8);
  assert.is(attentionSubgroup(cpu), 8);
  const gpuT = decideTuning(adapter(false, [32, 32]));
  assert.equal([gpuT.adapterClass, gpuT.matmul.variant, gpuT.rows, gpuT.attention.impl, gpuT.copyChunk], ['gpu', 'tiled', 'workgroup', 'tiled', 4]);
  // 32 divides regblock's 32-row block but is no size the register attention supports.
  assert.equal([matmulSubgroup(gpuT), attentionSubgroup(gpuT)], [32, 0]);
  // A varying subgroup size (min != max) or none at all is never relied on.
  assert.is(decideTuning(adapter(false, [4, 64])).subgroupSize, 0);
  assert.is(decideTuning(adapter(true)).subgroupSize, 0);
  assert.match(describeTuning(cpu), 'matmul regblock.sg8');
});

test('an override replaces only what it names; regblock knobs win over the shape choice', () => {
  const t = decideTuning(adapter(true, [8, 8]), { matmul: 'regblock', matmulSubgroups: false, rows: 'workgroup' });
  assert.equal([t.matmul.variant, t.rows, t.attention.impl], ['regblock', 'workgroup', 'register']);
  assert.is(matmulSubgroup(t), 0);
  assert.is(regblockKnobs(t, 6336, 8, 64, 1).swap, true, 'N = 8 swaps by shape');
  const forced = decideTuning(adapter(true, [8, 8]), { regblock: { swap: false, splits: 3 } });
  const shape = regblockKnobs(forced, 6336, 8, 64, 1);
  assert.equal([shape.swap, shape.splits], [false, 3]);
  assert.is(decideTuning(adapter(false), { adapterClass: 'cpu' }).matmul.variant, 'regblock');
});

test('a bad override names its source and the field', () => {
  const src = 'NEGCLIP_TUNING';
  assert.throws(() => parseTuningOverride('{matmul: tiled}', src), /NEGCLIP_TUNING: not JSON/);
  assert.throws(() => parseTuningOverride('["tiled"]', src), /NEGCLIP_TUNING: expected a JSON object/);
  assert.throws(() => parseTuningOverride('{"matmull":"tiled"}', src), /NEGCLIP_TUNING: unknown field "matmull"/);
  assert.throws(() => parseTuningOverride('{"matmul":"fast"}', src), /NEGCLIP_TUNING: matmul must be one of naive, tiled, regblock, got "fast"/);
  assert.throws(() => parseTuningOverride('{"rows":"row"}', src), /rows must be one of lane, workgroup/);
  assert.throws(() => parseTuningOverride('{"copyChunk":0}', src), /copyChunk must be an integer in \[1, 256\]/);
  assert.throws(() => parseTuningOverride('{"regblock":{"depth":2}}', src), /regblock\.depth is not a regblock knob/);
  assert.equal(parseTuningOverride('{"matmul":"tiled","attention":"tiled"}', src), { matmul: 'tiled', attention: 'tiled' });
});

test('withTuning forces a choice for its function only, also when it throws', async () => {
  const ctx = await gpu();
  const before = ctx.tuning;
  const name = await ctx.withTuning({ matmul: 'naive' }, async () => ops.matmulVariantName(ctx));
  assert.is(name, 'naive');
  assert.equal(ctx.tuning, before);
  assert.throws(() => ctx.withTuning({ rows: 'workgroup' }, () => {
    throw new Error('inside');
  }), /inside/);
  assert.equal(ctx.tuning, before);
});

test('NEGCLIP_TUNING reaches the Node context, and a bad value stops with its name', () => {
  const script = `import(${JSON.stringify(join(BUILD, 'src/engine/node-gpu.js'))}).then(async (m) => { const c = await m.nodeContext(); console.log(c.tuning.matmul.variant + ' ' + c.tuning.rows); process.exit(0); }).catch((e) => { console.error(e.message); process.exit(3); });`;
  const run = (value: string) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NEGCLIP_TUNING: value } });
  const ok = run('{"matmul":"naive","rows":"workgroup"}');
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, 'naive workgroup');
  const bad = run('{"matmul":"quick"}');
  assert.is(bad.status, 3);
  assert.match(bad.stderr, /NEGCLIP_TUNING: matmul must be one of/);
});

test.run();
