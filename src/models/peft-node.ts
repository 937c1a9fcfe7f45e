/**
 * PEFT adapter folders on disk: save (each file written atomically) and load (validated against
 * the model, then attached).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { MAX_BINARY_BYTES, MAX_CONFIG_BYTES, readFailure, readRegularFile, readRegularText } from '../io/read-file-node.js';
import { makeFolder } from '../io/fs-errors-node.js';
import type { ClipModel } from './clip.js';
import type { LoraSet } from './lora.js';
import {
  ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, AdapterError, adapterTensors, buildAdapterConfig, loadLoraFromBytes,
  serializeAdapterConfig, type SaveAdapterOptions,
} from './peft.js';
import { writeSafetensorsFile } from './safetensors-node.js';

/**
 * Writes `dir/adapter_model.safetensors` and `dir/adapter_config.json` (creating `dir`). The
 * weights go first, so a config on disk never describes weights that were not written.
 */
export async function saveLora(dir: string, set: LoraSet, opts: SaveAdapterOptions = {}): Promise<void> {
  if (set.disposed) throw new AdapterError(join(dir, ADAPTER_WEIGHTS_NAME), undefined, 'cannot save a disposed (or merged) LoRA set');
  await makeFolder(dir);
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME), await adapterTensors(set), { format: 'pt' });
  await writeFileAtomic(join(dir, ADAPTER_CONFIG_NAME), serializeAdapterConfig(buildAdapterConfig(set, opts)));
}

/** Reads a PEFT LoRA adapter folder, checks it against `model`, and attaches it. */
export async function loadLora(model: ClipModel, dir: string): Promise<LoraSet> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new AdapterError(dir, undefined, 'no such adapter folder');
  const configPath = join(dir, ADAPTER_CONFIG_NAME);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(configPath)) throw new AdapterError(configPath, undefined, 'missing: an adapter folder needs adapter_config.json');
  if (!existsSync(weightsPath)) {
    const bin = join(dir, 'adapter_model.bin');
    throw new AdapterError(weightsPath, undefined, existsSync(bin)
      ? `missing; found ${bin}, a pickled PyTorch file, which is not read: save the adapter with safe_serialization=True`
      : 'missing: an adapter folder needs adapter_model.safetensors');
  }
  const read = <T>(path: string, p: Promise<T>) => p.catch((e: unknown) => { throw new AdapterError(path, undefined, readFailure(e)); });
  const [configText, weights] = await Promise.all([
    read(configPath, readRegularText(configPath, MAX_CONFIG_BYTES, 'adapter_config.json')),
    read(weightsPath, readRegularFile(weightsPath, MAX_BINARY_BYTES, 'adapter weights read whole')),
  ]);
  return loadLoraFromBytes(model, configText, weights, { config: configPath, weights: weightsPath });
}
