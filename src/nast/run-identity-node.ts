/**
 * What a checkpoint must match to be continued: the base model, the training data and the
 * source of the per-layer scales, each as a short digest of what decides it (file contents and
 * sizes, not paths: a model folder moved elsewhere is still the same model). Node-only.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MAX_CONFIG_BYTES, readRegularFileSync } from '../io/read-file-node.js';

const WEIGHTS = /\.(safetensors|bin|pt|pth)$/;

function digest(parts: readonly (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    h.update('\0');
  }
  return `sha256:${h.digest('hex').slice(0, 16)}`;
}

/**
 * The model's identity: its config (the --config file, or the folder's config.json) and the
 * names and sizes of its weight files. Reading a few gigabytes of weights to hash them would
 * make every --resume slow; a different checkpoint of one architecture differs in its files.
 */
export function modelIdentity(modelPath: string, configPath?: string): string {
  if (!existsSync(modelPath)) throw new Error(`--model ${modelPath}: no such file or folder`);
  const isDir = statSync(modelPath).isDirectory();
  const folder = isDir ? modelPath : dirname(modelPath);
  const config = configPath ?? join(folder, 'config.json');
  const parts: (string | Uint8Array)[] = [existsSync(config) ? readRegularFileSync(config, MAX_CONFIG_BYTES, 'a model config') : ''];
  const files = isDir ? readdirSync(modelPath).filter((f) => WEIGHTS.test(f) || f.endsWith('.index.json')).sort() : [modelPath.slice(folder.length + 1)];
  for (const f of files) parts.push(`${f} ${statSync(join(folder, f)).size}`);
  return digest(parts);
}

/**
 * The data's identity: its split's index.json (shard names, record counts and, for builds since
 * build ids, the build's id: a rebuild is another dataset).
 */
export function dataIdentity(splitFolder: string): string {
  const index = join(splitFolder, 'index.json');
  return digest(existsSync(index) ? [readRegularFileSync(index, MAX_CONFIG_BYTES, 'a data index')] : []);
}

/** Where the per-layer scales come from: 'uniform', or the cte.json's digest and the beta applied. */
export function scalesIdentity(cteBytes: Uint8Array | null, beta: number | null): string {
  return cteBytes === null ? 'uniform' : `cte.json ${digest([cteBytes])}, beta ${beta}`;
}
