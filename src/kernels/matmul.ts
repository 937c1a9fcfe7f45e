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
import { makeKernel, type Kernel, memoKernel } from './kernel.js';
import {
  ACT_WGSL, kernelFields, MATMUL_FIELDS, matmulBindings, operandEnables, operandLoad, PRE_READ_GRAD, RB_LANES, regblockShape, specName,
  type MatmulField, type MatmulKernelFields, type MatmulPlan, type MatmulVariant,
} from './matmul-spec.js';
import { regblockKernel } from './matmul-regblock.js';

export * from './matmul-spec.js';

const TILE = 64;
const TILE_K = 16;
const NAIVE_WG = 16;

/** Scalar epilogue: alpha, bias, addend, pre-activation, activation, store of C[idx] for column n. */
const SCALAR_EPILOGUE = `
fn finish(idx: u32, n: u32, acc: f32) {
  var v = u.alpha * acc;
  if (u.bias != 0u) { v += Bias[n]; }
  if (u.addend != 0u) { v += D[idx]; }
  if (u.pre == ${PRE_READ_GRAD}u) { C[idx] = v * activateGrad(P[idx]); return; }
  if (u.pre != 0u) { P[idx] = v; }
  C[idx] = activate(v);
}
`;

/**
 * What a matmul variant supplies: its kernel for a plan's kernel fields, and the workgroup grid
 * of an M x N output (the kernel's view, after any swap) over `layers` = batch x splits.
 */
export interface MatmulVariantImpl {
  build(k: MatmulKernelFields): Kernel<MatmulField>;
  workgroups(k: MatmulKernelFields, M: number, N: number, layers: number): [number, number, number];
}

/** Every variant, in one typed record: a new MatmulVariant does not compile until it is here. */
export const MATMUL_VARIANTS: { readonly [V in MatmulVariant]: MatmulVariantImpl } = {
  naive: {
    build: (k) => naiveKernel(k),
    workgroups: (_, M, N, layers) => [Math.ceil(N / NAIVE_WG), Math.ceil(M / NAIVE_WG), layers],
  },
  tiled: {
    build: (k) => tiledKernel(k),
    workgroups: (_, M, N, layers) => [Math.ceil(N / TILE), Math.ceil(M / TILE), layers],
  },
  regblock: {
    build: (k) => regblockKernel(k),
    workgroups: (k, M, N, layers) => {
      const lanes = k.subgroup > 0 ? k.subgroup : RB_LANES;
      const { R, CV } = regblockShape(k);
      return [Math.ceil(N / (lanes * 4 * CV)), Math.ceil(M / R), layers];
    },
  },
};

function matmulKernelBuild(k: MatmulKernelFields): Kernel<MatmulField> {
  return MATMUL_VARIANTS[k.variant].build(k);
}

/** Workgroup counts of a plan over an M x N output (the kernel's M and N) and `batch` entries. */
export function matmulWorkgroups(plan: MatmulPlan, M: number, N: number, batch: number): [number, number, number] {
  return MATMUL_VARIANTS[plan.variant].workgroups(plan, M, N, batch * plan.splits);
}

/** Element index expressions of op(A)[m, k] and op(B)[k, n] (batch bases aBase / bBase). */
function aIndex(transA: boolean, m: string, k: string): string {
  return transA ? `aBase + (${k}) * u.M + (${m})` : `aBase + (${m}) * u.K + (${k})`;
}
function bIndex(transB: boolean, k: string, n: string): string {
  return transB ? `bBase + (${n}) * u.K + (${k})` : `bBase + (${k}) * u.N + (${n})`;
}

function naiveKernel(spec: MatmulKernelFields) {
  return makeKernel(specName(spec), MATMUL_FIELDS, matmulBindings(false, spec), `${ACT_WGSL}${SCALAR_EPILOGUE}
@compute @workgroup_size(${NAIVE_WG}, ${NAIVE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= u.M || n >= u.N) { return; }
  let aBase = gid.z * u.strideA;
  let bBase = gid.z * u.strideB;
  var acc = 0.0;
  for (var k = 0u; k < u.K; k++) {
    acc += ${operandLoad(spec.elemA, false)(`A[${aIndex(spec.transA, 'm', 'k')}]`)} * ${operandLoad(spec.elemB, false)(`B[${bIndex(spec.transB, 'k', 'n')}]`)};
  }
  finish(gid.z * u.strideC + m * u.N + n, n, acc);
}`, { enables: operandEnables(spec) });
}

/**
 * Shared-memory tiles of TILE x TILE_K (A) and TILE_K x TILE (B), both stored k-major; each of
 * the 16x16 threads owns a 4x4 block of C strided by 16 so reads of the tiles do not conflict.
 */
function tiledKernel(spec: MatmulKernelFields) {
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
  return makeKernel(specName(spec), MATMUL_FIELDS, matmulBindings(false, spec), `${ACT_WGSL}${SCALAR_EPILOGUE}
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
        if (m < u.M && k < u.K) { v = ${operandLoad(spec.elemA, false)(`A[${aIndex(spec.transA, 'm', 'k')}]`)}; }
        As[kk * ${TILE}u + mm] = v;
      }
      {
        ${loadB}
        let n = col0 + nn;
        let k = k0 + kk;
        var v = 0.0;
        if (n < u.N && k < u.K) { v = ${operandLoad(spec.elemB, false)(`B[${bIndex(spec.transB, 'k', 'n')}]`)}; }
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
}`, { enables: operandEnables(spec) });
}

export { splitReduceKernel, SPLIT_REDUCE_FIELDS } from './matmul-regblock.js';

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
const memoMatmulKernel = memoKernel(matmulKernelBuild);

/** The kernel of a plan (or of its kernel fields): memoised by those fields alone. */
export function matmulKernel(plan: MatmulKernelFields | MatmulPlan): Kernel<MatmulField> {
  return memoMatmulKernel(kernelFields(plan));
}
