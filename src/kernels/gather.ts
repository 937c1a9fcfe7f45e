/**
 * Row gather along one axis (index_select, embedding lookup) and its adjoint, scatter-add.
 * Tensors are viewed as [outer, axisLen, inner]; indices are i32 of length `nIdx`.
 *
 * Out-of-range indices (< 0 or >= axisLen) cannot be checked on the host without a readback,
 * so the kernels define them: gather writes a row of NaN (loud, rather than a silent clamp to
 * some other row), and scatter-add skips them.
 */
import { makeKernel, memoKernel } from './kernel.js';

export const GATHER_WG = 256;
/** A quiet NaN, passed as a uniform: a NaN constant expression is a WGSL compile error. */
export const NAN_BITS = 0x7fc00000;

/**
 * Y[o, j, q] = X[o, I[j], q]. `inner` is in units of the element type (vec4 when the host
 * found inner % 4 == 0); `chunks` = ceil(inner / ch); n = outer * nIdx * chunks.
 */
function gatherKernelBuild(vec4: boolean, ch: number) {
  const T = vec4 ? 'vec4<f32>' : 'f32';
  return makeKernel(
    `gather.rows${vec4 ? '.vec4' : ''}`,
    [['n', 'u32'], ['chunks', 'u32'], ['nIdx', 'u32'], ['axisLen', 'u32'], ['inner', 'u32'], ['nan', 'u32']],
    [['X', 'read', T], ['I', 'read', 'i32'], ['Y', 'rw', T]],
    {
      linear: GATHER_WG,
      index: 't',
      body: `  let row = t / u.chunks;
  let q0 = t % u.chunks;
  let j = row % u.nIdx;
  let o = row / u.nIdx;
  let idx = I[j];
  let dst = row * u.inner;
  if (idx < 0 || u32(idx) >= u.axisLen) {
    let bad = ${T}(bitcast<f32>(u.nan));
    for (var c = 0u; c < ${ch}u; c++) {
      let q = q0 + c * u.chunks;
      if (q >= u.inner) { break; }
      Y[dst + q] = bad;
    }
    return;
  }
  let src = (o * u.axisLen + u32(idx)) * u.inner;
  for (var c = 0u; c < ${ch}u; c++) {
    let q = q0 + c * u.chunks;
    if (q >= u.inner) { break; }
    Y[dst + q] = X[src + q];
  }`,
    },
  );
}

/**
 * Y[o, I[j], q] += G[o, j, q] for every j, with Y zeroed beforehand. Duplicate indices hit the
 * same words from different invocations; WGSL has no float atomicAdd, so the sum is a
 * compare-exchange loop on the word's bits (Y is bound as atomic<u32>). The order of the adds
 * is not fixed: results can differ in the last bits from run to run.
 */
function scatterAddKernelBuild(ch: number) {
  return makeKernel(
    'gather.scatter-add',
    [['n', 'u32'], ['chunks', 'u32'], ['nIdx', 'u32'], ['axisLen', 'u32'], ['inner', 'u32']],
    [['G', 'read', 'f32'], ['I', 'read', 'i32'], ['Y', 'rw', 'atomic<u32>']],
    {
      linear: GATHER_WG,
      index: 't',
      helpers: `fn atomicAddF32(i: u32, v: f32) {
  var old = atomicLoad(&Y[i]);
  loop {
    let r = atomicCompareExchangeWeak(&Y[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`,
      body: `  let row = t / u.chunks;
  let q0 = t % u.chunks;
  let j = row % u.nIdx;
  let o = row / u.nIdx;
  let idx = I[j];
  if (idx < 0 || u32(idx) >= u.axisLen) { return; }
  let src = row * u.inner;
  let dst = (o * u.axisLen + u32(idx)) * u.inner;
  for (var c = 0u; c < ${ch}u; c++) {
    let q = q0 + c * u.chunks;
    if (q >= u.inner) { break; }
    atomicAddF32(dst + q, G[src + q]);
  }`,
    },
  );
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const gatherKernel = memoKernel(gatherKernelBuild);
export const scatterAddKernel = memoKernel(scatterAddKernelBuild);
