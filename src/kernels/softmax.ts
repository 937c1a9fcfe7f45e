/**
 * Softmax and log-softmax over the last dim, forward and backward, as row kernels (see
 * rowKernel in reduce.ts for the 'lane' / 'workgroup' variants).
 *
 * The forward reads each row twice: an online pass keeps the running max m and the sum of
 * exp(x - m), rescaling the sum when m grows (once per vector, not per element), then a pass
 * writes the output. Lanes merge their (m, s) pairs with the same rescaling rule.
 */
import { memoKernel, type StorageBinding } from './kernel.js';
import { rowKernel, SUM_REDUCER, type RowReducer, type RowSpec } from './reduce.js';

export type SoftmaxKind = 'softmax' | 'log_softmax';

/** Merges two (max, sum of exp(x - max)) pairs. LOWEST (not -inf) keeps empty lanes NaN-free. */
export const MAX_SUM_REDUCER: RowReducer = {
  name: 'rowMaxSum',
  type: 'vec2<f32>',
  combine: 'maxSum(a, b)',
};

/** WGSL: the online max / sum-of-exp step and merge. Expects `Word`, hmax, hsum in scope. */
export const MAX_SUM_WGSL = `
fn maxSum(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
fn maxSumStep(st: vec2<f32>, v: Word) -> vec2<f32> {
  let m = max(st.x, hmax(v));
  return vec2<f32>(m, st.y * exp(st.x - m) + hsum(exp(v - Word(m))));
}
`;

const IO = (inputs: string[], output: string): StorageBinding[] => [...inputs.map((n) => [n, 'read', 'Word'] as const), [output, 'rw', 'Word']];

function softmaxKernelBuild(kind: SoftmaxKind, spec: RowSpec) {
  const out = kind === 'softmax' ? 'exp(X[k] - Word(m)) * inv' : 'X[k] - Word(m + lg)';
  return rowKernel(`${kind}`, spec, [], IO(['X'], 'Y'), MAX_SUM_WGSL, [MAX_SUM_REDUCER], `
  var st = vec2<f32>(LOWEST, 0.0);
  for (var j = lane; j < u.len; j += STEP) {
    st = maxSumStep(st, X[at(base, j)]);
  }
  st = rowMaxSum(lane, st);
  let m = st.x;
  let inv = 1.0 / st.y;
  let lg = log(st.y);
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    Y[k] = ${out};
  }`);
}

/**
 * Backward from the saved output Y and the incoming gradient G:
 * softmax: dx = y * (g - sum(g * y)); log-softmax: dx = g - exp(y) * sum(g).
 */
function softmaxBackwardKernelBuild(kind: SoftmaxKind, spec: RowSpec) {
  const acc = kind === 'softmax' ? 'hsum(G[k] * Y[k])' : 'hsum(G[k])';
  const out = kind === 'softmax' ? 'Y[k] * (G[k] - Word(s))' : 'G[k] - exp(Y[k]) * Word(s)';
  return rowKernel(`${kind}.backward`, spec, [], IO(['Y', 'G'], 'DX'), '', [SUM_REDUCER()], `
  var s = 0.0;
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    s += ${acc};
  }
  s = rowSum(lane, s);
  for (var j = lane; j < u.len; j += STEP) {
    let k = at(base, j);
    DX[k] = ${out};
  }`);
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const softmaxKernel = memoKernel(softmaxKernelBuild);
export const softmaxBackwardKernel = memoKernel(softmaxBackwardKernelBuild);
