/**
 * The `regblock` matmul for CPU-backed adapters (see ./matmul.ts for the family): register
 * blocks of C with vec4 loads along N and subgroup broadcasts of A, its row / transposed
 * epilogues, and the split-K reduction pass.
 */
import { makeKernel, type UniformType, memoKernel } from './kernel.js';
import {
  ACT_WGSL, matmulBindings, MATMUL_FIELDS, operandEnables, operandLoad, PRE_READ_GRAD, RB_LANES, regblockShape, specName, type MatmulKernelFields,
} from './matmul-spec.js';

/**
 * Register-blocked kernel. One workgroup is `lanes` invocations side by side along N (with
 * subgroups: exactly one subgroup), each owning rows row0..row0+R-1 of C at CV vec4 column
 * groups. Per step of 4 along K the R x 4 block of op(A) is R vec4s: lane l fetches vec4s
 * l, l+lanes, ... and broadcasts them, so A costs R/lanes fetches per lane instead of R.
 */
function regblockKernelBuild(spec: MatmulKernelFields) {
  const { R, CV } = regblockShape(spec);
  const sg = spec.subgroup;
  const lanes = sg > 0 ? sg : RB_LANES;
  const { transA, transB, vec4 } = spec;
  if (R % 4 !== 0 || (sg > 0 && R % sg !== 0)) throw new Error(`matmul: ${R} rows do not suit subgroup size ${sg}`);
  const perLane = sg > 0 ? R / sg : R;
  // Operand loads, widened to f32 where an operand is stored as f16.
  const [a1, a4] = [operandLoad(spec.elemA, false), operandLoad(spec.elemA, true)];
  const [b1, b4] = [operandLoad(spec.elemB, false), operandLoad(spec.elemB, true)];
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
        if (vec4) s.push(`let t${i} = ${a4(`A[(aOff${i} + k) / 4u]`)};`);
        else {
          const c = [0, 1, 2, 3].map((c) => sel(a1(`A[aOff${i} + ${gk(`k + ${c}u`)}]`), `k + ${c}u`));
          s.push(`let t${i} = vec4<f32>(${c.join(', ')});`);
        }
      } else {
        const kk = `k + aKk${i}`;
        if (vec4) s.push(`let t${i} = ${sel4(a4(`A[(aBase + ${gk(kk)} * u.M + min(aM${i}, u.M - 4u)) / 4u]`), kk)};`);
        else {
          const c = [0, 1, 2, 3].map((c) => a1(`A[aBase + ${gk(kk)} * u.M + min(aM${i} + ${c}u, u.M - 1u)]`));
          s.push(`let t${i} = ${sel4(`vec4<f32>(${c.join(', ')})`, kk)};`);
        }
      }
    }
    // b{kk}_{c} = op(B)[k + kk, (col4 + c) * 4 .. +3].
    for (const cv of cs) {
      if (!transB) {
        for (let kk = 0; kk < 4; kk++) {
          const kx = `k + ${kk}u`;
          if (vec4) s.push(`let b${kk}_${cv} = ${sel4(b4(`B[(bBase + ${gk(kx)} * u.N + bN${cv}) / 4u]`), kx)};`);
          else {
            const c = [0, 1, 2, 3].map((c) => b1(`B[bBase + ${gk(kx)} * u.N + min(bN${cv} + ${c}u, u.N - 1u)]`));
            s.push(`let b${kk}_${cv} = ${sel4(`vec4<f32>(${c.join(', ')})`, kx)};`);
          }
        }
      } else {
        for (let e = 0; e < 4; e++) {
          if (vec4) s.push(`let r${e}_${cv} = ${b4(`B[(bOff${cv}_${e} + k) / 4u]`)};`);
          else {
            const c = [0, 1, 2, 3].map((c) => sel(b1(`B[bOff${cv}_${e} + ${gk(`k + ${c}u`)}]`), `k + ${c}u`));
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
  // Scalar mode guards every load along K (one copy of the step keeps the JIT time down);
  // vec4 mode has K % 4 == 0 and needs no guard. A split's chunk is a multiple of 4, so the
  // guards against K stay exact inside it.
  const mainLoop = `for (var k = kBegin; k < kEnd; k += 4u) {
    ${step(!vec4)}
  }`;
  const laneBuiltin = sg > 0 ? '@builtin(subgroup_invocation_id) lane: u32' : '@builtin(local_invocation_index) lane: u32';
  const body = `${ACT_WGSL}${spec.transC ? transposedEpilogue(vec4) : rowEpilogue(vec4)}
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
  return makeKernel(specName(spec), MATMUL_FIELDS, matmulBindings(vec4, spec), body, { enables: [...(sg > 0 ? ['subgroups'] : []), ...operandEnables(spec)] });
}

/** put(rowBase, n0, bias4, v): bias, pre-activation, activation and store of C[row, n0..n0+3]. */
function rowEpilogue(vec4: boolean): string {
  return vec4
    ? `fn put(rowBase: u32, n0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  if (n0 >= u.N) { return; }
  let i = (rowBase + n0) / 4u;
  var v = u.alpha * acc + bias4;
  if (u.addend != 0u) { v += D[i]; }
  if (u.pre == ${PRE_READ_GRAD}u) { C[i] = v * activateGrad4(P[i]); return; }
  if (u.pre != 0u) { P[i] = v; }
  C[i] = activate4(v);
}
fn loadBias(n0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return Bias[min(n0, u.N - 4u) / 4u];
}`
    : `fn put(rowBase: u32, n0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  let v = u.alpha * acc + bias4;
  for (var c = 0u; c < 4u; c++) {
    if (n0 + c < u.N) {
      var x = v[c];
      if (u.addend != 0u) { x += D[rowBase + n0 + c]; }
      if (u.pre == ${PRE_READ_GRAD}u) { C[rowBase + n0 + c] = x * activateGrad(P[rowBase + n0 + c]); continue; }
      if (u.pre != 0u) { P[rowBase + n0 + c] = x; }
      C[rowBase + n0 + c] = activate(x);
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
  var v = u.alpha * acc + bias4;
  if (u.addend != 0u) { v += D[i / 4u]; }
  if (u.pre == ${PRE_READ_GRAD}u) { C[i / 4u] = v * activateGrad4(P[i / 4u]); return; }
  if (u.pre != 0u) { P[i / 4u] = v; }
  C[i / 4u] = activate4(v);
}
fn loadBias(m0: u32) -> vec4<f32> {
  if (u.bias == 0u) { return vec4<f32>(0.0); }
  return Bias[m0 / 4u];
}`
    : `fn putT(i: u32, m0: u32, bias4: vec4<f32>, acc: vec4<f32>) {
  let v = u.alpha * acc + bias4;
  for (var c = 0u; c < 4u; c++) {
    if (m0 + c < u.M) {
      var x = v[c];
      if (u.addend != 0u) { x += D[i + c]; }
      if (u.pre == ${PRE_READ_GRAD}u) { C[i + c] = x * activateGrad(P[i + c]); continue; }
      if (u.pre != 0u) { P[i + c] = x; }
      C[i + c] = activate(x);
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
export const SPLIT_REDUCE_FIELDS = [
  ['slab', 'u32'], ['total', 'u32'], ['cols', 'u32'], ['splits', 'u32'],
  ['act', 'u32'], ['bias', 'u32'], ['pre', 'u32'], ['alpha', 'f32'], ['addend', 'u32'],
] as const satisfies readonly (readonly [string, UniformType])[];

/**
 * Second pass of split-K: out[b, i] = epilogue(sum over s of part[b, s, i]) (alpha, bias,
 * addend, activation), where part holds
 * [batch, splits, M, N] partial sums, `slab` = M * N, `total` = batch * M * N and `cols` = N
 * (all divided by 4 in vec4 mode, which needs N % 4 == 0). Bindings follow the matmul layout:
 * the partials in A's place, B unused.
 */
function splitReduceKernelBuild(vec4: boolean) {
  return makeKernel(`matmul.splitk_reduce${vec4 ? '.vec4' : ''}`, SPLIT_REDUCE_FIELDS, matmulBindings(vec4), {
    linear: REDUCE_WG,
    bound: 'u.total',
    helpers: ACT_WGSL,
    body: `  let e = i % u.slab;
  var p = (i - e) * u.splits + e;
  var s = A[p];
  for (var k = 1u; k < u.splits; k++) {
    p += u.slab;
    s += A[p];
  }
  s *= u.alpha;
  if (u.bias != 0u) { s += Bias[e % u.cols]; }
  if (u.addend != 0u) { s += D[i]; }
  if (u.pre == ${PRE_READ_GRAD}u) {
    C[i] = s * ${vec4 ? 'activateGrad4' : 'activateGrad'}(P[i]);
  } else {
    if (u.pre != 0u) { P[i] = s; }
    C[i] = ${vec4 ? 'activate4' : 'activate'}(s);
  }`,
  });
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const regblockKernel = memoKernel(regblockKernelBuild);
export const splitReduceKernel = memoKernel(splitReduceKernelBuild);
