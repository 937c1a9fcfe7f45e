/**
 * Training checkpoints: the PEFT adapter, the optimizer moments (safetensors) and the loop state
 * (JSON, written last so a folder with trainer_state.json is complete).
 *
 * Atomic as a set: each checkpoint is written into its own folder `step-NNNNNNNN-<id>/`, and only
 * when that is complete does the one-line pointer file `current` switch to it (an atomic
 * rename); the previous folder is removed after the switch. A crash at any point leaves
 * `current` naming a complete checkpoint, never a mix of two steps.
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { OptimizerState } from '../engine/index.js';
import type { LoraSet } from '../models/lora.js';
import { saveLora } from '../models/peft-node.js';
import { loadSafetensorsFile, writeSafetensorsFile } from '../models/safetensors-node.js';
import { asFloat32, type TensorToWrite } from '../models/safetensors.js';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { MAX_CONFIG_BYTES, readFailure, readRegularText, readRegularTextSync } from '../io/read-file-node.js';
import { makeFolder } from '../io/fs-errors-node.js';

export interface LoopState {
  step: number;
  epoch: number;
  cursor: number;
  seed: number;
}

const STATE = 'trainer_state.json';
const MOMENTS = 'optimizer.safetensors';
const POINTER = 'current';
const FOLDER_RE = /^step-\d{8,}(?:-[a-z0-9]+)?$/;

/** Stages of a save, for tests that crash a save part-way (`onStage` throwing). */
export type SaveStage = 'extra' | 'adapter' | 'moments' | 'state' | 'pointer';

/**
 * The folder of the checkpoint `current` names under `dir`, or null when there is none. A
 * `dir` holding trainer_state.json itself (the layout before checkpoint folders) is its own.
 */
export function checkpointFolder(dir: string): string | null {
  const ptr = join(dir, POINTER);
  if (existsSync(ptr)) {
    const name = readRegularTextSync(ptr, MAX_CONFIG_BYTES, 'a checkpoint pointer').trim();
    if (!FOLDER_RE.test(name)) throw new Error(`${ptr}: expected a checkpoint folder name like step-00000100, got ${JSON.stringify(name.slice(0, 40))}`);
    const folder = join(dir, name);
    if (!existsSync(join(folder, STATE))) throw new Error(`${ptr} names ${name}, which holds no ${STATE}: the checkpoint is incomplete`);
    return folder;
  }
  return existsSync(join(dir, STATE)) ? dir : null;
}

export interface SaveOptions {
  /** Writes more into the new checkpoint folder first (a full fine-tune's weights). */
  writeExtra?: (folder: string) => Promise<void>;
  /** Called after each stage (tests throw here to crash the save part-way). */
  onStage?: (stage: SaveStage) => void;
}

/**
 * Writes a checkpoint of `loop.step` into a new folder under `dir` and then points `current`
 * at it. `lora` null: `writeExtra` saves the trained weights (a full fine-tune). Returns the folder.
 */
export async function saveCheckpoint(
  top: string, lora: LoraSet | null, opt: OptimizerState, loop: LoopState, baseModel: string,
  hparams: Record<string, string | number | boolean> = {}, opts: SaveOptions = {},
): Promise<string> {
  // A fresh name every save: a second save at the same step (a stop right after --resume) must
  // not clear the folder `current` still names.
  const name = `step-${String(loop.step).padStart(8, '0')}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const dir = join(top, name);
  const stage = opts.onStage ?? (() => {});
  await makeFolder(dir);
  if (opts.writeExtra) await opts.writeExtra(dir);
  stage('extra');
  if (lora) await saveLora(dir, lora, { baseModel });
  stage('adapter');
  const tensors: Record<string, TensorToWrite> = {};
  opt.groups.forEach((g, i) => {
    g.m.forEach((m, k) => { tensors[`g${i}.m${k}`] = { dtype: 'F32', shape: [m.length], data: m }; });
    g.v.forEach((v, k) => { tensors[`g${i}.v${k}`] = { dtype: 'F32', shape: [v.length], data: v }; });
  });
  await writeSafetensorsFile(join(dir, MOMENTS), tensors);
  stage('moments');
  const groups = opt.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale, params: g.m.length }));
  await writeFileAtomic(join(dir, STATE), JSON.stringify({ ...loop, optimizerStep: opt.step, groups, hparams }, null, 1) + '\n');
  stage('state');
  await writeFileAtomic(join(top, POINTER), `${name}\n`);
  stage('pointer');
  // Only now is the previous checkpoint superseded. (Files of the flat layout are left alone:
  // the pointer takes precedence over them.)
  for (const e of await readdir(top)) {
    if (FOLDER_RE.test(e) && e !== name) await rm(join(top, e), { recursive: true, force: true });
  }
  return dir;
}

export function hasCheckpoint(dir: string): boolean {
  return checkpointFolder(dir) !== null;
}

/** Reads the current checkpoint under `dir`; `folder` is where its adapter (or model) lies. */
export async function loadCheckpointState(top: string): Promise<{ loop: LoopState; optimizer: OptimizerState; hparams: Record<string, unknown>; folder: string }> {
  const dir = checkpointFolder(top);
  if (!dir) throw new Error(`${top}: no checkpoint (no ${POINTER} and no ${STATE})`);
  const file = join(dir, STATE);
  let j: {
    step: number; epoch: number; cursor: number; seed: number; optimizerStep: number;
    groups: { name: string; lr: number; weightDecay: number; gradScale: number; params: number }[]; hparams?: Record<string, unknown>;
  };
  try {
    j = JSON.parse(await readRegularText(file, MAX_CONFIG_BYTES, 'a checkpoint state'));
  } catch (e) {
    throw new Error(`${file}: cannot read the checkpoint state (${readFailure(e)})`);
  }
  for (const k of ['step', 'epoch', 'cursor', 'seed', 'optimizerStep'] as const) {
    if (!Number.isInteger(j[k])) throw new Error(`${file}: ${k} must be an integer`);
    if (k !== 'seed' && j[k] < 0) throw new Error(`${file}: ${k} must not be negative, got ${j[k]}`);
  }
  if (!Array.isArray(j.groups)) throw new Error(`${file}: groups must be an array`);
  const moments = await loadSafetensorsFile(join(dir, MOMENTS));
  const get = (key: string) => {
    const t = moments.get(key);
    if (!t) throw new Error(`${join(dir, MOMENTS)}: ${key}: missing`);
    return asFloat32(t, join(dir, MOMENTS));
  };
  const groups = j.groups.map((g, i) => ({
    name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale,
    m: Array.from({ length: g.params }, (_, k) => get(`g${i}.m${k}`)),
    v: Array.from({ length: g.params }, (_, k) => get(`g${i}.v${k}`)),
  }));
  return { loop: { step: j.step, epoch: j.epoch, cursor: j.cursor, seed: j.seed }, optimizer: { step: j.optimizerStep, groups }, hparams: j.hparams ?? {}, folder: dir };
}
