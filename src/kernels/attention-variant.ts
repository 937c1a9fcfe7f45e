/**
 * Which attention kernel runs, and its shape: the implementation (register for CPU adapters,
 * tiled for GPUs), head-dim tier, subgroup sharing and own rows per lane. The code generators
 * (attention-stream.ts) and the kernels (attention.ts) ask these, never the variant's name.
 */
export const ATTN_MAX_HEAD_DIM = 128;
const TIERS = [4, 8, 16, 32];

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);
export const lines = (n: number, f: (i: number) => string) => range(n).map(f).join('\n');

export type AttnImpl = 'register' | 'tiled';

/**
 * What distinguishes an implementation; the code generators below ask these, not the name, so a
 * new AttnImpl does not compile until it states them here.
 */
export interface AttnImplTraits {
  /** Invocations per workgroup (a subgroup's size when one shares the streamed rows). */
  lanes(subgroup: number): number;
  /** The label in kernel names and benchmark notes. */
  label(subgroup: number): string;
  /**
   * Streamed rows go through workgroup-memory tiles (GPUs), and the lane's own rows stay
   * unrolled in registers; otherwise they are streamed from storage, in registers or through
   * subgroup broadcasts (CPU adapters: no barriers, no workgroup memory).
   */
  tiles: boolean;
  /** May share streamed rows through subgroupBroadcast. */
  subgroups: boolean;
}

export const ATTN_IMPLS: { readonly [I in AttnImpl]: AttnImplTraits } = {
  register: {
    lanes: (sg) => (sg > 0 ? sg : 8),
    label: (sg) => (sg > 0 ? `register.sg${sg}` : 'register'),
    tiles: false,
    subgroups: true,
  },
  tiled: {
    lanes: () => 32,
    label: () => 'tiled',
    tiles: true,
    subgroups: false,
  },
};

export interface AttnVariant {
  impl: AttnImpl;
  /** vec4 slots per row (head dim rounded up to a tier). */
  d4: number;
  /** Rows stored as vec4 (head dim a multiple of 4); otherwise scalar loads. */
  vec4: boolean;
  /** register only: subgroup size that shares streamed rows through subgroupBroadcast; 0 = none. */
  subgroup: number;
  /**
   * Own rows per invocation (row sets r0 + set * lanes + lane). Two rows per lane use each
   * broadcast streamed element twice, halving the loads per row, the dominant cost on lavapipe
   * (10-20 % faster at 32x8x77x64); four spill more and are slower again.
   */
  rows: number;
}

/**
 * Streamed rows per step. On lavapipe, 1 (or the fewest that fill a subgroup's loads) is
 * fastest: more rows per step add live registers to an invocation that already spills (D = 64:
 * 2 x 16 vec4 of row state), and compile time grows faster than linearly with the step. The
 * subgroup variant needs BK * d4 to be a multiple of the subgroup size.
 */
export function stepRows(v: AttnVariant): number {
  if (v.subgroup > 0) return Math.max(1, v.subgroup / v.d4);
  return 2;
}

export function attnVariant(impl: AttnImpl, headDim: number, subgroup = 0, rows?: number): AttnVariant {
  const d4 = TIERS.find((t) => t * 4 >= headDim);
  if (d4 === undefined) throw new Error(`attention: head dim ${headDim} above ${ATTN_MAX_HEAD_DIM}`);
  const v = { impl, d4, vec4: headDim % 4 === 0, subgroup: ATTN_IMPLS[impl].subgroups ? subgroup : 0, rows: 1 };
  if (v.subgroup > 0 && (stepRows(v) * d4) % v.subgroup !== 0) v.subgroup = 0;
  v.rows = rows ?? (v.subgroup > 0 ? 2 : 1);
  return v;
}

/** Whether the register variant can share loads through subgroups of this (fixed) size. */
export function attnSubgroupOk(size: number): boolean {
  return size === 4 || size === 8 || size === 16;
}

/** e.g. 'register.sg8', for kernel labels and benchmark notes. */
export function attnVariantName(v: AttnVariant): string {
  return ATTN_IMPLS[v.impl].label(v.subgroup);
}

/** Invocations per workgroup. Small on CPUs: fewer idle rows and a tighter causal range. */
export function lanes(v: AttnVariant): number {
  return ATTN_IMPLS[v.impl].lanes(v.subgroup);
}

/** Own rows per workgroup. */
export function attnRowsPerGroup(v: AttnVariant): number {
  return lanes(v) * v.rows;
}

/** One line per own row set, `f` given the row suffix (`_0`, `_1`, ...). */
export const per = (v: AttnVariant, f: (x: string) => string) => range(v.rows).map((i) => f(`_${i}`)).join('\n');

/**
 * Streamed rows per workgroup-memory tile: two tiles of vec4 rows plus the (lse, D) tile fit
 * in the 16 KiB every adapter offers; a multiple of the step rows.
 */
export function tileRows(v: AttnVariant): number {
  return Math.min(32, Math.floor(448 / v.d4 / 2) * 2);
}
