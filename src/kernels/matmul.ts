/**
 * Batched matmul C[b] = act(alpha * op(A[b]) @ op(B[b]) + bias + D[b]) with a fused epilogue:
 * a scale alpha, a bias [N], an addend D laid out like C (a residual, or a LoRA branch's
 * up-projection, so neither needs its own add), the activation, and optionally the
 * pre-activation written to a second output for backward.
 *
 * Three variants share one uniform struct and one binding list, so the op dispatches any of
 * them the same way:
 * - `regblock` (CPU adapters): no workgroup memory, no barriers. Each invocation keeps a tall
 *   R-row x vec4 block of C in registers; B is fetched as vec4 along N; within a subgroup one
 *   lane fetches each vec4 of A and `subgroupBroadcast` hands it to the others. lavapipe turns
 *   every per-lane storage load into a scalar loop, so what counts is multiply-adds per fetch.
 *   Options chosen by shape: `transC` stores C^T (the op swaps the operands, so a narrow N
 *   becomes the wide axis the lanes span), `rows` shortens the row block, and split-K (uniforms
 *   `splits`, `kChunk`) sums slices of K into partial slabs that `splitReduceKernel` adds up
 *   with the epilogue.
 * - `tiled` (GPUs): shared-memory tiles with a 4x4 register tile per thread.
 * - `naive`: one output per invocation, kept as a baseline for benchmarks and tests.
 *
 * Layouts: A is [M, K] ([K, M] when transA), B is [K, N] ([N, K] when transB), C is [M, N],
 * all row-major, batches `strideA` / `strideB` / `strideC` elements apart (stride 0 shares an
 * operand across the batch).
 */
import { makeKernel, type Kernel, type StorageBinding, type UniformType, memoKernel } from './kernel.js';
import { UNARY, UNARY_MATH_WGSL } from './elementwise.js';
import { regblockKernel } from './matmul-regblock.js';

const FUSED = ['gelu_tanh', 'gelu_erf', 'quick_gelu', 'relu'] as const;
export const ACTIVATIONS = ['none', ...FUSED] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export type MatmulVariant = 'regblock' | 'tiled' | 'naive';

export interface MatmulSpec {
  variant: MatmulVariant;
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
}

/** Uniform fields, in order, of every matmul kernel. */
export const MATMUL_FIELDS: readonly [string, UniformType][] = [
  ['M', 'u32'], ['N', 'u32'], ['K', 'u32'],
  ['strideA', 'u32'], ['strideB', 'u32'], ['strideC', 'u32'],
  // Index into ACTIVATIONS; bias and pre are 0/1 flags (their bindings get dummies when 0).
  ['act', 'u32'], ['bias', 'u32'], ['pre', 'u32'],
  // regblock split-K: workgroup z = batch * splits + split, each summing kChunk (a multiple of
  // 4) of K into its own [M, N] slab of C; splits = 1 and kChunk = K otherwise.
  ['splits', 'u32'], ['kChunk', 'u32'],
  // Scale of the product (before bias and addend), and a 0/1 flag for the addend D.
  ['alpha', 'f32'], ['addend', 'u32'],
];

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  batch: number;
  /** regblock split-K: slices of K, each a workgroup layer along z (default 1). */
  splits?: number;
}

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
export function regblockShape(spec: MatmulSpec): { R: number; CV: number } {
  return {
    R: spec.rows ?? (spec.subgroup > 0 ? RB_ROWS : RB_ROWS_NOSG),
    CV: spec.cols ?? (spec.subgroup > 0 ? 1 : RB_COLS_NOSG),
  };
}
const TILE = 64;
const TILE_K = 16;
const NAIVE_WG = 16;

/** Whether the vec4 regblock layout applies to a problem. */
export function vec4Ok(transA: boolean, M: number, N: number, K: number): boolean {
  return N % 4 === 0 && K % 4 === 0 && (!transA || M % 4 === 0);
}

// The unary ops' own erf_approx / tanh_safe / sigmoid, so the fused forward agrees with the
// backward kernels that differentiate the activation.
export const ACT_WGSL = `${UNARY_MATH_WGSL}fn activate(x: f32) -> f32 {
  switch u.act {
${FUSED.map((a, i) => `    case ${i + 1}u: { return ${UNARY[a].fwd}; }`).join('\n')}
    default: { return x; }
  }
}
fn activate4(v: vec4<f32>) -> vec4<f32> {
  if (u.act == 0u) { return v; }
  return vec4<f32>(activate(v.x), activate(v.y), activate(v.z), activate(v.w));
}
`;

/** The binding list every matmul variant shares (Bias, P and D get dummies when unused). */
export function matmulBindings(elem: string): StorageBinding[] {
  return [['A', 'read', elem], ['B', 'read', elem], ['Bias', 'read', elem], ['C', 'rw', elem], ['P', 'rw', elem], ['D', 'read', elem]];
}

/** Scalar epilogue: alpha, bias, addend, pre-activation, activation, store of C[idx] for column n. */
export const SCALAR_EPILOGUE = `
fn finish(idx: u32, n: u32, acc: f32) {
  var v = u.alpha * acc;
  if (u.bias != 0u) { v += Bias[n]; }
  if (u.addend != 0u) { v += D[idx]; }
  if (u.pre != 0u) { P[idx] = v; }
  C[idx] = activate(v);
}
`;

function matmulKernelBuild(spec: MatmulSpec): Kernel {
  switch (spec.variant) {
    case 'naive': return naiveKernel(spec);
    case 'tiled': return tiledKernel(spec);
    case 'regblock': return regblockKernel(spec);
  }
}

/** Workgroup counts for a problem. */
export function matmulWorkgroups(spec: MatmulSpec, s: MatmulShape): [number, number, number] {
  switch (spec.variant) {
    case 'naive': return [Math.ceil(s.N / NAIVE_WG), Math.ceil(s.M / NAIVE_WG), s.batch];
    case 'tiled': return [Math.ceil(s.N / TILE), Math.ceil(s.M / TILE), s.batch];
    case 'regblock': {
      const lanes = spec.subgroup > 0 ? spec.subgroup : RB_LANES;
      const { R, CV } = regblockShape(spec);
      return [Math.ceil(s.N / (lanes * 4 * CV)), Math.ceil(s.M / R), s.batch * (s.splits ?? 1)];
    }
  }
}

export function specName(spec: MatmulSpec): string {
  const t = `${spec.transA ? 'T' : 'N'}${spec.transB ? 'T' : 'N'}`;
  const { R, CV } = regblockShape(spec);
  const extra = spec.variant === 'regblock'
    ? `${spec.vec4 ? '.vec4' : '.scalar'}${spec.subgroup ? `.sg${spec.subgroup}` : ''}.${R}x${4 * CV}${spec.transC ? '.transC' : ''}`
    : '';
  return `matmul.${spec.variant}.${t}${extra}`;
}

/** Element index expressions of op(A)[m, k] and op(B)[k, n] (batch bases aBase / bBase). */
function aIndex(transA: boolean, m: string, k: string): string {
  return transA ? `aBase + (${k}) * u.M + (${m})` : `aBase + (${m}) * u.K + (${k})`;
}
function bIndex(transB: boolean, k: string, n: string): string {
  return transB ? `bBase + (${n}) * u.K + (${k})` : `bBase + (${k}) * u.N + (${n})`;
}

function naiveKernel(spec: MatmulSpec): Kernel {
  return makeKernel(specName(spec), MATMUL_FIELDS, matmulBindings('f32'), `${ACT_WGSL}${SCALAR_EPILOGUE}
@compute @workgroup_size(${NAIVE_WG}, ${NAIVE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= u.M || n >= u.N) { return; }
  let aBase = gid.z * u.strideA;
  let bBase = gid.z * u.strideB;
  var acc = 0.0;
  for (var k = 0u; k < u.K; k++) {
    acc += A[${aIndex(spec.transA, 'm', 'k')}] * B[${bIndex(spec.transB, 'k', 'n')}];
  }
  finish(gid.z * u.strideC + m * u.N + n, n, acc);
}`);
}

/**
 * Shared-memory tiles of TILE x TILE_K (A) and TILE_K x TILE (B), both stored k-major; each of
 * the 16x16 threads owns a 4x4 block of C strided by 16 so reads of the tiles do not conflict.
 */
function tiledKernel(spec: MatmulSpec): Kernel {
  const acc = (i: number, j: number) => `c${i}${j}`;
  const decl: string[] = [];
  const fma: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      decl.push(`var ${acc(i, j)} = 0.0;`);
      fma.push(`${acc(i, j)} = fma(a${i}, b${j}, ${acc(i, j)});`);
      store.push(`acc[${i * 4 + j}] = ${acc(i, j)};`);
    }
  }
  // Loads walk the contiguous axis of each operand's layout, so neighbouring threads read
  // neighbouring addresses.
  const loadA = spec.transA
    ? `let kk = e / ${TILE}u; let mm = e % ${TILE}u;`
    : `let mm = e / ${TILE_K}u; let kk = e % ${TILE_K}u;`;
  const loadB = spec.transB
    ? `let nn = e / ${TILE_K}u; let kk = e % ${TILE_K}u;`
    : `let kk = e / ${TILE}u; let nn = e % ${TILE}u;`;
  const perThread = (TILE * TILE_K) / 256;
  return makeKernel(specName(spec), MATMUL_FIELDS, matmulBindings('f32'), `${ACT_WGSL}${SCALAR_EPILOGUE}
var<workgroup> As: array<f32, ${TILE * TILE_K}>;
var<workgroup> Bs: array<f32, ${TILE * TILE_K}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * ${TILE}u;
  let col0 = wid.x * ${TILE}u;
  let aBase = wid.z * u.strideA;
  let bBase = wid.z * u.strideB;
  let cBase = wid.z * u.strideC;
  ${decl.join('\n  ')}
  for (var k0 = 0u; k0 < u.K; k0 += ${TILE_K}u) {
    for (var i = 0u; i < ${perThread}u; i++) {
      let e = li + i * 256u;
      {
        ${loadA}
        let m = row0 + mm;
        let k = k0 + kk;
        var v = 0.0;
        if (m < u.M && k < u.K) { v = A[${aIndex(spec.transA, 'm', 'k')}]; }
        As[kk * ${TILE}u + mm] = v;
      }
      {
        ${loadB}
        let n = col0 + nn;
        let k = k0 + kk;
        var v = 0.0;
        if (n < u.N && k < u.K) { v = B[${bIndex(spec.transB, 'k', 'n')}]; }
        Bs[kk * ${TILE}u + nn] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      ${[0, 1, 2, 3].map((i) => `let a${i} = As[kk * ${TILE}u + lid.y + ${16 * i}u];`).join('\n      ')}
      ${[0, 1, 2, 3].map((j) => `let b${j} = Bs[kk * ${TILE}u + lid.x + ${16 * j}u];`).join('\n      ')}
      ${fma.join('\n      ')}
    }
    workgroupBarrier();
  }
  // One copy of the epilogue in a loop: unrolled, the activation code would be inlined 16
  // times, and lavapipe's JIT time grows with it.
  var acc: array<f32, 16>;
  ${store.join('\n  ')}
  // Bounds known only at run time keep LLVM from unrolling the loops back out.
  for (var i = 0u; i < 4u && row0 + lid.y + 16u * i < u.M; i++) {
    let m = row0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u && col0 + lid.x + 16u * j < u.N; j++) {
      let n = col0 + lid.x + 16u * j;
      finish(cBase + m * u.N + n, n, acc[i * 4u + j]);
    }
  }
}`);
}

export { splitReduceKernel, SPLIT_REDUCE_FIELDS } from './matmul-regblock.js';

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const matmulKernel = memoKernel(matmulKernelBuild);
