/**
 * Batched matmul C[b] = op(A[b]) @ op(B[b]) with a fused epilogue (bias [N], activation, and
 * optionally the pre-activation written to a second output for backward).
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
import { makeKernel, WGSL_LINEAR, type Kernel, type UniformType } from './kernel.js';
import { UNARY, UNARY_MATH_WGSL } from './elementwise.js';

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

/** Rows and vec4 column groups per regblock invocation. */
function regblockShape(spec: MatmulSpec): { R: number; CV: number } {
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

// erf_approx / tanh_safe / sigmoid exactly as in elementwise.ts, so the fused forward agrees
// with the unary backward kernels that differentiate the activation.
const ACT_WGSL = `${UNARY_MATH_WGSL}fn activate(x: f32) -> f32 {
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

function bindings(elem: string): string {
  return `@group(0) @binding(1) var<storage, read> A: array<${elem}>;
@group(0) @binding(2) var<storage, read> B: array<${elem}>;
@group(0) @binding(3) var<storage, read> Bias: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> C: array<${elem}>;
@group(0) @binding(5) var<storage, read_write> P: array<${elem}>;
`;
}

const STORAGE = ['read', 'read', 'read', 'rw', 'rw'] as const;

/** Scalar epilogue: bias, pre-activation, activation, store of C[idx] for column n. */
const SCALAR_EPILOGUE = `
fn finish(idx: u32, n: u32, acc: f32) {
  var v = acc;
  if (u.bias != 0u) { v += Bias[n]; }
  if (u.pre != 0u) { P[idx] = v; }
  C[idx] = activate(v);
}
`;

export function matmulKernel(spec: MatmulSpec): Kernel {
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

function specName(spec: MatmulSpec): string {
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
  return makeKernel(specName(spec), MATMUL_FIELDS, STORAGE, `${bindings('f32')}${ACT_WGSL}${SCALAR_EPILOGUE}
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
  return makeKernel(specName(spec), MATMUL_FIELDS, STORAGE, `${bindings('f32')}${ACT_WGSL}${SCALAR_EPILOGUE}
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

/**
 * Register-blocked kernel. One workgroup is `lanes` invocations side by side along N (with
 * subgroups: exactly one subgroup), each owning rows row0..row0+R-1 of C at CV vec4 column
 * groups. Per step of 4 along K the R x 4 block of op(A) is R vec4s: lane l fetches vec4s
 * l, l+lanes, ... and broadcasts them, so A costs R/lanes fetches per lane instead of R.
 */
function regblockKernel(spec: MatmulSpec): Kernel {
  const { R, CV } = regblockShape(spec);
  const sg = spec.subgroup;
  const lanes = sg > 0 ? sg : RB_LANES;
  const { transA, transB, vec4 } = spec;
  if (R % 4 !== 0 || (sg > 0 && R % sg !== 0)) throw new Error(`matmul: ${R} rows do not suit subgroup size ${sg}`);
  const perLane = sg > 0 ? R / sg : R;
  const cs = Array.from({ length: CV }, (_, c) => c);
  const pre: string[] = [];

  // Loop-invariant, clamped offsets. Clamping keeps loads in bounds; results of clamped rows
  // and columns are never stored.
  // A tile vec4 j: !transA -> row j, k..k+3; transA -> k + j / (R/4), rows 4 (j % (R/4)) ..+3.
  const tileJ = (i: number) => (sg > 0 ? `(lane + ${i * sg}u)` : `${i}u`);
  for (let i = 0; i < perLane; i++) {
    const j = tileJ(i);
    if (!transA) {
      pre.push(`let aOff${i} = aBase + min(row0 + ${j}, u.M - 1u) * u.K;`);
    } else {
      pre.push(`let aKk${i} = ${j} / ${R / 4}u;`);
      pre.push(`let aM${i} = row0 + (${j} % ${R / 4}u) * 4u;`);
    }
  }
  for (const c of cs) {
    if (!transB) pre.push(`let bN${c} = min((col4 + ${c}u) * 4u, u.N - ${vec4 ? 4 : 1}u);`);
    else for (let e = 0; e < 4; e++) pre.push(`let bOff${c}_${e} = bBase + min((col4 + ${c}u) * 4u + ${e}u, u.N - 1u) * u.K;`);
  }

  // Emits one step over k..k+3; `guard` zeroes loads past K (scalar mode: K need not be a multiple of 4).
  const step = (guard: boolean): string => {
    const s: string[] = [];
    const gk = (kk: string) => (guard ? `min(${kk}, u.K - 1u)` : `(${kk})`);
    const sel = (v: string, kk: string) => (guard ? `select(0.0, ${v}, ${kk} < u.K)` : v);
    const sel4 = (v: string, kk: string) => (guard ? `select(vec4<f32>(0.0), ${v}, ${kk} < u.K)` : v);
    for (let i = 0; i < perLane; i++) {
      if (!transA) {
        if (vec4) s.push(`let t${i} = A[(aOff${i} + k) / 4u];`);
        else {
          const c = [0, 1, 2, 3].map((c) => sel(`A[aOff${i} + ${gk(`k + ${c}u`)}]`, `k + ${c}u`));
          s.push(`let t${i} = vec4<f32>(${c.join(', ')});`);
        }
      } else {
        const kk = `k + aKk${i}`;
        if (vec4) s.push(`let t${i} = ${sel4(`A[(aBase + ${gk(kk)} * u.M + min(aM${i}, u.M - 4u)) / 4u]`, kk)};`);
        else {
          const c = [0, 1, 2, 3].map((c) => `A[aBase + ${gk(kk)} * u.M + min(aM${i} + ${c}u, u.M - 1u)]`);
          s.push(`let t${i} = ${sel4(`vec4<f32>(${c.join(', ')})`, kk)};`);
        }
      }
    }
    // b{kk}_{c} = op(B)[k + kk, (col4 + c) * 4 .. +3].
    for (const cv of cs) {
      if (!transB) {
        for (let kk = 0; kk < 4; kk++) {
          const kx = `k + ${kk}u`;
          if (vec4) s.push(`let b${kk}_${cv} = ${sel4(`B[(bBase + ${gk(kx)} * u.N + bN${cv}) / 4u]`, kx)};`);
          else {
            const c = [0, 1, 2, 3].map((c) => `B[bBase + ${gk(kx)} * u.N + min(bN${cv} + ${c}u, u.N - 1u)]`);
            s.push(`let b${kk}_${cv} = ${sel4(`vec4<f32>(${c.join(', ')})`, kx)};`);
          }
        }
      } else {
        for (let e = 0; e < 4; e++) {
          if (vec4) s.push(`let r${e}_${cv} = B[(bOff${cv}_${e} + k) / 4u];`);
          else {
            const c = [0, 1, 2, 3].map((c) => sel(`B[bOff${cv}_${e} + ${gk(`k + ${c}u`)}]`, `k + ${c}u`));
            s.push(`let r${e}_${cv} = vec4<f32>(${c.join(', ')});`);
          }
        }
        for (let kk = 0; kk < 4; kk++) {
          s.push(`let b${kk}_${cv} = vec4<f32>(r0_${cv}[${kk}], r1_${cv}[${kk}], r2_${cv}[${kk}], r3_${cv}[${kk}]);`);
        }
      }
    }
    // Broadcast each A vec4 of the tile, then multiply-add.
    const tile = (j: number) => (sg > 0 ? `subgroupBroadcast(t${Math.floor(j / sg)}, ${j % sg}u)` : `t${j}`);
    for (let j = 0; j < R; j++) {
      s.push(`{ let a = ${tile(j)};`);
      for (let x = 0; x < 4; x++) {
        // !transA: vec4 j is row j at k..k+3; transA: rows 4 (j % (R/4)) + x at one k.
        const r = transA ? (j % (R / 4)) * 4 + x : j;
        const kk = transA ? Math.floor(j / (R / 4)) : x;
        for (const c of cs) s.push(`  c${r}_${c} = fma(vec4<f32>(a[${x}]), b${kk}_${c}, c${r}_${c});`);
      }
      s.push('}');
    }
    return s.join('\n    ');
  };

  const decl: string[] = [];
  const stores: string[] = [];
  for (let r = 0; r < R; r++) {
    for (const c of cs) {
      decl.push(`var c${r}_${c} = vec4<f32>(0.0);`);
      stores.push(`acc[${r * CV + c}] = c${r}_${c};`);
    }
  }
  const elem = vec4 ? 'vec4<f32>' : 'f32';
  // Scalar mode guards every load along K (one copy of the step keeps the JIT time down);
  // vec4 mode has K % 4 == 0 and needs no guard. A split's chunk is a multiple of 4, so the
  // guards against K stay exact inside it.
  const mainLoop = `for (var k = kBegin; k < kEnd; k += 4u) {
    ${step(!vec4)}
  }`;
  const laneBuiltin = sg > 0 ? '@builtin(subgroup_invocation_id) lane: u32' : '@builtin(local_invocation_index) lane: u32';
  const body = `${bindings(elem)}${ACT_WGSL}${spec.transC ? transposedEpilogue(vec4) : rowEpilogue(vec4)}
@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, ${laneBuiltin}) {
  let row0 = wid.y * ${R}u;
  let col4 = (wid.x * ${lanes}u + lane) * ${CV}u;
  let bz = wid.z / u.splits;
  let kBegin = (wid.z % u.splits) * u.kChunk;
  let kEnd = min(u.K, kBegin + u.kChunk);
  let aBase = bz * u.strideA;
  let bBase = bz * u.strideB;
  let cBase = wid.z * u.strideC;
  ${pre.join('\n  ')}
  ${decl.join('\n  ')}
  ${mainLoop}
  // The epilogue runs in a loop over an array: unrolled, its activation code would be inlined
  // R * CV times and lavapipe's JIT time would grow several-fold. (Unrolling only the
  // bias-only stores measured 0-20 % faster on short K but doubled the JIT time.)
  var acc: array<vec4<f32>, ${R * CV}>;
  ${stores.join('\n  ')}
  ${spec.transC ? transposedStore(R, CV) : rowStore(R, CV)}
}`;
  return makeKernel(specName(spec), MATMUL_FIELDS, STORAGE, body, { enables: sg > 0 ? ['subgroups'] : [] });
}

/** put(rowBase, n0, bias4, v): bias, pre-activation, activation and store of C[row, n0..n0+3]. */
function rowEpilogue(vec4: boolean): string {
  return vec4
    ? `fn put(rowBase: u32, n0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  if (n0 >= u.N) { return; }
  let v = acc + bias4;
  let i = (rowBase + n0) / 4u;
  if (u.pre != 0u) { P[i] = v; }
  C[i] = activate4(v);
}
fn loadBias(n0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return Bias[min(n0, u.N - 4u) / 4u];
}`
    : `fn put(rowBase: u32, n0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  let v = acc + bias4;
  for (var c = 0u; c < 4u; c++) {
    if (n0 + c < u.N) {
      if (u.pre != 0u) { P[rowBase + n0 + c] = v[c]; }
      C[rowBase + n0 + c] = activate(v[c]);
    }
  }
}
fn loadBias(n0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return vec4<f32>(Bias[min(n0, u.N - 1u)], Bias[min(n0 + 1u, u.N - 1u)], Bias[min(n0 + 2u, u.N - 1u)], Bias[min(n0 + 3u, u.N - 1u)]);
}`;
}

function rowStore(R: number, CV: number): string {
  return `for (var c = 0u; c < ${CV}u; c++) {
    let n0 = (col4 + c) * 4u;
    let bias4 = loadBias(n0);
    // A bound only known at run time keeps LLVM from unrolling the loop back out.
    for (var r = 0u; r < min(${R}u, u.M - row0); r++) {
      put(cBase + (row0 + r) * u.N, n0, bias4, acc[r * ${CV}u + c]);
    }
  }`;
}

/**
 * transC: the kernel's [M, N] block is C^T, so its rows m are columns of C (row stride M) and
 * the bias runs along them. Four block rows at one column give a vec4 along a row of C.
 */
function transposedEpilogue(vec4: boolean): string {
  return vec4
    ? `fn putT(i: u32, m0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  let v = acc + bias4;
  if (u.pre != 0u) { P[i / 4u] = v; }
  C[i / 4u] = activate4(v);
}
fn loadBias(m0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return Bias[m0 / 4u];
}`
    : `fn putT(i: u32, m0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  let v = acc + bias4;
  for (var c = 0u; c < 4u; c++) {
    if (m0 + c < u.M) {
      if (u.pre != 0u) { P[i + c] = v[c]; }
      C[i + c] = activate(v[c]);
    }
  }
}
fn loadBias(m0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return vec4<f32>(Bias[min(m0, u.M - 1u)], Bias[min(m0 + 1u, u.M - 1u)], Bias[min(m0 + 2u, u.M - 1u)], Bias[min(m0 + 3u, u.M - 1u)]);
}`;
}

function transposedStore(R: number, CV: number): string {
  return `for (var q = 0u; q < ${R / 4}u && row0 + q * 4u < u.M; q++) {
    let m0 = row0 + q * 4u;
    let bias4 = loadBias(m0);
    let r = q * ${4 * CV}u;
    for (var c = 0u; c < ${CV}u; c++) {
      let a0 = acc[r + c];
      let a1 = acc[r + ${CV}u + c];
      let a2 = acc[r + ${2 * CV}u + c];
      let a3 = acc[r + ${3 * CV}u + c];
      let n0 = (col4 + c) * 4u;
      for (var j = 0u; j < min(4u, u.N - min(n0, u.N)); j++) {
        putT(cBase + (n0 + j) * u.M + m0, m0, bias4, vec4<f32>(a0[j], a1[j], a2[j], a3[j]));
      }
    }
  }`;
}

/** Workgroup size of the split-K reduction. */
const REDUCE_WG = 64;

/** Uniform fields of the split-K reduction; sizes count elements of the kernel's type. */
export const SPLIT_REDUCE_FIELDS: readonly [string, UniformType][] = [
  ['slab', 'u32'], ['total', 'u32'], ['cols', 'u32'], ['splits', 'u32'],
  ['act', 'u32'], ['bias', 'u32'], ['pre', 'u32'],
];

/**
 * Second pass of split-K: out[b, i] = epilogue(sum over s of part[b, s, i]), where part holds
 * [batch, splits, M, N] partial sums, `slab` = M * N, `total` = batch * M * N and `cols` = N
 * (all divided by 4 in vec4 mode, which needs N % 4 == 0). Bindings follow the matmul layout:
 * the partials in A's place, B unused.
 */
export function splitReduceKernel(vec4: boolean): Kernel {
  const elem = vec4 ? 'vec4<f32>' : 'f32';
  const body = `${bindings(elem)}${ACT_WGSL}${WGSL_LINEAR}
@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${REDUCE_WG}u);
  if (i >= u.total) { return; }
  let e = i % u.slab;
  var p = (i - e) * u.splits + e;
  var s = A[p];
  for (var k = 1u; k < u.splits; k++) {
    p += u.slab;
    s += A[p];
  }
  if (u.bias != 0u) { s += Bias[e % u.cols]; }
  if (u.pre != 0u) { P[i] = s; }
  C[i] = ${vec4 ? 'activate4' : 'activate'}(s);
}`;
  return makeKernel(`matmul.splitk_reduce${vec4 ? '.vec4' : ''}`, SPLIT_REDUCE_FIELDS, STORAGE, body, { workgroupSize: REDUCE_WG });
}
