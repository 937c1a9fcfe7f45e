/**
 * Layer norm over the last dim (row kernels, see rowKernel in reduce.ts):
 * - forward: one pass of Welford statistics (count, mean, M2) merged with Chan's rule per
 *   vector and across lanes, which stays accurate when |mean| >> std (residual streams with
 *   outlier features) where sum / sum-of-squares would cancel; then a pass writing
 *   y = (x - mean) * rstd * gamma + beta. Mean and rstd per row are saved for backward.
 * - backward dx, per row: dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)), gy = g * gamma.
 * - backward dgamma, dbeta: columns summed over chunks of rows into partials [chunks, D]
 *   (chunks = 1 writes the result directly), then summed over chunks by reduce.sum. No atomics:
 *   the order is fixed, so results are deterministic.
 */
import { makeKernel, memoKernel } from './kernel.js';
import { rowKernel, SUM_REDUCER, type RowReducer, type RowSpec } from './reduce.js';

export const LN_COL_WG = 64;

const WELFORD: RowReducer = { name: 'rowStats', type: 'vec3<f32>', combine: 'chan(a, b)' };
const SUM2: RowReducer = { name: 'rowSum2', type: 'vec2<f32>', combine: 'a + b' };

const welfordWgsl = (count: number) => `
fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let wb = b.x / n;
  return vec3<f32>(n, a.y + d * wb, a.z + b.z + d * d * a.x * wb);
}
fn chunkStats(v: Word) -> vec3<f32> {
  let c = ${count}.0;
  let m = hsum(v) / c;
  let dv = v - Word(m);
  return vec3<f32>(c, m, hsum(dv * dv));
}
`;

function layerNormKernelBuild(spec: RowSpec) {
  return rowKernel('layernorm', spec, [['eps', 'f32']], [['X', 'read', 'Word'], ['GAMMA', 'read', 'Word'], ['BETA', 'read', 'Word'], ['Y', 'rw', 'Word'], ['MEAN', 'rw', 'f32'], ['RSTD', 'rw', 'f32']], welfordWgsl(spec.vec4 ? 4 : 1), [WELFORD], `
  var st = vec3<f32>(0.0);
  for (var j = lane; j < u.len; j += STEP) {
    st = chan(st, chunkStats(X[at(base, j)]));
  }
  st = rowStats(lane, st);
  let mean = st.y;
  let rstd = inverseSqrt(st.z / st.x + u.eps);
  if (lane == 0u) {
    MEAN[row] = mean;
    RSTD[row] = rstd;
  }
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    Y[k] = (X[k] - Word(mean)) * Word(rstd) * GAMMA[j] + BETA[j];
  }`);
}

/**
 * dX of layer norm, plus D where `addend` is 1: the gradient x gathered from its other consumers
 * (the residual stream's), added in the store instead of by a separate pass.
 */
function layerNormBackwardKernelBuild(spec: RowSpec) {
  const d = spec.vec4 ? 'f32(u.len * 4u)' : 'f32(u.len)';
  return rowKernel('layernorm.backward', spec, [['addend', 'u32']], [
    ['X', 'read', 'Word'], ['G', 'read', 'Word'], ['GAMMA', 'read', 'Word'], ['MEAN', 'read', 'f32'], ['RSTD', 'read', 'f32'], ['D', 'read', 'Word'], ['DX', 'rw', 'Word'],
  ], '', [SUM2], `
  let mean = MEAN[row];
  let rstd = RSTD[row];
  var acc = vec2<f32>(0.0);
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    let gy = G[k] * GAMMA[j];
    let xh = (X[k] - Word(mean)) * Word(rstd);
    acc += vec2<f32>(hsum(gy), hsum(gy * xh));
  }
  acc = rowSum2(lane, acc) / ${d};
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    let xh = (X[k] - Word(mean)) * Word(rstd);
    var dx = Word(rstd) * (G[k] * GAMMA[j] - Word(acc.x) - xh * Word(acc.y));
    if (u.addend != 0u) { dx += D[k]; }
    DX[k] = dx;
  }`);
}

/**
 * Partial column sums for dgamma (g * xhat) and dbeta (g): invocation (chunk, c) walks rows
 * [chunk * chunkRows, min(rows, (chunk + 1) * chunkRows)) of column vector c and writes
 * PG[chunk * cols + c], PB[chunk * cols + c]. `cols` counts Words (f32 or vec4<f32>) per row.
 */
function layerNormParamGradKernelBuild(vec4: boolean) {
  const word = vec4 ? 'vec4<f32>' : 'f32';
  return makeKernel(`layernorm.param-grad${vec4 ? '.vec4' : ''}`,
    [['rows', 'u32'], ['cols', 'u32'], ['chunkRows', 'u32'], ['n', 'u32']],
    [['X', 'read', 'Word'], ['G', 'read', 'Word'], ['MEAN', 'read', 'f32'], ['RSTD', 'read', 'f32'], ['PG', 'rw', 'Word'], ['PB', 'rw', 'Word']],
    {
      linear: LN_COL_WG,
      body: `  let c = i % u.cols;
  let chunk = i / u.cols;
  let r0 = chunk * u.chunkRows;
  let r1 = min(u.rows, r0 + u.chunkRows);
  var dg = Word(0.0);
  var db = Word(0.0);
  for (var r = r0; r < r1; r++) {
    let k = r * u.cols + c;
    let g = G[k];
    dg += g * (X[k] - Word(MEAN[r])) * Word(RSTD[r]);
    db += g;
  }
  PG[i] = dg;
  PB[i] = db;`,
    },
    { prelude: `alias Word = ${word};\n` },
  );
}

/**
 * L2 normalisation of each row (F.normalize): y = x / max(||x||, eps); saves ||x|| per row.
 * Works on strided rows too, so any axis is one kernel without a transpose.
 */
function l2NormalizeKernelBuild(spec: RowSpec) {
  return rowKernel('l2normalize', spec, [['eps', 'f32']], [['X', 'read', 'Word'], ['Y', 'rw', 'Word'], ['NRM', 'rw', 'f32']], '', [SUM_REDUCER()], `
  var ss = 0.0;
  for (var j = lane; j < u.len; j += STEP) {
    let v = X[at(base, j)];
    ss += hsum(v * v);
  }
  let nrm = sqrt(rowSum(lane, ss));
  if (lane == 0u) { NRM[row] = nrm; }
  let inv = 1.0 / max(nrm, u.eps);
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    Y[k] = X[k] * Word(inv);
  }`);
}

/**
 * Backward from the saved output y and norms: where ||x|| >= eps, dx = (g - y * (y . g)) / ||x||;
 * below eps the divisor is the constant eps, so dx = g / eps.
 */
function l2NormalizeBackwardKernelBuild(spec: RowSpec) {
  return rowKernel('l2normalize.backward', spec, [['eps', 'f32']], [['Y', 'read', 'Word'], ['NRM', 'read', 'f32'], ['G', 'read', 'Word'], ['DX', 'rw', 'Word']], '', [SUM_REDUCER()], `
  let nrm = NRM[row];
  let clamped = nrm < u.eps;
  var s = 0.0;
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    s += hsum(G[k] * Y[k]);
  }
  s = select(rowSum(lane, s), 0.0, clamped);
  let inv = 1.0 / max(nrm, u.eps);
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    DX[k] = (G[k] - Y[k] * Word(s)) * Word(inv);
  }`);
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const layerNormKernel = memoKernel(layerNormKernelBuild);
export const layerNormBackwardKernel = memoKernel(layerNormBackwardKernelBuild);
export const layerNormParamGradKernel = memoKernel(layerNormParamGradKernelBuild);
export const l2NormalizeKernel = memoKernel(l2NormalizeKernelBuild);
export const l2NormalizeBackwardKernel = memoKernel(l2NormalizeBackwardKernelBuild);
