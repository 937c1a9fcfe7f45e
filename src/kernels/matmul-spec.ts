/**
 * What every matmul variant shares (see ./matmul.ts for the family): the spec and its name, the
 * uniform fields, the binding list, the fused activations and the regblock block sizes. A file of
 * its own so the regblock kernels and the family's dispatcher both build on it without importing
 * each other.
 */
import type { StorageBinding, UniformType } from './kernel.js';
import { GELU_TANH_GRAD, UNARY, UNARY_MATH_WGSL } from './elementwise.js';

const FUSED = ['gelu_tanh', 'gelu_erf', 'quick_gelu', 'relu'] as const;
export const ACTIVATIONS = ['none', ...FUSED] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export type MatmulVariant = 'regblock' | 'tiled' | 'naive';

/** Storage element type of an operand; products accumulate in f32 either way. */
export type OperandElem = 'f32' | 'f16';

/**
 * What to compute: C = op(A) @ op(B) with op(A) [M, K] and op(B) [K, N], over `batch` entries;
 * `aBatched` / `bBatched` say whether an operand advances per entry (false: shared, a weight).
 */
export interface MatmulProblem {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  batch: number;
  aBatched: boolean;
  bBatched: boolean;
}

/**
 * How one product is dispatched. The fields up to `transC` describe the kernel (they alone key
 * its memo: `kernelFields`); `swap`, `splits` and `kChunk` are this problem's choices.
 */
export interface MatmulPlan {
  variant: MatmulVariant;
  /** The kernel's own view: with `swap` these are !transB and !transA of the problem. */
  transA: boolean;
  transB: boolean;
  /**
   * regblock only: vec4 loads and stores, valid when N and K (and M when transA) are multiples
   * of 4 (see vec4Ok). Otherwise every vec4 is assembled from guarded scalar loads.
   */
  vec4: boolean;
  /** regblock only: subgroup size to share A through subgroupBroadcast; 0 = each lane loads A. */
  subgroup: number;
  /** regblock tuning: rows of C per invocation (multiple of 4 and of the subgroup size). */
  rows?: number;
  /** regblock tuning: vec4 column groups of C per invocation. */
  cols?: number;
  /**
   * regblock only: the kernel computes C^T and stores it transposed, with the bias along its
   * rows. The op passes op(B)^T and op(A)^T as A and B, so a narrow N becomes the wide axis
   * the lanes span (N = 8 would leave 3 of 4 lanes idle otherwise).
   */
  transC?: boolean;
  /**
   * Storage element types of the kernel's A and B (absent: f32). f16 operands (frozen weights
   * on adapters with shader-f16) are widened to f32 as they are loaded.
   */
  elemA?: OperandElem;
  elemB?: OperandElem;
  /** The kernel computes C^T = op(B)^T op(A)^T (transC stores it transposed). */
  swap: boolean;
  /** regblock split-K: slices of K (1: no split), each `kChunk` long (a multiple of 4). */
  splits: number;
  kChunk: number;
}

/** The part of a plan that decides the kernel (what a kernel builder reads). */
export type MatmulKernelFields = Omit<MatmulPlan, 'swap' | 'splits' | 'kChunk'>;

/** @deprecated the kernel part of a plan: use MatmulPlan (or MatmulKernelFields). */
export type MatmulSpec = MatmulKernelFields;

/** Regblock knobs a tuning may force (unset ones are picked per problem). */
export type MatmulTuning = Partial<Pick<MatmulPlan, 'rows' | 'cols' | 'swap' | 'splits'>>;

/** The kernel fields of a plan, in a fixed order: the key kernels are memoised by. */
export function kernelFields(p: MatmulKernelFields): MatmulKernelFields {
  const k: MatmulKernelFields = { variant: p.variant, transA: p.transA, transB: p.transB, vec4: p.vec4, subgroup: p.subgroup };
  if (p.rows !== undefined) k.rows = p.rows;
  if (p.cols !== undefined) k.cols = p.cols;
  if (p.transC) k.transC = true;
  if (p.elemA === 'f16') k.elemA = 'f16';
  if (p.elemB === 'f16') k.elemB = 'f16';
  return k;
}

/**
 * How a kernel reads one element (`vec` false) or one vec4 (`vec` true) of an operand stored as
 * `elem`: as it is for f32, widened to f32 for f16.
 */
export function operandLoad(elem: OperandElem | undefined, vec: boolean): (expr: string) => string {
  if (elem !== 'f16') return (e) => e;
  return vec ? (e) => `vec4<f32>(${e})` : (e) => `f32(${e})`;
}

/** The WGSL extensions a kernel with these operand types needs. */
export function operandEnables(k: MatmulKernelFields): string[] {
  return k.elemA === 'f16' || k.elemB === 'f16' ? ['f16'] : [];
}

/** Uniform fields, in order, of every matmul kernel. */
export const MATMUL_FIELDS = [
  ['M', 'u32'], ['N', 'u32'], ['K', 'u32'],
  ['strideA', 'u32'], ['strideB', 'u32'], ['strideC', 'u32'],
  // Index into ACTIVATIONS; bias and pre are 0/1 flags (their bindings get dummies when 0).
  ['act', 'u32'], ['bias', 'u32'], ['pre', 'u32'],
  // regblock split-K: workgroup z = batch * splits + split, each summing kChunk (a multiple of
  // 4) of K into its own [M, N] slab of C; splits = 1 and kChunk = K otherwise.
  ['splits', 'u32'], ['kChunk', 'u32'],
  // Scale of the product (before bias and addend), and a 0/1 flag for the addend D.
  ['alpha', 'f32'], ['addend', 'u32'],
] as const satisfies readonly (readonly [string, UniformType])[];
export type MatmulField = (typeof MATMUL_FIELDS)[number][0];


/**
 * Rows of C per regblock invocation with subgroups: A then costs R / 8 fetches per lane and
 * step, B 4; 24..32 rows measured best on lavapipe (more spill the accumulators further).
 */
export const RB_ROWS = 32;
/**
 * Without subgroups every lane fetches all R vec4s of A, so a squarer block wins:
 * 16 rows x 2 vec4 columns (about 2x the 32 x 1 block there).
 */
export const RB_ROWS_NOSG = 16;
export const RB_COLS_NOSG = 2;
/** Lanes per regblock workgroup when no subgroup is used (a subgroup otherwise). */
export const RB_LANES = 8;

/** Rows and vec4 column groups per regblock invocation (also used by ./matmul-regblock.ts). */
export function regblockShape(spec: MatmulKernelFields): { R: number; CV: number } {
  return {
    R: spec.rows ?? (spec.subgroup > 0 ? RB_ROWS : RB_ROWS_NOSG),
    CV: spec.cols ?? (spec.subgroup > 0 ? 1 : RB_COLS_NOSG),
  };
}
/** Whether the vec4 regblock layout applies to a problem. */
export function vec4Ok(transA: boolean, M: number, N: number, K: number): boolean {
  return N % 4 === 0 && K % 4 === 0 && (!transA || M % 4 === 0);
}

/**
 * `u.pre` in the matmul uniforms: write the pre-activation to P (forward, for backward), or read
 * P as the saved pre-activation of u.act and store (alpha * acc + bias + addend) * act'(P)
 * instead of applying the activation: the gradient product of a layer whose input came out of
 * an activation yields dL/dpre in its own epilogue, with no separate derivative pass.
 */
export const PRE_WRITE = 1;
export const PRE_READ_GRAD = 2;

// The unary ops' own erf_approx / tanh_safe / sigmoid and derivative formulas, so the fused
// forward and backward agree with the elementwise kernels that differentiate the activation.
export const ACT_WGSL = `${UNARY_MATH_WGSL}${GELU_TANH_GRAD}fn activate(x: f32) -> f32 {
  switch u.act {
${FUSED.map((a, i) => `    case ${i + 1}u: { return ${UNARY[a].fwd}; }`).join('\n')}
    default: { return x; }
  }
}
fn activate4(v: vec4<f32>) -> vec4<f32> {
  if (u.act == 0u) { return v; }
  return vec4<f32>(activate(v.x), activate(v.y), activate(v.z), activate(v.w));
}
fn activateGrad(x: f32) -> f32 {
  switch u.act {
${FUSED.map((a, i) => `    case ${i + 1}u: { return ${UNARY[a].bwd.replace(/\bg\b/g, '1.0')}; }`).join('\n')}
    default: { return 1.0; }
  }
}
fn activateGrad4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(activateGrad(v.x), activateGrad(v.y), activateGrad(v.z), activateGrad(v.w));
}
`;

/**
 * The binding list every matmul variant shares (Bias, P and D get dummies when unused). `vec4`
 * binds vectors; A and B are stored as `operands` says (f32 when absent), the rest as f32.
 */
export function matmulBindings(vec4: boolean, operands: { elemA?: OperandElem; elemB?: OperandElem } = {}): StorageBinding[] {
  const ty = (e: OperandElem) => (vec4 ? `vec4<${e}>` : e);
  const f = ty('f32');
  return [['A', 'read', ty(operands.elemA ?? 'f32')], ['B', 'read', ty(operands.elemB ?? 'f32')], ['Bias', 'read', f], ['C', 'rw', f], ['P', 'rw', f], ['D', 'read', f]];
}

export function specName(spec: MatmulKernelFields): string {
  const t = `${spec.transA ? 'T' : 'N'}${spec.transB ? 'T' : 'N'}`;
  const { R, CV } = regblockShape(spec);
  const extra = spec.variant === 'regblock'
    ? `${spec.vec4 ? '.vec4' : '.scalar'}${spec.subgroup ? `.sg${spec.subgroup}` : ''}.${R}x${4 * CV}${spec.transC ? '.transC' : ''}`
    : '';
  const elems = `${spec.elemA === 'f16' ? '.A16' : ''}${spec.elemB === 'f16' ? '.B16' : ''}`;
  return `matmul.${spec.variant}.${t}${extra}${elems}`;
}

