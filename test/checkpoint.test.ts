import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OptimizerState } from '../src/engine/index.js';
import { checkpointFolder, loadCheckpointState, saveCheckpoint, type SaveStage } from '../src/nast/checkpoint-node.js';

const state = (step: number): OptimizerState => ({
  step,
  groups: [{ name: 'g', lr: 1e-3, weightDecay: 0.01, gradScale: 1, m: [Float32Array.of(step, 1)], v: [Float32Array.of(step, 2)] }],
});
const loop = (step: number) => ({ step, epoch: 0, cursor: step, seed: 0 });
const STAGES: SaveStage[] = ['extra', 'adapter', 'moments', 'state', 'pointer'];

test('a save that crashes at any stage leaves the previous checkpoint whole and current', async () => {
  for (const crashAt of STAGES) {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    await saveCheckpoint(dir, null, state(5), loop(5), 'base', { lr: 1e-3 });
    let crashed = false;
    try {
      await saveCheckpoint(dir, null, state(6), loop(6), 'base', { lr: 1e-3 }, {
        writeExtra: async (f) => writeFileSync(join(f, 'extra.bin'), 'x'),
        onStage: (s) => { if (s === crashAt) { crashed = true; throw new Error(`crash after ${s}`); } },
      });
    } catch (e) {
      assert.match((e as Error).message, /crash after/);
    }
    assert.ok(crashed, crashAt);
    const got = await loadCheckpointState(dir);
    // Before the pointer switched, step 5 is current; after it, step 6 (complete).
    const want = crashAt === 'pointer' ? 6 : 5;
    assert.is(got.loop.step, want, `crash after ${crashAt}`);
    assert.is(got.optimizer.step, want);
    assert.equal([...got.optimizer.groups[0].m[0]], [want, 1], `moments of step ${want} after a crash after ${crashAt}`);
  }
});

test('a complete save supersedes the previous folder; the old flat layout still loads; a bad pointer is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  await saveCheckpoint(dir, null, state(1), loop(1), 'base');
  await saveCheckpoint(dir, null, state(2), loop(2), 'base');
  const kept = readdirSync(dir).sort();
  assert.is(kept.length, 2);
  assert.is(kept[0], 'current');
  assert.match(kept[1], /^step-00000002-[a-z0-9]+$/);
  // A second save at the same step (stop right after a resume) never clears the current folder.
  await saveCheckpoint(dir, null, state(2), loop(2), 'base', {}, { onStage: (s) => { if (s === 'moments') throw new Error('crash'); } }).catch(() => undefined);
  assert.is((await loadCheckpointState(dir)).loop.step, 2, 'the step-2 checkpoint survives a crashed re-save at step 2');
  assert.is((await loadCheckpointState(dir)).loop.step, 2);
  // Flat layout (before checkpoint folders): trainer_state.json in the folder itself.
  const flat = mkdtempSync(join(tmpdir(), 'ckpt-flat-'));
  const folder = await saveCheckpoint(flat, null, state(3), loop(3), 'base');
  for (const f of readdirSync(folder)) writeFileSync(join(flat, f), readFileSync(join(folder, f)));
  rmSync(folder, { recursive: true });
  rmSync(join(flat, 'current'));
  assert.is(checkpointFolder(flat), flat);
  assert.is((await loadCheckpointState(flat)).loop.step, 3);
  const bad = mkdtempSync(join(tmpdir(), 'ckpt-bad-'));
  writeFileSync(join(bad, 'current'), '../../etc\n');
  assert.throws(() => checkpointFolder(bad), /current: expected a checkpoint folder name like step-00000100/);
  writeFileSync(join(bad, 'current'), 'step-00000009\n');
  mkdirSync(join(bad, 'step-00000009'));
  assert.throws(() => checkpointFolder(bad), /names step-00000009, which holds no trainer_state\.json/);
  assert.is(checkpointFolder(mkdtempSync(join(tmpdir(), 'ckpt-empty-'))), null, 'an empty folder holds no checkpoint');
});

test.run();
