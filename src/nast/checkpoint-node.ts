/**
 * Training checkpoints: the PEFT adapter, the optimizer moments (safetensors) and the loop state
 * (JSON, written last so a folder with trainer_state.json is complete).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OptimizerState } from '../engine/index.js';
import type { LoraSet } from '../models/lora.js';
import { saveLora } from '../models/peft-node.js';
import { loadSafetensorsFile, writeSafetensorsFile } from '../models/safetensors-node.js';
import { asFloat32, type TensorToWrite } from '../models/safetensors.js';
import { writeFileAtomic } from '../io/atomic-write-node.js';

export interface LoopState {
  step: number;
  epoch: number;
  cursor: number;
  seed: number;
}

const STATE = 'trainer_state.json';
const MOMENTS = 'optimizer.safetensors';

/** `lora` null: the caller saved the trained weights into the folder itself (a full fine-tune). */
export async function saveCheckpoint(
  dir: string, lora: LoraSet | null, opt: OptimizerState, loop: LoopState, baseModel: string, hparams: Record<string, string | number | boolean> = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (lora) await saveLora(dir, lora, { baseModel });
  const tensors: Record<string, TensorToWrite> = {};
  opt.groups.forEach((g, i) => {
    g.m.forEach((m, k) => { tensors[`g${i}.m${k}`] = { dtype: 'F32', shape: [m.length], data: m }; });
    g.v.forEach((v, k) => { tensors[`g${i}.v${k}`] = { dtype: 'F32', shape: [v.length], data: v }; });
  });
  await writeSafetensorsFile(join(dir, MOMENTS), tensors);
  const groups = opt.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale, params: g.m.length }));
  await writeFileAtomic(join(dir, STATE), JSON.stringify({ ...loop, optimizerStep: opt.step, groups, hparams }, null, 1) + '\n');
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, STATE));
}

export async function loadCheckpointState(dir: string): Promise<{ loop: LoopState; optimizer: OptimizerState; hparams: Record<string, unknown> }> {
  const file = join(dir, STATE);
  let j: {
    step: number; epoch: number; cursor: number; seed: number; optimizerStep: number;
    groups: { name: string; lr: number; weightDecay: number; gradScale: number; params: number }[]; hparams?: Record<string, unknown>;
  };
  try {
    j = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the checkpoint state (${(e as Error).message})`);
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
  return { loop: { step: j.step, epoch: j.epoch, cursor: j.cursor, seed: j.seed }, optimizer: { step: j.optimizerStep, groups }, hparams: j.hparams ?? {} };
}
