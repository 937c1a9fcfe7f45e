/**
 * LoRA adapters in Hugging Face PEFT's on-disk layout, as bytes (browser-safe; peft-node.ts does
 * the files):
 *   adapter_model.safetensors  `base_model.model.{module}.lora_A.weight` [r, in] and
 *                              `.lora_B.weight` [out, r], F32 (PEFT also writes, and we read,
 *                              `.lora_A.{adapter}.weight` when the adapter name is kept);
 *   adapter_config.json        LoraConfig's fields, sorted, indent 2, as save_pretrained writes.
 *
 * target_modules is written as PEFT's short-name list (e.g. ["q_proj", "k_proj", "v_proj",
 * "out_proj"]). PEFT matches those names in every tower: on CLIPTextModel that is exactly our
 * text adapters; on a full CLIPModel a text-only adapter also gets zero-B (no-op) vision adapters
 * there. A regex string (PEFT's other form, matched against the whole module name) is read too.
 */
import {
  PEFT_PREFIX, LORA_TARGETS, LORA_TOWERS, createLoraSet, findLoraLinear, loraModuleName, parseLoraModuleName,
  type LoraSet, type LoraSpec, type LoraTarget, type LoraTower,
} from './lora.js';
import { firstNonFinite } from './errors.js';
import type { ClipModel } from './clip.js';
import { isFloatDtype, parseSafetensors, serializeSafetensors, type SafetensorsSource, type TensorToWrite } from './safetensors.js';
import { strToU8, unzipSync, zipSync } from 'fflate';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** A bad adapter file: names the file, the key or field when there is one, and the problem. */
export class AdapterError extends Error {
  constructor(readonly file: string, readonly key: string | undefined, message: string) {
    super(key === undefined ? `${file}: ${message}` : `${file}: ${key}: ${message}`);
    this.name = 'AdapterError';
  }
}

export interface SaveAdapterOptions {
  /** base_model_name_or_path (the model folder or hub id the adapter was trained on). */
  baseModel?: string | null;
}

/** adapter_config.json as PEFT's LoraConfig writes it, for a set. */
export function buildAdapterConfig(set: LoraSet, opts: SaveAdapterOptions = {}): Record<string, unknown> {
  const s = set.spec;
  const config: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModel ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: s.layers ? 'layers' : null,
    layers_to_transform: s.layers ? [...s.layers] : null,
    lora_alpha: s.alpha,
    lora_dropout: 0.0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: s.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...s.targets],
    task_type: null,
    use_dora: false,
    use_rslora: s.useRslora,
  };
  return config;
}

/** JSON text with sorted keys and two-space indent (json.dumps(indent=2, sort_keys=True)). */
export function serializeAdapterConfig(config: Record<string, unknown>): string {
  const sorted = Object.fromEntries(Object.keys(config).sort().map((k) => [k, config[k]]));
  // JSON.stringify prints 0.0 as 0; PEFT's Python prints floats with a point. Keep the float.
  return JSON.stringify(sorted, null, 2).replace(/^(\s*"lora_dropout": )(\d+)(,?)$/m, '$1$2.0$3') + '\n';
}

/** Reads every A and B back from the GPU, by PEFT key. */
export async function adapterTensors(set: LoraSet): Promise<Record<string, TensorToWrite>> {
  const out: Record<string, TensorToWrite> = {};
  for (const m of set.modules) {
    const { a, b } = m.branch;
    out[`${m.key}.lora_A.weight`] = { dtype: 'F32', shape: [...a.shape], data: (await a.toArray()) as Float32Array };
    out[`${m.key}.lora_B.weight`] = { dtype: 'F32', shape: [...b.shape], data: (await b.toArray()) as Float32Array };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** The parts of adapter_config.json that decide what the adapter is. */
export interface AdapterConfig {
  rank: number;
  alpha: number;
  /** Short names (PEFT list form, each matching a module name or its dotted suffix) or one regex. */
  targetModules: string[] | RegExp;
  layers: number[] | null;
  useRslora: boolean;
  baseModel: string | null;
  dropout: number;
}

type Json = Record<string, unknown>;

const isEmpty = (v: unknown) => v === undefined || v === null || (Array.isArray(v) && v.length === 0)
  || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** Validates adapter_config.json; a field we cannot honour is an error naming it. */
export function parseAdapterConfig(json: unknown, file = ADAPTER_CONFIG_NAME): AdapterConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterError(file, undefined, 'is not a JSON object');
  const c = json as Json;
  const fail = (key: string, msg: string) => new AdapterError(file, key, msg);
  if (c.peft_type !== 'LORA') throw fail('peft_type', `is ${JSON.stringify(c.peft_type)}; only "LORA" adapters are supported`);
  const r = c.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw fail('r', `expected a positive integer, got ${JSON.stringify(r)}`);
  const alpha = c.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw fail('lora_alpha', `expected a positive number, got ${JSON.stringify(alpha)}`);
  const tm = c.target_modules;
  let targetModules: string[] | RegExp;
  if (typeof tm === 'string') {
    try {
      // PEFT uses re.fullmatch on the module name.
      targetModules = new RegExp(`^(?:${tm})$`);
    } catch (e) {
      throw fail('target_modules', `regex ${JSON.stringify(tm)} does not compile: ${(e as Error).message}`);
    }
  } else if (Array.isArray(tm) && tm.length > 0 && tm.every((x) => typeof x === 'string' && x.length > 0)) {
    targetModules = tm as string[];
  } else {
    throw fail('target_modules', `expected a non-empty list of module names or a regex string, got ${JSON.stringify(tm)}`);
  }
  const bias = c.bias ?? 'none';
  if (bias !== 'none') throw fail('bias', `is ${JSON.stringify(bias)}; only "none" is supported (no bias weights are trained)`);
  if (c.fan_in_fan_out === true) throw fail('fan_in_fan_out', 'is true (GPT-2 Conv1D layout); CLIP linears are [out, in]');
  if (c.use_dora === true) throw fail('use_dora', 'is true; DoRA adapters are not supported');
  if (!isEmpty(c.modules_to_save)) throw fail('modules_to_save', `is ${JSON.stringify(c.modules_to_save)}; fully trained extra modules are not supported`);
  if (!isEmpty(c.rank_pattern)) throw fail('rank_pattern', 'per-module ranks are not supported');
  if (!isEmpty(c.alpha_pattern)) throw fail('alpha_pattern', 'per-module alphas are not supported');
  // Newer PEFT releases (0.14-0.21) write these; each changes what the adapter computes.
  if (c.lora_bias === true) throw fail('lora_bias', 'is true; LoRA B biases are not supported');
  if (c.use_qalora === true) throw fail('use_qalora', 'is true; QA-LoRA adapters are not supported');
  for (const key of ['exclude_modules', 'target_parameters', 'trainable_token_indices', 'layer_replication']) {
    if (!isEmpty(c[key])) throw fail(key, `is ${JSON.stringify(c[key])}; not supported (only plain LoRA on CLIP's linears)`);
  }
  if (c.use_rslora !== undefined && typeof c.use_rslora !== 'boolean') throw fail('use_rslora', `expected true or false, got ${JSON.stringify(c.use_rslora)}`);
  let layers: number[] | null = null;
  const lt = c.layers_to_transform;
  if (lt !== undefined && lt !== null) {
    const list = typeof lt === 'number' ? [lt] : lt;
    if (!Array.isArray(list) || list.length === 0 || !list.every((x) => Number.isInteger(x) && (x as number) >= 0)) {
      throw fail('layers_to_transform', `expected null, a layer index or a list of them, got ${JSON.stringify(lt)}`);
    }
    layers = [...new Set(list as number[])].sort((x, y) => x - y);
    const lp = c.layers_pattern;
    const patterns = lp === null || lp === undefined ? ['layers'] : typeof lp === 'string' ? [lp] : lp;
    if (!Array.isArray(patterns) || !patterns.includes('layers')) {
      throw fail('layers_pattern', `is ${JSON.stringify(lp)}; CLIP's encoder layers are matched by "layers"`);
    }
  }
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw fail('lora_dropout', `expected a number in [0, 1), got ${JSON.stringify(dropout)}`);
  const base = c.base_model_name_or_path;
  return {
    rank: r,
    alpha,
    targetModules,
    layers,
    useRslora: c.use_rslora === true,
    baseModel: typeof base === 'string' ? base : null,
    dropout,
  };
}

/** Whether PEFT would adapt `module` under this config (ignoring layers_to_transform). */
function targetMatches(cfg: AdapterConfig, module: string): boolean {
  if (cfg.targetModules instanceof RegExp) return cfg.targetModules.test(module);
  return cfg.targetModules.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Every module of the model PEFT would adapt under this config. */
function configModules(model: ClipModel, cfg: AdapterConfig): { tower: LoraTower; layer: number; target: LoraTarget; module: string }[] {
  const out: { tower: LoraTower; layer: number; target: LoraTarget; module: string }[] = [];
  for (const tower of LORA_TOWERS) {
    const n = tower === 'text' ? model.textLayers.length : model.visionLayers.length;
    for (let layer = 0; layer < n; layer++) {
      if (cfg.layers && !cfg.layers.includes(layer)) continue;
      for (const target of LORA_TARGETS) {
        const module = loraModuleName(tower, layer, target);
        if (targetMatches(cfg, module)) out.push({ tower, layer, target, module });
      }
    }
  }
  return out;
}

const KEY_RE = /^base_model\.model\.(.+)\.lora_(A|B)\.(?:([^.]+)\.)?weight$/;

interface FoundModule {
  tower: LoraTower;
  layer: number;
  target: LoraTarget;
  a?: string;
  b?: string;
}

/**
 * Checks an adapter's weights against its config and the model, and attaches it. Errors name
 * the file and key: unexpected keys, layers the model lacks, modules the config does not target,
 * an A without its B, shapes that disagree with the model or with the config's r.
 */
export function attachAdapter(model: ClipModel, cfg: AdapterConfig, weights: SafetensorsSource, configFile = ADAPTER_CONFIG_NAME): LoraSet {
  const file = weights.source;
  const found = new Map<string, FoundModule>();
  let adapterName: string | undefined | null = null;
  for (const key of weights.keys()) {
    const m = KEY_RE.exec(key);
    const parsed = m ? parseLoraModuleName(m[1]) : null;
    if (!m || !parsed) {
      throw new AdapterError(file, key, 'unexpected key: not the lora_A / lora_B weight of a CLIP encoder linear (q_proj, k_proj, v_proj, out_proj, fc1, fc2)');
    }
    // PEFT drops the adapter name "default" on save; other tools keep it. One name per file.
    const name = m[3];
    if (adapterName === null) adapterName = name;
    else if (adapterName !== name) {
      throw new AdapterError(file, key, `mixes adapter names (${JSON.stringify(adapterName ?? '')} and ${JSON.stringify(name ?? '')}); one adapter per file`);
    }
    const layers = parsed.tower === 'text' ? model.textLayers.length : model.visionLayers.length;
    if (parsed.layer >= layers) {
      throw new AdapterError(file, key, `layer ${parsed.layer} does not exist: the model's ${parsed.tower} encoder has ${layers} layers (0..${layers - 1})`);
    }
    if (!targetMatches(cfg, m[1])) {
      throw new AdapterError(file, key, `module ${m[1]} is not among ${configFile}'s target_modules ${cfg.targetModules instanceof RegExp ? cfg.targetModules.source : JSON.stringify(cfg.targetModules)}`);
    }
    if (cfg.layers && !cfg.layers.includes(parsed.layer)) {
      throw new AdapterError(file, key, `layer ${parsed.layer} is not in ${configFile}'s layers_to_transform ${JSON.stringify(cfg.layers)}`);
    }
    const entry = found.get(m[1]) ?? { ...parsed };
    entry[m[2] === 'A' ? 'a' : 'b'] = key;
    found.set(m[1], entry);
  }
  if (found.size === 0) throw new AdapterError(file, undefined, 'holds no LoRA weights');
  const suffix = adapterName ? `.${adapterName}.weight` : '.weight';
  for (const [module, f] of found) {
    if (!f.a) throw new AdapterError(file, `${PEFT_PREFIX}${module}.lora_A${suffix}`, `missing (the file has ${f.b} but not its lora_A)`);
    if (!f.b) throw new AdapterError(file, `${PEFT_PREFIX}${module}.lora_B${suffix}`, `missing (the file has ${f.a} but not its lora_B)`);
  }
  // Every module the config targets in a tower the file adapts must be there; a tower with no
  // keys at all is allowed (PEFT's short names match both towers, adapters usually cover one).
  const towers = new Set([...found.values()].map((f) => f.tower));
  for (const c of configModules(model, cfg)) {
    if (towers.has(c.tower) && !found.has(c.module)) {
      throw new AdapterError(file, `${PEFT_PREFIX}${c.module}.lora_A${suffix}`, `missing: ${configFile} targets ${c.module} but the file has no weights for it`);
    }
  }
  const order = (f: FoundModule) => (LORA_TOWERS.indexOf(f.tower) * 1e6) + f.layer * 100 + LORA_TARGETS.indexOf(f.target);
  const modules = [...found.values()].sort((x, y) => order(x) - order(y));
  const r = cfg.rank;
  for (const f of modules) {
    const module = loraModuleName(f.tower, f.layer, f.target);
    const lin = findLoraLinear(model, f.tower, f.layer, f.target);
    const checks: [string, number[]][] = [[f.a!, [r, lin.inFeatures]], [f.b!, [lin.outFeatures, r]]];
    for (const [key, want] of checks) {
      const info = weights.info(key);
      if (!isFloatDtype(info.dtype)) throw new AdapterError(file, key, `dtype ${info.dtype} is not a float type`);
      const got = info.shape;
      if (got.length !== 2) throw new AdapterError(file, key, `shape [${got.join(', ')}] is not 2-D (expected [${want.join(', ')}] for ${module})`);
      const isA = key === f.a;
      const rankDim = isA ? got[0] : got[1];
      const featDim = isA ? got[1] : got[0];
      if (featDim !== (isA ? want[1] : want[0])) {
        throw new AdapterError(file, key, `shape [${got.join(', ')}] does not fit ${module} (expected [${want.join(', ')}]: the model's layer is ${lin.outFeatures}x${lin.inFeatures})`);
      }
      if (rankDim !== r) {
        throw new AdapterError(file, key, `rank ${rankDim} disagrees with r=${r} in ${configFile} (shape [${got.join(', ')}], expected [${want.join(', ')}])`);
      }
    }
  }
  const spec: LoraSpec = {
    rank: r,
    alpha: cfg.alpha,
    targets: LORA_TARGETS.filter((t) => modules.some((m) => m.target === t)),
    towers: LORA_TOWERS.filter((t) => towers.has(t)),
    layers: cfg.layers,
    useRslora: cfg.useRslora,
  };
  const keyOf = new Map(modules.map((m) => [loraModuleName(m.tower, m.layer, m.target), m]));
  return createLoraSet(model, spec, modules, (module) => {
    const f = keyOf.get(module)!;
    const read = (key: string) => {
      const data = weights.read(key) as Float32Array;
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new AdapterError(file, key, `holds ${data[bad]} at element ${bad}; an adapter must hold finite numbers`);
      return data;
    };
    return { a: read(f.a!), b: read(f.b!) };
  });
}

export interface AdapterFileNames {
  /** Shown in errors (Node passes full paths). */
  config?: string;
  weights?: string;
}

/** Parses adapter_config.json text and adapter_model.safetensors bytes and attaches the adapter. */
export function loadLoraFromBytes(
  model: ClipModel,
  configText: string,
  weights: ArrayBuffer | Uint8Array,
  names: AdapterFileNames = {},
): LoraSet {
  const configFile = names.config ?? ADAPTER_CONFIG_NAME;
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (e) {
    throw new AdapterError(configFile, undefined, `is not valid JSON (${(e as Error).message})`);
  }
  const cfg = parseAdapterConfig(json, configFile);
  const src = parseSafetensors(weights, names.weights ?? ADAPTER_WEIGHTS_NAME);
  return attachAdapter(model, cfg, src, configFile);
}

/** A PEFT adapter's two files as bytes, what saveLora writes to a folder (browser-safe). */
export async function adapterFiles(set: LoraSet, opts: SaveAdapterOptions = {}): Promise<{ config: string; weights: Uint8Array }> {
  if (set.disposed) throw new AdapterError(ADAPTER_WEIGHTS_NAME, undefined, 'cannot save a disposed (or merged) LoRA set');
  const weights = serializeSafetensors(await adapterTensors(set), { format: 'pt' });
  return { config: serializeAdapterConfig(buildAdapterConfig(set, opts)), weights };
}

/** One zip of adapter_config.json and adapter_model.safetensors (stored at the zip's top level). */
export async function adapterZip(set: LoraSet, opts: SaveAdapterOptions = {}): Promise<Uint8Array> {
  const f = await adapterFiles(set, opts);
  // The safetensors bytes are floats: deflating them saves little, so they are stored.
  return zipSync({ [ADAPTER_CONFIG_NAME]: strToU8(f.config), [ADAPTER_WEIGHTS_NAME]: [f.weights, { level: 0 }] });
}

/**
 * An adapter from picked files: a zip holding adapter_config.json and adapter_model.safetensors
 * (at its top level or in one folder), or the two files themselves. Errors name the file.
 */
export function loadLoraFromPicked(model: ClipModel, files: ReadonlyMap<string, Uint8Array>): LoraSet {
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  let entries = new Map(files);
  const zips = [...files.keys()].filter((p) => p.toLowerCase().endsWith('.zip'));
  if (zips.length > 1) throw new AdapterError(zips.join(', '), undefined, 'pick one adapter zip');
  if (zips.length === 1) {
    let inner: Record<string, Uint8Array>;
    try {
      inner = unzipSync(files.get(zips[0])!);
    } catch (e) {
      throw new AdapterError(zips[0], undefined, `is not a readable zip (${(e as Error).message})`);
    }
    entries = new Map(Object.entries(inner).filter(([p]) => !p.endsWith('/')).map(([p, b]) => [`${zips[0]}/${p}`, b]));
  }
  const find = (name: string) => {
    const hits = [...entries.keys()].filter((p) => base(p) === name);
    const where = zips[0] ?? 'the picked files';
    if (hits.length === 0) {
      const bin = [...entries.keys()].find((p) => base(p) === 'adapter_model.bin');
      throw new AdapterError(where, undefined, bin && name === ADAPTER_WEIGHTS_NAME
        ? `has ${bin}, a pickled PyTorch file, which is not read: save the adapter with safe_serialization=True`
        : `has no ${name} (an adapter is ${ADAPTER_CONFIG_NAME} + ${ADAPTER_WEIGHTS_NAME})`);
    }
    if (hits.length > 1) throw new AdapterError(where, undefined, `has ${hits.length} files named ${name}: ${hits.join(', ')}`);
    return hits[0];
  };
  const configPath = find(ADAPTER_CONFIG_NAME);
  const weightsPath = find(ADAPTER_WEIGHTS_NAME);
  return loadLoraFromBytes(model, new TextDecoder().decode(entries.get(configPath)!), entries.get(weightsPath)!, { config: configPath, weights: weightsPath });
}
