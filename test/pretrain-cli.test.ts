/**
 * pretrain.js writes a model folder only when its run completes: a new folder by default, an
 * existing model replaced only with --overwrite, a killed run never loadable as a model.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers/gpu.js';
import { loadClip } from '../src/models/load-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'pretrain.js');
const TINY_WORLD = join(ROOT, 'models', 'tiny-world');
const TMP = mkdtempSync(join(tmpdir(), 'pretrain-cli-'));
// A model small enough for a CPU adapter: a few seconds a run.
const SMALL = ['--images', '8', '--batch-size', '4', '--eval-images', '0', '--layers', '1', '--vision-layers', '1', '--width', '16', '--heads', '2',
  '--vision-width', '16', '--vision-heads', '2', '--projection', '16', '--log-every', '1'];

const pretrain = (args: string[], cwd = TMP) => spawnSync('node', [CLI, ...SMALL, ...args], { cwd, encoding: 'utf8' });

test('--out defaults to a new folder; an existing model is replaced only with --overwrite, and stays intact without it', () => {
  assert.match(spawnSync('node', [CLI, '--help'], { encoding: 'utf8' }).stdout, /--out DIR .*\(default pretrain-out\)/);
  const first = pretrain(['--steps', '2', '--checkpoint-every', '0']);
  assert.is(first.status, 0, first.stderr);
  const out = join(TMP, 'pretrain-out');
  assert.ok(existsSync(join(out, 'config.json')) && existsSync(join(out, 'pretrain.json')));
  assert.not.ok(existsSync(`${out}.partial`), 'the work folder was renamed into place');
  assert.not.ok(existsSync(join(out, 'pretrain_state.safetensors')));

  // A copy of the shipped model, as `--out models/tiny-world` would find it.
  const shipped = join(TMP, 'tiny-world');
  cpSync(TINY_WORLD, shipped, { recursive: true });
  const weights = readFileSync(join(shipped, 'model.safetensors'));
  const refused = pretrain(['--steps', '2', '--out', shipped]);
  assert.is(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /^pretrain: --out \S+tiny-world: holds a model; pass --overwrite to replace it/);
  assert.is(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.equal(readFileSync(join(shipped, 'model.safetensors')), weights, 'the model is untouched');
  assert.not.ok(existsSync(`${shipped}.partial`));

  const replaced = pretrain(['--steps', '2', '--out', shipped, '--overwrite']);
  assert.is(replaced.status, 0, replaced.stderr);
  assert.is(JSON.parse(readFileSync(join(shipped, 'pretrain.json'), 'utf8')).args.steps, 2);
  assert.is.not(readFileSync(join(shipped, 'model.safetensors')).length, weights.length);
});

test('--image-tower: the image tower comes from another model and stays frozen; only the text side trains', async () => {
  const source = join(TMP, 'tower-source');
  const made = pretrain(['--steps', '2', '--checkpoint-every', '0', '--out', source]);
  assert.is(made.status, 0, made.stderr);
  const out = join(TMP, 'on-tower');
  // A deeper text tower on the source's image tower; the vision flags given here are overridden by the source's.
  const r = pretrain(['--steps', '3', '--checkpoint-every', '0', '--out', out, '--image-tower', source, '--layers', '2', '--vision-width', '32', '--seed', '5']);
  assert.is(r.status, 0, r.stderr);
  const ctx = await gpu();
  const a = await loadClip(ctx, source);
  const b = await loadClip(ctx, out);
  assert.is(b.config.text.layers, 2);
  assert.equal(b.config.vision, a.config.vision);
  let vision = 0;
  for (const [name, t] of a.params) {
    if (!name.startsWith('vision_model.') && name !== 'visual_projection.weight') continue;
    const [x, y] = await Promise.all([t.toArray(), b.param(name).toArray()]);
    assert.equal(Array.from(y), Array.from(x), `${name}: copied, not trained`);
    vision++;
  }
  assert.ok(vision > 4, `${vision} image-tower weights`);
  assert.is.not(await b.param('logit_scale').item(), await a.param('logit_scale').item(), 'the temperature trains');
  const report = JSON.parse(readFileSync(join(out, 'pretrain.json'), 'utf8')) as { args: Record<string, unknown>; imageTower: { from: string; frozen: boolean; pretrain: { args: { steps: number } } } };
  assert.equal([report.args['image-tower'], report.imageTower.from, report.imageTower.frozen, report.imageTower.pretrain.args.steps], [source, source, true, 2]);
  a.dispose();
  b.dispose();
  const bad = pretrain(['--steps', '1', '--out', join(TMP, 'x'), '--image-tower', join(TMP, 'nope')]);
  assert.is(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--image-tower \S+nope: /);
});

test('a killed run leaves no model under --out, and its checkpoint folder does not load as one', async () => {
  const out = join(TMP, 'killed');
  const child = spawn('node', [CLI, ...SMALL, '--steps', '100000', '--checkpoint-every', '1', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((done) => {
    child.stderr.on('data', (d) => {
      err += d;
      if (/checkpoint at step 1 /.test(err)) child.kill('SIGKILL');
    });
    child.on('close', () => done());
  });
  assert.match(err, /checkpoint at step 1 in \S+killed\.partial/);
  assert.not.ok(existsSync(out), 'nothing under --out');
  const work = `${out}.partial`;
  assert.ok(existsSync(join(work, 'model.safetensors')) && existsSync(join(work, 'pretrain_state.safetensors')));
  const ctx = await gpu();
  try {
    await loadClip(ctx, work);
    assert.unreachable('a checkpoint of an unfinished run loaded as a model');
  } catch (e) {
    assert.match((e as Error).message, /killed\.partial: an unfinished pretrain\.js run \(pretrain_state\.safetensors is there\), not a model/);
  }
  // A fresh start does not silently throw the interrupted run away.
  const again = pretrain(['--steps', '2', '--out', out]);
  assert.is(again.status, 2, again.stderr);
  assert.match(again.stderr, /killed\.partial holds an interrupted run; --resume continues it, --overwrite starts afresh/);
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
