/**
 * Every kernel-selection decision of the engine, made once per context from the adapter at
 * start-up, each with the measurement behind it. Ops read `ctx.tuning`; nothing else branches on
 * the adapter class. The one way to change a choice is a TuningOverride: given when the context
 * is created (`GpuContext.create(gpu, { tuning })`), set later with `ctx.setTuning()` (tests run
 * every variant on one adapter), or, in Node, from the NEGCLIP_TUNING environment variable (JSON,
 * for benchmarks: `NEGCLIP_TUNING='{"matmul":"tiled"}' npm run bench`).
 *
 * Measurements: `npm run bench` with NEGCLIP_TUNING forcing each alternative, lavapipe (Mesa 25,
 * LLVM 15, 2 vCPUs of an AMD EPYC, subgroup size 8), 2026-12-02; the two sizing knobs at the end
 * were chosen by earlier sessions and not re-measured. GPU choices follow the usual rules for
 * discrete GPUs and were not measured here (no GPU was lent).
 */
import type { AdapterSummary } from './adapter.js';
import type { MatmulTuning, MatmulVariant } from '../kernels/matmul.js';
import { RB_COLS_NOSG, RB_LANES, RB_ROWS, RB_ROWS_NOSG } from '../kernels/matmul.js';
import type { RowVariant } from '../kernels/reduce.js';
import { attnSubgroupOk, type AttnImpl } from '../kernels/attention.js';

/** Regblock shape knobs (a view of MatmulPlan): forced here, or picked per problem by `regblockKnobs`. */
export type { MatmulTuning } from '../kernels/matmul.js';

export interface Tuning {
  /**
   * 'cpu' for software adapters (lavapipe, SwiftShader, WARP): a workgroup runs on one thread,
   * a barrier is a coroutine switch per invocation, every per-lane storage access is a scalar
   * loop. 'gpu' otherwise.
   */
  readonly adapterClass: 'cpu' | 'gpu';
  /** The adapter's subgroup size when it is fixed (min == max) and the feature is on, else 0. */
  readonly subgroupSize: number;
  readonly matmul: {
    /**
     * cpu: 'regblock' (register blocking, no barriers; lavapipe turns every per-lane load into
     * a scalar loop, so multiply-adds per fetch decide): 1024^3 at 25.4 GFLOP/s against 3.7
     * for 'tiled' (barriers) and 1.4 for 'naive'; [2464, 2048, 512] 28.2 against 3.8. gpu:
     * 'tiled' (shared-memory tiles).
     */
    readonly variant: MatmulVariant;
    /** regblock shares A through subgroupBroadcast when the size is usable (1024^3: 25.4 GFLOP/s, 9.0 without). */
    readonly subgroups: boolean;
    /** Forced regblock knobs; unset ones come from `regblockKnobs`. */
    readonly regblock: MatmulTuning;
  };
  /**
   * Row kernels (softmax, layer norm, cross-entropy, L2 norm). cpu: 'lane', one invocation per
   * row, no barriers (softmax [19712, 77]: 5.1 ms forward, 6.8 backward, against 73.8 and 99.7
   * for 'workgroup'; [256, 49408] 19.5 against 20.6). gpu: 'workgroup', one workgroup per row
   * (256 rows of 49408 would otherwise run on 256 threads).
   */
  readonly rows: RowVariant;
  readonly attention: {
    /**
     * cpu: 'register' (streamed rows in registers, no workgroup memory or barriers): forward
     * 32x8x77x64 causal in 11.6 ms against 95.4 for 'tiled', backward 34.8 against 204.5.
     * gpu: 'tiled' (a tile of streamed rows in workgroup memory).
     */
    readonly impl: AttnImpl;
    /** The register variant shares streamed rows through subgroups when the size is 4, 8 or 16 (without: forward 54.1 ms, backward 265.9). */
    readonly subgroups: boolean;
  };
  /**
   * Words each invocation of a copy (permute, slice, concat, pad, gather) moves. cpu: 64, since
   * per-invocation set-up (index decomposition: integer divisions lavapipe runs as scalar code
   * per lane) costs as much as the copy: transpose [256, 77, 64] 1.3 ms against 2.4-2.8 with 4,
   * permute [32, 77, 8, 64] 1.1-1.2 against 1.4-1.6, embedding lookup 32x77 of 49408x512
   * 0.9-1.0 against 1.3-1.4 (two runs each). gpu: 4, many thin invocations.
   */
  readonly copyChunk: number;
  /**
   * Invocations the layer-norm parameter gradient aims for (rows are chunked to reach it): a
   * few hundred keep both CPU threads busy without a long second pass; GPUs want thousands.
   */
  readonly paramGradInvocations: number;
  /** Most partials of a full-tensor sum's first stage: 1024 on a CPU, 65536 on a GPU. */
  readonly sumParts: number;
  /**
   * Storage of frozen base weights where their loader allows it (ClipModel.load with weights
   * 'auto': the CLIs' frozen models). gpu with shader-f16: 'f16', half the memory and bandwidth,
   * widened to f32 in the matmul loads (f32 accumulation). cpu: 'f32': lavapipe runs f16 at
   * 0.36x of f32.
   */
  readonly weights: 'f32' | 'f16';
  /**
   * LoRA on a Linear: 'auto' folds the branch into the weight (W + scale B A, then one product)
   * where out * in < 6 r (in + out): the folded weight's gradient is one [out, in] product over
   * the rows, the branch three thin ones of r (in + out) that run at about half the rate; it keeps
   * the branch otherwise (ViT-B's 512-wide projections at r 16) or when the weight is stored f16.
   * Tiny-world NAST step on lavapipe (width 64, r 8): 235 -> 206 dispatches (12 blocks: 619 ->
   * 526); step time, median of 15 steps, interleaved runs: 147-154 ms kept, 135-146 folded (two
   * folded rounds 165 and 201 in a slow spell); in
   * bench:compare's 8-step rows the difference stayed inside the machine's drift (207 / 157 ms
   * kept, 212 / 156 folded). 'always' / 'never' force it (tests run both).
   */
  readonly loraMerge: LoraMerge;
}

export type LoraMerge = 'auto' | 'always' | 'never';

/** What a user, a test or a benchmark may force; unset fields keep the adapter's choice. */
export interface TuningOverride {
  adapterClass?: 'cpu' | 'gpu';
  matmul?: MatmulVariant;
  matmulSubgroups?: boolean;
  regblock?: MatmulTuning;
  weights?: 'f32' | 'f16';
  rows?: RowVariant;
  attention?: AttnImpl;
  attentionSubgroups?: boolean;
  copyChunk?: number;
  loraMerge?: LoraMerge;
}

const MATMUL_VARIANTS: readonly MatmulVariant[] = ['naive', 'tiled', 'regblock'];
const ROW_VARIANTS: readonly RowVariant[] = ['lane', 'workgroup'];
const ATTN_IMPLS: readonly AttnImpl[] = ['register', 'tiled'];

function fixedSubgroup(info: AdapterSummary): number {
  const { subgroupMinSize: lo, subgroupMaxSize: hi } = info;
  if (!info.features.includes('subgroups') || !lo || lo !== hi) return 0;
  return lo;
}

/** The adapter's defaults with `override` applied. Throws on an override that names no choice. */
export function decideTuning(info: AdapterSummary, override: TuningOverride = {}, source = 'tuning'): Tuning {
  checkOverride(override, source);
  const cls = override.adapterClass ?? (info.cpuBacked ? 'cpu' : 'gpu');
  const cpu = cls === 'cpu';
  const f16 = info.features.includes('shader-f16');
  if (override.weights === 'f16' && !f16) throw new Error(`${source}: weights "f16" needs the 'shader-f16' feature, which this adapter lacks`);
  return {
    adapterClass: cls,
    subgroupSize: fixedSubgroup(info),
    matmul: {
      variant: override.matmul ?? (cpu ? 'regblock' : 'tiled'),
      subgroups: override.matmulSubgroups ?? true,
      regblock: { ...(override.regblock ?? {}) },
    },
    rows: override.rows ?? (cpu ? 'lane' : 'workgroup'),
    attention: { impl: override.attention ?? (cpu ? 'register' : 'tiled'), subgroups: override.attentionSubgroups ?? true },
    copyChunk: override.copyChunk ?? (cpu ? 64 : 4),
    paramGradInvocations: cpu ? 256 : 16384,
    sumParts: cpu ? 1024 : 65536,
    weights: override.weights ?? (!cpu && f16 ? 'f16' : 'f32'),
    loraMerge: override.loraMerge ?? 'auto',
  };
}

function checkOverride(o: TuningOverride, source: string): void {
  const known = ['adapterClass', 'matmul', 'matmulSubgroups', 'regblock', 'rows', 'attention', 'attentionSubgroups', 'copyChunk', 'weights', 'loraMerge'];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new Error(`${source}: unknown field "${k}" (known: ${known.join(', ')})`);
  }
  const oneOf = <T>(k: string, v: T | undefined, allowed: readonly T[]) => {
    if (v !== undefined && !allowed.includes(v)) throw new Error(`${source}: ${k} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  };
  oneOf('adapterClass', o.adapterClass, ['cpu', 'gpu']);
  oneOf('matmul', o.matmul, MATMUL_VARIANTS);
  oneOf('rows', o.rows, ROW_VARIANTS);
  oneOf('attention', o.attention, ATTN_IMPLS);
  oneOf('weights', o.weights, ['f32', 'f16']);
  oneOf('loraMerge', o.loraMerge, ['auto', 'always', 'never']);
  for (const k of ['matmulSubgroups', 'attentionSubgroups'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new Error(`${source}: ${k} must be true or false, got ${JSON.stringify(o[k])}`);
  }
  if (o.copyChunk !== undefined && !(Number.isInteger(o.copyChunk) && o.copyChunk >= 1 && o.copyChunk <= 256)) {
    throw new Error(`${source}: copyChunk must be an integer in [1, 256], got ${JSON.stringify(o.copyChunk)}`);
  }
  const rb = o.regblock;
  if (rb === undefined) return;
  if (typeof rb !== 'object' || rb === null) throw new Error(`${source}: regblock must be an object of rows, cols, swap, splits`);
  if ((o.matmul ?? 'regblock') !== 'regblock') throw new Error(`${source}: regblock tunes the regblock variant only, not '${o.matmul}'`);
  for (const k of Object.keys(rb)) {
    if (!['rows', 'cols', 'swap', 'splits'].includes(k)) throw new Error(`${source}: regblock.${k} is not a regblock knob (rows, cols, swap, splits)`);
  }
  if (rb.rows !== undefined && (!Number.isInteger(rb.rows) || rb.rows <= 0 || rb.rows % 4 !== 0)) {
    throw new Error(`${source}: regblock.rows must be a positive multiple of 4, got ${rb.rows}`);
  }
  for (const k of ['cols', 'splits'] as const) {
    if (rb[k] !== undefined && (!Number.isInteger(rb[k]) || rb[k]! <= 0)) throw new Error(`${source}: regblock.${k} must be a positive integer, got ${rb[k]}`);
  }
  if (rb.swap !== undefined && typeof rb.swap !== 'boolean') throw new Error(`${source}: regblock.swap must be true or false`);
}

/** A TuningOverride from JSON text (the NEGCLIP_TUNING variable), with errors naming `source`. */
export function parseTuningOverride(text: string, source: string): TuningOverride {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON (${(e as Error).message}); e.g. {"matmul":"tiled","rows":"workgroup"}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${source}: expected a JSON object, e.g. {"matmul":"tiled"}`);
  checkOverride(v as TuningOverride, source);
  return v as TuningOverride;
}

/** The subgroup size regblock can rely on: fixed, and a divisor of its row block; else 0. */
export function matmulSubgroup(t: Tuning): number {
  const s = t.matmul.subgroups ? t.subgroupSize : 0;
  return s > 0 && RB_ROWS % s === 0 ? s : 0;
}

/** The subgroup size the register attention can rely on (4, 8 or 16), else 0. */
export function attentionSubgroup(t: Tuning, allowed = true): number {
  const s = allowed && t.attention.subgroups ? t.subgroupSize : 0;
  return s > 0 && attnSubgroupOk(s) ? s : 0;
}

/**
 * Regblock knobs for one problem (forced ones in `t.matmul.regblock` win), chosen by shape for
 * CPU adapters, where every per-lane storage access is a scalar loop and a dispatch has a fixed
 * cost of about 0.1-0.3 ms (lavapipe, 2 cores):
 * - N <= 16 with a taller M: a workgroup's lanes span 32 (or 64) columns of C, so most would
 *   idle; swapping makes M the lane axis (LoRA's rank-8 products, about 2x faster).
 * - Few rows (after a swap too): a row block no taller than the problem (8, 16 or 24 rows;
 *   rows past M are computed and dropped), e.g. the LoRA weight gradients [8, K] x [K, 64].
 * - A single workgroup with a long K: split K over 4 workgroups. Only then: with two
 *   workgroups or more the second dispatch costs more than it saves on this adapter.
 * Other shapes, even tall-skinny ones like [6336, 64] x [64, 64], measured best with the
 * default 32 x 4 block.
 */
export function regblockKnobs(t: Tuning, M: number, N: number, K: number, batch: number): MatmulTuning {
  const subgroup = matmulSubgroup(t);
  const auto: MatmulTuning = {};
  if (N <= 16 && M >= 2 * N) auto.swap = true;
  const [m, n] = auto.swap ? [N, M] : [M, N];
  const baseRows = subgroup > 0 ? RB_ROWS : RB_ROWS_NOSG;
  const step = Math.max(8, subgroup);
  const rows = Math.ceil(Math.max(m, 1) / step) * step;
  if (rows < baseRows) auto.rows = rows;
  const lanes = subgroup > 0 ? subgroup : RB_LANES;
  const cols = subgroup > 0 ? 1 : RB_COLS_NOSG;
  const workgroups = Math.ceil(n / (lanes * 4 * cols)) * Math.ceil(m / (auto.rows ?? baseRows)) * batch;
  if (workgroups < 2 && K >= 8192) auto.splits = Math.min(4, Math.floor(K / 2048));
  return { ...auto, ...t.matmul.regblock };
}

/** One line for benchmark output, e.g. "cpu adapter, subgroup 8: matmul regblock.sg8, rows lane, attention register.sg8". */
export function describeTuning(t: Tuning): string {
  const mm = t.matmul.variant === 'regblock' && matmulSubgroup(t) ? `regblock.sg${matmulSubgroup(t)}` : t.matmul.variant;
  const at = t.attention.impl === 'register' && attentionSubgroup(t) ? `register.sg${attentionSubgroup(t)}` : t.attention.impl;
  return `${t.adapterClass} adapter, subgroup ${t.subgroupSize || 'variable'}: matmul ${mm}, rows ${t.rows}, attention ${at}, copy chunk ${t.copyChunk}, frozen weights ${t.weights}`;
}
