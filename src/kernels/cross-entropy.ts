/**
 * Cross-entropy of logits [N, C] against integer targets [N]:
 * 1. a row kernel writes each row's loss lse - x[target] and its logsumexp (saved for backward);
 * 2. one workgroup folds the row losses into the mean over counted rows (fixed-order tree, so
 *    deterministic) and also writes the divisor, which backward reads from the GPU;
 * 3. backward writes dx = (softmax - onehot) * gradOut / divisor per row.
 *
 * Targets equal to `ignore` are skipped: loss 0, gradient 0, not counted. Any other target
 * outside [0, C) makes its row's loss NaN (and its gradient row NaN), so a bad label is loud
 * instead of silently reading a neighbour's logit.
 */
import { makeKernel, memoKernel } from './kernel.js';
import { rowKernel, REDUCE_WG, type RowSpec } from './reduce.js';
import { MAX_SUM_REDUCER, MAX_SUM_WGSL } from './softmax.js';

/** WGSL rejects a NaN constant, so the bits come in as a uniform (NAN_BITS). */
const NAN = 'bitcast<f32>(u.nanBits)';
export const NAN_BITS = 0x7fc00000;

function crossEntropyRowsKernelBuild(spec: RowSpec) {
  return rowKernel('cross-entropy', spec, [['classes', 'u32'], ['ignore', 'i32'], ['nanBits', 'u32']], [['X', 'read', 'Word'], ['TGT', 'read', 'i32'], ['LOSS', 'rw', 'f32'], ['LSE', 'rw', 'f32']], MAX_SUM_WGSL, [MAX_SUM_REDUCER], `
  var st = vec2<f32>(LOWEST, 0.0);
  for (var j = lane; j < u.len; j += STEP) {
    st = maxSumStep(st, X[at(base, j)]);
  }
  st = rowMaxSum(lane, st);
  if (lane != 0u) { return; }
  let lse = st.x + log(st.y);
  LSE[row] = lse;
  let t = TGT[row];
  if (t == u.ignore) {
    LOSS[row] = 0.0;
  } else if (t < 0 || u32(t) >= u.classes) {
    LOSS[row] = ${NAN};
  } else {
    let k = row * u.classes + u32(t);
    ${spec.vec4 ? 'let xt = X[k / 4u][k % 4u];' : 'let xt = X[k];'}
    LOSS[row] = lse - xt;
  }`);
}

/**
 * OUT[0] = sum of row losses / count (0 when no row counts); OUT[1] = the divisor backward
 * uses: count for 'mean', 1 for 'sum' (0 when nothing counts, so backward writes zeros).
 */
function crossEntropyReduceKernelBuild() {
  return makeKernel('cross-entropy.reduce', [['rows', 'u32'], ['ignore', 'i32'], ['mean', 'u32']], [['LOSS', 'read', 'f32'], ['TGT', 'read', 'i32'], ['OUT', 'rw', 'f32']], `var<workgroup> red: array<vec2<f32>, ${REDUCE_WG}>;
@compute @workgroup_size(${REDUCE_WG}) fn main(@builtin(local_invocation_index) lane: u32) {
  var acc = vec2<f32>(0.0);
  for (var r = lane; r < u.rows; r += ${REDUCE_WG}u) {
    if (TGT[r] != u.ignore) {
      acc += vec2<f32>(LOSS[r], 1.0);
    }
  }
  red[lane] = acc;
  workgroupBarrier();
  for (var k = ${REDUCE_WG / 2}u; k > 0u; k = k >> 1u) {
    if (lane < k) { red[lane] += red[lane + k]; }
    workgroupBarrier();
  }
  if (lane == 0u) {
    let s = red[0];
    let div = select(min(s.y, 1.0), s.y, u.mean == 1u);
    OUT[0] = select(0.0, s.x / div, div > 0.0);
    OUT[1] = div;
  }
}`);
}

/** dx = (exp(x - lse) - onehot(target)) * G[0] / STATS[1], zero on ignored rows. */
function crossEntropyBackwardKernelBuild(spec: RowSpec) {
  const onehot = spec.vec4
    ? 'Word(vec4<u32>(j * 4u) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(tu))'
    : 'Word(j == tu)';
  return rowKernel('cross-entropy.backward', spec, [['classes', 'u32'], ['ignore', 'i32'], ['nanBits', 'u32']], [['X', 'read', 'Word'], ['TGT', 'read', 'i32'], ['LSE', 'read', 'f32'], ['G', 'read', 'f32'], ['STATS', 'read', 'f32'], ['DX', 'rw', 'Word']], '', [], `
  let t = TGT[row];
  let div = STATS[1];
  var scale = select(0.0, G[0] / div, div > 0.0);
  if (t == u.ignore) {
    scale = 0.0;
  } else if (t < 0 || u32(t) >= u.classes) {
    scale = ${NAN};
  }
  let tu = u32(t);
  let lse = LSE[row];
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    DX[k] = (exp(X[k] - Word(lse)) - ${onehot}) * Word(scale);
  }`);
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const crossEntropyRowsKernel = memoKernel(crossEntropyRowsKernelBuild);
export const crossEntropyReduceKernel = memoKernel(crossEntropyReduceKernelBuild);
export const crossEntropyBackwardKernel = memoKernel(crossEntropyBackwardKernelBuild);
