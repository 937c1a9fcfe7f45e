/**
 * LoRA adapters on a CLIP model's encoder linears: y = W x + b + scale * B (A x), with A [r, in]
 * and B [out, r] trainable and the base weights left frozen (ClipModel.load gives frozen weights;
 * nothing here makes them trainable). Every adapter is known by its PEFT module name
 * (`base_model.model.text_model.encoder.layers.{i}.self_attn.q_proj`, ...), so sets save to and
 * load from PEFT's layout (peft.ts) and the optimizer gets one parameter group per layer
 * (NAST scales each text layer's gradients). Browser-safe.
 */
import { mulberry32 } from '../engine/prng.js';
import {
  add, matmul, mulScalar, noGrad, scope, tensor, type Tensor,
} from '../engine/index.js';
import type { ClipModel } from './clip.js';
import type { Linear, LoraBranch } from './layers.js';
import type { EncoderLayer } from './transformer.js';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
export type LoraTower = 'text' | 'vision';
export const LORA_TOWERS: readonly LoraTower[] = ['text', 'vision'];
export const DEFAULT_LORA_TARGETS: readonly LoraTarget[] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];

/** What PEFT puts in front of a module name in its saved state dict (PeftModel.base_model.model). */
export const PEFT_PREFIX = 'base_model.model.';

export class LoraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraError';
  }
}

export interface LoraOptions {
  /** r (default 8). */
  rank?: number;
  /** lora_alpha (default 16); the branch is scaled by alpha / r. */
  alpha?: number;
  /** Which linears of each chosen layer (default q, k, v, out projections). */
  targets?: readonly LoraTarget[];
  /** Which encoders (default ['text']). */
  towers?: readonly LoraTower[];
  /** Layer indices to adapt in every chosen tower (default all). */
  layers?: readonly number[];
  /** Seed of A's initialisation (default 0); see `loraInitA`. */
  seed?: number;
  /** rsLoRA scaling alpha / sqrt(r) instead of alpha / r (PEFT's use_rslora; default false). */
  useRslora?: boolean;
}

/** The settings a set was made with; what adapter_config.json records. */
export interface LoraSpec {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  towers: LoraTower[];
  /** null: every layer. */
  layers: number[] | null;
  useRslora: boolean;
}

/** One adapted linear. `key` is the PEFT key prefix; the weights are `${key}.lora_A.weight` etc. */
export interface LoraModule {
  readonly key: string;
  /** The module name inside CLIPModel, e.g. `text_model.encoder.layers.0.self_attn.q_proj`. */
  readonly module: string;
  readonly tower: LoraTower;
  readonly layer: number;
  readonly target: LoraTarget;
  readonly linear: Linear;
  /** The branch set on `linear.lora` while attached: a [r, in], b [out, r], scale. */
  readonly branch: LoraBranch;
}

/** An optimizer parameter group of one encoder layer's adapters (fits AdamW's ParamGroupSpec). */
export interface LoraParamGroup {
  /** `text.layer{i}` or `vision.layer{i}`. */
  name: string;
  params: Tensor[];
  layer: number;
  tower: LoraTower;
}

/** Initial weights for one module (host float32, row-major): a [r, in], b [out, r]. */
export interface LoraInit {
  a: Float32Array;
  b: Float32Array;
}

const TOWER_PREFIX: Record<LoraTower, string> = { text: 'text_model', vision: 'vision_model' };

/** CLIPModel's name of an encoder linear, e.g. `vision_model.encoder.layers.3.mlp.fc1`. */
export function loraModuleName(tower: LoraTower, layer: number, target: LoraTarget): string {
  const part = target === 'fc1' || target === 'fc2' ? `mlp.${target}` : `self_attn.${target}`;
  return `${TOWER_PREFIX[tower]}.encoder.layers.${layer}.${part}`;
}

const MODULE_RE = /^(text_model|vision_model)\.encoder\.layers\.(\d+)\.(?:self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))$/;

/** The inverse of `loraModuleName`; null for any other name. */
export function parseLoraModuleName(name: string): { tower: LoraTower; layer: number; target: LoraTarget } | null {
  const m = MODULE_RE.exec(name);
  if (!m) return null;
  return {
    tower: m[1] === 'text_model' ? 'text' : 'vision',
    layer: Number(m[2]),
    target: (m[3] ?? m[4]) as LoraTarget,
  };
}

/** alpha / r, or alpha / sqrt(r) with rsLoRA (as PEFT scales). */
export function loraScale(alpha: number, rank: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A's initial values, Kaiming-uniform as PEFT does it (kaiming_uniform_ with a = sqrt(5), i.e.
 * U(-1/sqrt(in), 1/sqrt(in))), drawn row-major from mulberry32 seeded with the 32-bit FNV-1a hash
 * of `${seed}:${module}`. Each module has its own stream, so a module's A depends only on the
 * seed and its name, not on which other modules are adapted.
 */
export function loraInitA(seed: number, module: string, rank: number, inFeatures: number): Float32Array {
  const next = mulberry32(fnv1a(`${seed}:${module}`));
  const bound = 1 / Math.sqrt(inFeatures);
  const a = new Float32Array(rank * inFeatures);
  for (let i = 0; i < a.length; i++) a[i] = (2 * next() - 1) * bound;
  return a;
}

function checkPositive(what: string, v: number, integer: boolean): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new LoraError(`attachLora: ${what} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  }
}

function encoderLayers(model: ClipModel, tower: LoraTower): EncoderLayer[] {
  return tower === 'text' ? model.textLayers : model.visionLayers;
}

function linearOf(layer: EncoderLayer, target: LoraTarget): Linear {
  switch (target) {
    case 'q_proj': return layer.q;
    case 'k_proj': return layer.k;
    case 'v_proj': return layer.v;
    case 'out_proj': return layer.out;
    case 'fc1': return layer.fc1;
    case 'fc2': return layer.fc2;
  }
}

/** The encoder linear a module name refers to, or an error naming what is out of range. */
export function findLoraLinear(model: ClipModel, tower: LoraTower, layer: number, target: LoraTarget): Linear {
  const layers = encoderLayers(model, tower);
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers.length) {
    throw new LoraError(`layer ${layer} does not exist: the ${tower} encoder has ${layers.length} layers (0..${layers.length - 1})`);
  }
  return linearOf(layers[layer], target);
}

/** Normalises and checks options; throws a LoraError naming the bad option. */
export function resolveLoraSpec(model: ClipModel, opts: LoraOptions): LoraSpec {
  const rank = opts.rank ?? 8;
  const alpha = opts.alpha ?? 16;
  checkPositive('rank', rank, true);
  checkPositive('alpha', alpha, false);
  const targets = [...(opts.targets ?? DEFAULT_LORA_TARGETS)];
  const towers = [...(opts.towers ?? ['text'])];
  if (targets.length === 0) throw new LoraError('attachLora: targets is empty');
  if (towers.length === 0) throw new LoraError('attachLora: towers is empty');
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new LoraError(`attachLora: unknown target ${JSON.stringify(t)} (expected some of ${LORA_TARGETS.join(', ')})`);
    }
  }
  for (const t of towers) {
    if (!LORA_TOWERS.includes(t)) throw new LoraError(`attachLora: unknown tower ${JSON.stringify(t)} (expected text or vision)`);
  }
  if (new Set(targets).size !== targets.length) throw new LoraError(`attachLora: targets ${JSON.stringify(targets)} repeat a name`);
  if (new Set(towers).size !== towers.length) throw new LoraError(`attachLora: towers ${JSON.stringify(towers)} repeat a name`);
  let layers: number[] | null = null;
  if (opts.layers) {
    layers = [...new Set(opts.layers)].sort((x, y) => x - y);
    if (layers.length === 0) throw new LoraError('attachLora: layers is empty (omit it for every layer)');
    for (const tower of towers) {
      const n = encoderLayers(model, tower).length;
      for (const l of layers) {
        if (!Number.isInteger(l) || l < 0 || l >= n) {
          throw new LoraError(`attachLora: layers contains ${l}, but the ${tower} encoder has ${n} layers (0..${n - 1})`);
        }
      }
    }
  }
  // Keep PEFT's canonical order so configs and keys come out the same whatever order was given.
  targets.sort((x, y) => LORA_TARGETS.indexOf(x) - LORA_TARGETS.indexOf(y));
  towers.sort((x, y) => LORA_TOWERS.indexOf(x) - LORA_TOWERS.indexOf(y));
  return { rank, alpha, targets, towers, layers, useRslora: opts.useRslora ?? false };
}

/** Every (tower, layer, target) a spec covers, in canonical order. */
export function loraModulesOf(model: ClipModel, spec: LoraSpec): { tower: LoraTower; layer: number; target: LoraTarget }[] {
  const out: { tower: LoraTower; layer: number; target: LoraTarget }[] = [];
  for (const tower of spec.towers) {
    const n = encoderLayers(model, tower).length;
    for (let layer = 0; layer < n; layer++) {
      if (spec.layers && !spec.layers.includes(layer)) continue;
      for (const target of spec.targets) out.push({ tower, layer, target });
    }
  }
  return out;
}

/**
 * The adapters of one model. While attached, each branch sits on its linear (`linear.lora`);
 * detach() takes them off (tensors kept, attach() puts them back), dispose() frees them, merge()
 * folds them into the base weights.
 */
export class LoraSet {
  private readonly byKey: Map<string, LoraModule>;
  private attachedNow = false;
  private disposedNow = false;

  /** Use attachLora or loadLora; this does not attach. */
  constructor(readonly model: ClipModel, readonly spec: LoraSpec, readonly modules: readonly LoraModule[]) {
    this.byKey = new Map(modules.map((m) => [m.key, m]));
  }

  get attached(): boolean {
    return this.attachedNow;
  }

  get disposed(): boolean {
    return this.disposedNow;
  }

  /** PEFT key prefixes of every adapter, in canonical order. */
  keys(): string[] {
    return this.modules.map((m) => m.key);
  }

  /** An adapter by PEFT key prefix (`base_model.model....q_proj`) or CLIPModel module name. */
  get(key: string): LoraModule {
    const m = this.byKey.get(key) ?? this.byKey.get(PEFT_PREFIX + key);
    if (!m) throw new LoraError(`no LoRA adapter ${JSON.stringify(key)} in this set (it has ${this.modules.length}: ${this.modules.slice(0, 3).map((x) => x.key).join(', ')}${this.modules.length > 3 ? ', ...' : ''})`);
    return m;
  }

  /** Every trainable tensor: A then B of each adapter, in canonical order. */
  parameters(): Tensor[] {
    this.checkAlive('parameters');
    return this.modules.flatMap((m) => [m.branch.a, m.branch.b]);
  }

  /** One group per adapted encoder layer (text layers first, ascending), for per-layer gradient scales. */
  paramGroupsByLayer(): LoraParamGroup[] {
    this.checkAlive('paramGroupsByLayer');
    const groups = new Map<string, LoraParamGroup>();
    for (const m of this.modules) {
      const name = `${m.tower}.layer${m.layer}`;
      let g = groups.get(name);
      if (!g) {
        g = { name, params: [], layer: m.layer, tower: m.tower };
        groups.set(name, g);
      }
      g.params.push(m.branch.a, m.branch.b);
    }
    return [...groups.values()];
  }

  /** Puts every branch on its linear. Fails, changing nothing, if another set holds one of them. */
  attach(): this {
    this.checkAlive('attach');
    if (this.attachedNow) return this;
    for (const m of this.modules) {
      if (m.linear.lora && m.linear.lora !== m.branch) {
        throw new LoraError(`${m.module} already has a LoRA branch from another set: detach or dispose that set first`);
      }
    }
    for (const m of this.modules) m.linear.lora = m.branch;
    this.attachedNow = true;
    return this;
  }

  /** Takes every branch off the model; the tensors stay (attach() restores them). */
  detach(): this {
    for (const m of this.modules) if (m.linear.lora === m.branch) m.linear.lora = null;
    this.attachedNow = false;
    return this;
  }

  /** Detaches and frees every A and B (and their gradients). */
  dispose(): void {
    if (this.disposedNow) return;
    this.detach();
    for (const m of this.modules) {
      m.branch.a.dispose();
      m.branch.b.dispose();
    }
    this.disposedNow = true;
  }

  /**
   * W += scale * B A in every adapted linear's base weight (in place, so every handle on the
   * weight sees it), then detaches and frees the adapters: the model computes the same function
   * without the branch (for export). The set is disposed afterwards.
   */
  merge(): void {
    this.checkAlive('merge');
    const ctx = this.model.ctx;
    noGrad(() => {
      for (const m of this.modules) {
        const w = m.linear.weight;
        if (w.dtype !== 'f32') throw new LoraError(`merge: ${m.module}.weight is ${w.dtype}; only f32 base weights can be merged`);
        scope(ctx, () => {
          const delta = mulScalar(matmul(m.branch.b, m.branch.a), m.branch.scale);
          const merged = add(w, delta);
          ctx.copy(merged.range('lora.merge'), w.range('lora.merge'), w.byteSize);
        });
      }
    });
    this.dispose();
  }

  private checkAlive(what: string): void {
    if (this.disposedNow) throw new LoraError(`LoraSet.${what}: the set was disposed (or merged)`);
  }
}

/**
 * Builds a set from host weights for the given modules (shapes checked against the model), and
 * attaches it. `init` returns a module's A and B; the tensors require grad.
 */
export function createLoraSet(
  model: ClipModel,
  spec: LoraSpec,
  modules: readonly { tower: LoraTower; layer: number; target: LoraTarget }[],
  init: (module: string, rank: number, inFeatures: number, outFeatures: number) => LoraInit,
): LoraSet {
  const ctx = model.ctx;
  const scale = loraScale(spec.alpha, spec.rank, spec.useRslora);
  const made: LoraModule[] = [];
  const seen = new Set<string>();
  try {
    for (const { tower, layer, target } of modules) {
      const module = loraModuleName(tower, layer, target);
      if (seen.has(module)) throw new LoraError(`${module} is listed twice`);
      seen.add(module);
      const linear = findLoraLinear(model, tower, layer, target);
      if (linear.lora) throw new LoraError(`${module} already has a LoRA branch: detach or dispose the other set first`);
      const r = spec.rank;
      const { a: ha, b: hb } = init(module, r, linear.inFeatures, linear.outFeatures);
      if (ha.length !== r * linear.inFeatures || hb.length !== linear.outFeatures * r) {
        throw new LoraError(`${module}: initial weights have ${ha.length} and ${hb.length} values, expected ${r}x${linear.inFeatures} and ${linear.outFeatures}x${r}`);
      }
      const key = PEFT_PREFIX + module;
      const a = tensor(ctx, ha, [r, linear.inFeatures]);
      const b = tensor(ctx, hb, [linear.outFeatures, r]);
      a.name = `${key}.lora_A.weight`;
      b.name = `${key}.lora_B.weight`;
      a.requiresGrad = true;
      b.requiresGrad = true;
      made.push({ key, module, tower, layer, target, linear, branch: { a, b, scale } });
    }
  } catch (e) {
    for (const m of made) {
      m.branch.a.dispose();
      m.branch.b.dispose();
    }
    throw e;
  }
  if (made.length === 0) throw new LoraError('no modules to adapt');
  return new LoraSet(model, spec, made).attach();
}

/**
 * Adds fresh LoRA adapters to `model` (A Kaiming-uniform from `seed`, B zeros, so the model's
 * outputs are unchanged until B trains) and returns the attached set.
 */
export function attachLora(model: ClipModel, opts: LoraOptions = {}): LoraSet {
  const spec = resolveLoraSpec(model, opts);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new LoraError(`attachLora: seed must be an integer, got ${JSON.stringify(seed)}`);
  return createLoraSet(model, spec, loraModulesOf(model, spec), (module, r, inF, outF) => ({
    a: loraInitA(seed, module, r, inF),
    b: new Float32Array(outF * r),
  }));
}
