/**
 * Reductions: over one axis of a tensor viewed as [outer, R, inner] (one invocation per output
 * element walks the R elements: no barriers, cheap on CPU adapters, coalesced across `inner`),
 * full-tensor sums in two stages, and the row-kernel builder shared by softmax, layer norm,
 * cross-entropy and L2 normalisation.
 */
import { makeKernel, type Kernel, type StorageBinding, type Uniforms, type UniformType, memoKernel } from './kernel.js';

export const REDUCE_WG = 256;

export type ReduceOp = 'sum' | 'mean' | 'max';

function reduceAxisKernelBuild(op: ReduceOp) {
  const init = op === 'max' ? '-3.4028234663852886e38' : '0.0';
  const step = op === 'max' ? 'acc = max(acc, v);' : 'acc += v;';
  const fin = op === 'mean' ? 'acc / f32(u.r)' : 'acc';
  return makeKernel(`reduce.${op}`, [['n', 'u32'], ['r', 'u32'], ['inner', 'u32']], [['X', 'read', 'f32'], ['Y', 'rw', 'f32']], {
    linear: REDUCE_WG,
    index: 'o',
    body: `  let outer = o / u.inner;
  let i = o % u.inner;
  var base = outer * u.r * u.inner + i;
  var acc = ${init};
  for (var j = 0u; j < u.r; j++) {
    let v = X[base + j * u.inner];
    ${step}
  }
  Y[o] = ${fin};`,
  });
}

/**
 * Vector variants of reduceAxisKernel, for lavapipe's per-access cost:
 * - 'columns' (inner % 4 == 0): each invocation reduces 4 neighbouring columns, `inner` counts
 *   vectors; the column sums of a bias gradient and reductions over a leading axis.
 * - 'rows' (inner == 1, r % 4 == 0): each invocation reads its row as vectors, `r` counts
 *   vectors; reductions over the last axis. Elements are folded in a different order than
 *   the scalar kernel, so sums may differ in the last bits.
 */
function reduceAxisKernelVec4Build(op: ReduceOp, mode: 'columns' | 'rows') {
  const init = op === 'max' ? 'vec4<f32>(-3.4028234663852886e38)' : 'vec4<f32>(0.0)';
  const step = op === 'max' ? 'acc = max(acc, v);' : 'acc += v;';
  const count = mode === 'rows' ? 'f32(u.r * 4u)' : 'f32(u.r)';
  let fin: string;
  if (mode === 'columns') fin = op === 'mean' ? `acc / ${count}` : 'acc';
  else if (op === 'max') fin = 'max(max(acc.x, acc.y), max(acc.z, acc.w))';
  else fin = `((acc.x + acc.y) + (acc.z + acc.w))${op === 'mean' ? ` / ${count}` : ''}`;
  return makeKernel(`reduce.${op}.${mode}.vec4`, [['n', 'u32'], ['r', 'u32'], ['inner', 'u32']], [['X', 'read', 'vec4<f32>'], ['Y', 'rw', mode === 'columns' ? 'vec4<f32>' : 'f32']], {
    linear: REDUCE_WG,
    index: 'o',
    body: `  let outer = o / u.inner;
  let i = o % u.inner;
  let base = outer * u.r * u.inner + i;
  var acc = ${init};
  for (var j = 0u; j < u.r; j++) {
    let v = X[base + j * u.inner];
    ${step}
  }
  Y[o] = ${fin};`,
  });
}

/**
 * The kernel, invocation count and uniforms reducing the middle axis of [outer, r, inner]:
 * a vec4 variant where the layout allows, else the scalar kernel.
 */
export function reduceAxisPlan(op: ReduceOp, outer: number, r: number, inner: number): { kernel: Kernel<'n' | 'r' | 'inner'>; n: number; uniforms: Uniforms<'n' | 'r' | 'inner'> } {
  if (inner % 4 === 0 && r > 0) {
    const n = outer * (inner / 4);
    return { kernel: reduceAxisKernelVec4(op, 'columns'), n, uniforms: { n, r, inner: inner / 4 } };
  }
  if (inner === 1 && r % 4 === 0 && r > 0) {
    return { kernel: reduceAxisKernelVec4(op, 'rows'), n: outer, uniforms: { n: outer, r: r / 4, inner: 1 } };
  }
  return { kernel: reduceAxisKernel(op), n: outer * inner, uniforms: { n: outer * inner, r, inner } };
}

/**
 * Gradient of max over an axis: g goes to the first position holding the maximum (ties
 * broken by the lowest index, as PyTorch's max(dim) does).
 */
function maxBackwardKernelBuild() {
  return makeKernel('reduce.max.backward', [['n', 'u32'], ['r', 'u32'], ['inner', 'u32']], [['X', 'read', 'f32'], ['M', 'read', 'f32'], ['G', 'read', 'f32'], ['DX', 'rw', 'f32']], {
    linear: REDUCE_WG,
    index: 'o',
    body: `  let outer = o / u.inner;
  let i = o % u.inner;
  let base = outer * u.r * u.inner + i;
  var found = false;
  for (var j = 0u; j < u.r; j++) {
    let k = base + j * u.inner;
    if (!found && X[k] == M[o]) {
      DX[k] = G[o];
      found = true;
    } else {
      DX[k] = 0.0;
    }
  }`,
  });
}

/**
 * Row kernels: an op over the `len` elements of each of `rows` rows (softmax, layer norm,
 * cross-entropy, L2 normalisation). Two variants of the same body:
 * - 'lane': one invocation per row walks the whole row. No barriers and no workgroup memory,
 *   which is what CPU adapters want: lavapipe vectorises across invocations, a barrier is a
 *   coroutine switch per invocation, and per-invocation overhead is large (measured: copying
 *   [19712, 77] with a row loop per invocation took 11 ms, one element per invocation 25 ms;
 *   softmax there: 15 ms 'lane' vs 346 ms 'workgroup').
 * - 'workgroup': one workgroup per row, lanes stride along it and combine through a tree in
 *   workgroup memory (fixed order, so results are deterministic). GPUs need this parallelism:
 *   256 rows of 49408 would otherwise run on 256 threads.
 * With `vec4`, rows are read as vec4 (len counts vectors; the row length is a multiple of 4).
 * With `strided`, element j of row r sits at (r / inner) * len * inner + r % inner + j * inner
 * (a reduction over a middle axis); strided rows are scalar.
 */
export type RowVariant = 'lane' | 'workgroup';

export const ROW_LANE_WG = 64;
export const ROW_GROUP_WG = 128;

export interface RowSpec {
  variant: RowVariant;
  vec4: boolean;
  strided?: boolean;
  /** Workgroup size of the 'lane' variant (default ROW_LANE_WG). */
  laneWg?: number;
}

/** A reduction across the lanes of a row: `combine` is a WGSL expression in `a` and `b`. */
export interface RowReducer {
  name: string;
  type: string;
  combine: string;
}

const rowWorkgroupSize = (spec: RowSpec) => (spec.variant === 'lane' ? spec.laneWg ?? ROW_LANE_WG : ROW_GROUP_WG);

function reducerWgsl(r: RowReducer, variant: RowVariant): string {
  if (variant === 'lane') return `fn ${r.name}(lane: u32, v: ${r.type}) -> ${r.type} { return v; }\n`;
  const wg = ROW_GROUP_WG;
  return `var<workgroup> red_${r.name}: array<${r.type}, ${wg}>;
fn ${r.name}(lane: u32, v: ${r.type}) -> ${r.type} {
  red_${r.name}[lane] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lane < s) {
      let a = red_${r.name}[lane];
      let b = red_${r.name}[lane + s];
      red_${r.name}[lane] = ${r.combine};
    }
    workgroupBarrier();
  }
  let r = red_${r.name}[0];
  workgroupBarrier();
  return r;
}
`;
}

/** The uniform fields every row kernel starts with (`inner` only when strided): `runRows` fills them. */
export type RowLeadField = 'rows' | 'len' | 'inner';

/**
 * Builds a row kernel. The body runs with `row` (< u.rows), `lane`, `base` in scope, and may use
 * `at(base, j)` for the index of element j, `STEP` as the loop stride of j (start j at `lane`),
 * `Word` for the unit a row is read in (f32, or vec4<f32> when vec4), and hsum / hmax to fold a Word into an f32. Uniforms `rows`, `len`
 * (and `inner` when strided) come first; `fields` follow. `helpers` is module-scope WGSL the body
 * calls (beside the reducers' functions).
 */
export function rowKernel<const F extends string = never>(
  name: string,
  spec: RowSpec,
  fields: readonly (readonly [F, UniformType])[],
  bindings: readonly StorageBinding[],
  helpers: string,
  reducers: readonly RowReducer[],
  body: string,
): Kernel<RowLeadField | F> {
  if (spec.strided && spec.vec4) throw new Error(`${name}: strided rows are scalar`);
  const word = spec.vec4 ? 'vec4<f32>' : 'f32';
  const wg = rowWorkgroupSize(spec);
  const lead: [RowLeadField, UniformType][] = [['rows', 'u32'], ['len', 'u32']];
  if (spec.strided) lead.push(['inner', 'u32']);
  const common = `const STEP: u32 = ${spec.variant === 'lane' ? 1 : wg}u;
const LOWEST: f32 = -3.4028234663852886e38;
fn hsum(v: Word) -> f32 { return ${spec.vec4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn hmax(v: Word) -> f32 { return ${spec.vec4 ? 'max(max(v.x, v.y), max(v.z, v.w))' : 'v'}; }
fn at(base: u32, j: u32) -> u32 { return base + j${spec.strided ? ' * u.inner' : ''}; }
${helpers}${reducers.map((r) => reducerWgsl(r, spec.variant)).join('')}`;
  const base = spec.strided
    ? '(row / u.inner) * u.len * u.inner + row % u.inner'
    : 'row * u.len';
  const kernelName = `${name}.${spec.variant}${spec.variant === 'lane' ? wg : ''}${spec.vec4 ? '.vec4' : ''}${spec.strided ? '.strided' : ''}`;
  const prelude = `alias Word = ${word};\n`;
  if (spec.variant === 'lane') {
    // One row per invocation: the generated 1-D entry point, with `row` as its index.
    return makeKernel<RowLeadField | F>(kernelName, [...lead, ...fields], bindings,
      { linear: wg, index: 'row', bound: 'u.rows', helpers: common, body: `  let lane = 0u;\n  let base = ${base};\n${body}` }, { prelude });
  }
  return makeKernel<RowLeadField | F>(kernelName, [...lead, ...fields], bindings, `${common}
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let base = ${base};
${body}
}`, { workgroupSize: wg, prelude });
}

export const SUM_REDUCER = (name = 'rowSum'): RowReducer => ({ name, type: 'f32', combine: 'a + b' });

/**
 * First stage of a full-tensor sum: invocation p of `parts` sums vectors p, p + parts, ...
 * (a strided walk: coalesced on GPUs, and on CPUs each invocation still streams one region
 * per step). The scalar tail (n % 4 elements) goes to invocation 0 through a scalar view of
 * the same buffer.
 */
function sumPartialsKernelBuild() {
  return makeKernel('reduce.sum.partials', [['n4', 'u32'], ['tail', 'u32'], ['parts', 'u32']], [['X4', 'read', 'vec4<f32>'], ['X', 'read', 'f32'], ['P', 'rw', 'f32']], {
    linear: REDUCE_WG,
    index: 'p',
    bound: 'u.parts',
    body: `  var acc = vec4<f32>(0.0);
  for (var j = p; j < u.n4; j += u.parts) {
    acc += X4[j];
  }
  var s = (acc.x + acc.y) + (acc.z + acc.w);
  if (p == 0u) {
    for (var t = 0u; t < u.tail; t++) {
      s += X[u.n4 * 4u + t];
    }
  }
  P[p] = s;`,
  });
}

/**
 * Final stage: one workgroup folds `parts` partials through a fixed-order tree (deterministic)
 * and writes Y[0] = sum * scale.
 */
function sumFinalKernelBuild() {
  return makeKernel('reduce.sum.final', [['parts', 'u32'], ['scale', 'f32']], [['P', 'read', 'f32'], ['Y', 'rw', 'f32']], `var<workgroup> red: array<f32, ${REDUCE_WG}>;
@compute @workgroup_size(${REDUCE_WG}) fn main(@builtin(local_invocation_index) lane: u32) {
  var s = 0.0;
  for (var j = lane; j < u.parts; j += ${REDUCE_WG}u) {
    s += P[j];
  }
  red[lane] = s;
  workgroupBarrier();
  for (var k = ${REDUCE_WG / 2}u; k > 0u; k = k >> 1u) {
    if (lane < k) { red[lane] += red[lane + k]; }
    workgroupBarrier();
  }
  if (lane == 0u) { Y[0] = red[0] * u.scale; }
}`);
}

/** Y[i] = G[0] * scale for every i: the gradient of a full sum or mean, read on the GPU. */
function broadcastScalarKernelBuild() {
  return makeKernel('reduce.broadcast-scalar', [['n', 'u32'], ['scale', 'f32']], [['G', 'read', 'f32'], ['Y', 'rw', 'f32']], {
    linear: REDUCE_WG,
    body: `  Y[i] = G[0] * u.scale;`,
  });
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
const reduceAxisKernel = memoKernel(reduceAxisKernelBuild);
const reduceAxisKernelVec4 = memoKernel(reduceAxisKernelVec4Build);
export const maxBackwardKernel = memoKernel(maxBackwardKernelBuild);
export const sumPartialsKernel = memoKernel(sumPartialsKernelBuild);
export const sumFinalKernel = memoKernel(sumFinalKernelBuild);
export const broadcastScalarKernel = memoKernel(broadcastScalarKernelBuild);
