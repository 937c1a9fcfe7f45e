/**
 * Data-movement kernels: a strided gather (permute, transpose, broadcast expand) and block
 * copies along one axis (slice, concat, pad). They copy 32-bit words, so f32, i32 and u32
 * share one pipeline and NaN payloads survive bit for bit.
 *
 * Every kernel has variants that move 16 bytes per access; the host picks one when the
 * extents and offsets along the contiguous run are multiples of 4. On lavapipe an access
 * costs about the same whatever its width, so fewer, wider accesses are the main lever.
 */
import { makeKernel, type Uniforms, memoKernel } from './kernel.js';

export const LAYOUT_WG = 256;
export const LAYOUT_MAX_RANK = 6;
const word = (vec4: boolean) => (vec4 ? 'vec4<u32>' : 'u32');

/**
 * How the strided copy moves words; the host picks the widest that the strides allow.
 * - `word`: one 4-byte load and store per element.
 * - `vec4`: the innermost run is contiguous in both tensors: 16-byte loads and stores.
 * - `vec4-store`: the output's last extent is a multiple of 4 but the input is strided along
 *   it: four loads feed one 16-byte store (e.g. [.., 64, 77] -> [.., 77, 64]; a broadcast of
 *   the last dim has stride 0 and splats).
 * - `vec4-load`: the input is contiguous along the output's second-to-last dim (a transpose
 *   of the last two dims): one 16-byte load feeds four output rows.
 */
export type StridedMode = 'word' | 'vec4' | 'vec4-store' | 'vec4-load';

const STRIDED_BODY: Record<StridedMode, { x: string; y: string; dst: string; copy: string }> = {
  word: { x: 'u32', y: 'u32', dst: 'row * u.inner', copy: 'Y[dst + j] = X[src + j * u.si];' },
  vec4: { x: 'vec4<u32>', y: 'vec4<u32>', dst: 'row * u.inner', copy: 'Y[dst + j] = X[src + j * u.si];' },
  'vec4-store': {
    x: 'u32', y: 'vec4<u32>', dst: 'row * u.inner',
    copy: 'let b = src + 4u * j * u.si;\n    Y[dst + j] = vec4<u32>(X[b], X[b + u.si], X[b + 2u * u.si], X[b + 3u * u.si]);',
  },
  'vec4-load': {
    x: 'vec4<u32>', y: 'u32', dst: 'row * 4u * u.inner',
    copy: 'let v = X[src + j * u.si];\n    Y[dst + j] = v.x;\n    Y[dst + u.inner + j] = v.y;\n    Y[dst + 2u * u.inner + j] = v.z;\n    Y[dst + 3u * u.inner + j] = v.w;',
  },
};

/** Row dims that need a division (all but the outermost of at most LAYOUT_MAX_RANK - 1). */
const DIVIDED = LAYOUT_MAX_RANK - 2;

/**
 * Y (row-major) = X read through strides (0 on broadcast dims). Permute passes the input's
 * strides in output order; expand passes 0 for broadcast dims. The uniforms come from
 * `stridedArgs`: `inner`/`si` are the last output dim's extent and input stride, r0.. and q0..
 * the other dims innermost first, `qo` the stride of the outermost one. Unrolled uniform
 * reads instead of a private array: dynamic indexing of a per-lane array is slow on lavapipe.
 */
function stridedCopyKernelBuild(mode: StridedMode, ch: number) {
  const b = STRIDED_BODY[mode];
  const fields: [StridedField, 'u32'][] = [['n', 'u32'], ['chunks', 'u32'], ['nr', 'u32'], ['inner', 'u32'], ['si', 'u32'], ['qo', 'u32']];
  let decompose = '';
  for (let k = 0; k < DIVIDED; k++) {
    fields.push([`r${k}`, 'u32'], [`q${k}`, 'u32']);
    decompose += `  if (u.nr > ${k + 1}u) { src += (rem % u.r${k}) * u.q${k}; rem = rem / u.r${k}; }\n`;
  }
  return makeKernel(
    `layout.strided.${mode}`,
    fields,
    [['X', 'read', b.x], ['Y', 'rw', b.y]],
    {
      linear: LAYOUT_WG,
      index: 't',
      body: `  let row = t / u.chunks;
  let j0 = t % u.chunks;
  var src = 0u;
  var rem = row;
${decompose}  src += rem * u.qo;
  let dst = ${b.dst};
  for (var c = 0u; c < ${ch}u; c++) {
    let j = j0 + c * u.chunks;
    if (j >= u.inner) { break; }
    ${b.copy}
  }`,
    },
  );
}

/**
 * Picks the widest mode for coalesced output extents `dims` and input strides `st` (in 4-byte
 * words; no dim of extent 1) and packs the uniforms. Returns the invocation count too.
 */
/** The strided copy's uniform fields: the fixed ones, then a dim `r{k}` and stride `q{k}` per divided row dim. */
export type StridedField = 'n' | 'chunks' | 'nr' | 'inner' | 'si' | 'qo' | `r${number}` | `q${number}`;

export function stridedArgs(dims: readonly number[], st: readonly number[], ch: number): { mode: StridedMode; n: number; uniforms: Uniforms<StridedField> } {
  const r = dims.length;
  if (r < 1 || r > LAYOUT_MAX_RANK) throw new Error(`stridedArgs: rank ${r} outside 1..${LAYOUT_MAX_RANK}`);
  const by4 = (skip: number) => st.every((v, i) => i === skip || v % 4 === 0);
  let mode: StridedMode = 'word';
  let d = dims.slice();
  let s = st.slice();
  if (st[r - 1] === 1 && dims[r - 1] % 4 === 0 && by4(r - 1)) {
    mode = 'vec4';
    d[r - 1] /= 4;
    s = s.map((v, i) => (i === r - 1 ? 1 : v / 4));
  } else if (r >= 2 && st[r - 2] === 1 && dims[r - 2] % 4 === 0 && by4(r - 2)) {
    // Units of 16 bytes on the input side; the output keeps 4-byte rows, four per step.
    mode = 'vec4-load';
    d[r - 2] /= 4;
    s = s.map((v, i) => (i === r - 2 ? 1 : v / 4));
  } else if (dims[r - 1] % 4 === 0) {
    mode = 'vec4-store';
    d[r - 1] /= 4;
  }
  const inner = d[r - 1];
  const chunks = Math.ceil(inner / ch);
  const rowDims = d.slice(0, r - 1).reverse();
  const rowStrides = s.slice(0, r - 1).reverse();
  const nr = rowDims.length;
  const rows = rowDims.reduce((a, v) => a * v, 1);
  const uniforms: Record<StridedField, number> = { n: rows * chunks, chunks, nr, inner, si: s[r - 1], qo: nr > 0 ? rowStrides[nr - 1] : 0 };
  for (let k = 0; k < DIVIDED; k++) {
    uniforms[`r${k}`] = rowDims[k] ?? 1;
    uniforms[`q${k}`] = rowStrides[k] ?? 0;
  }
  return { mode, n: rows * chunks, uniforms };
}

/**
 * Copies a block of `block` words from each of `outer` rows: X[o * srcRow + srcOff + p] ->
 * Y[o * dstRow + dstOff + p]. With a tensor viewed as [outer, axisLen, inner] and a range
 * [a, b) of the axis, block = (b - a) * inner, row = axisLen * inner, offset = a * inner.
 * Slice reads a block out of a larger row; concat writes each input into its part of a row.
 * Each invocation copies up to `ch` words of one block (interleaved by `chunks`, as above).
 */
function blockCopyKernelBuild(vec4: boolean, ch: number) {
  const T = word(vec4);
  return makeKernel(
    `layout.block${vec4 ? '.vec4' : ''}`,
    [['n', 'u32'], ['chunks', 'u32'], ['block', 'u32'], ['srcRow', 'u32'], ['srcOff', 'u32'], ['dstRow', 'u32'], ['dstOff', 'u32']],
    [['X', 'read', T], ['Y', 'rw', T]],
    {
      linear: LAYOUT_WG,
      index: 't',
      body: `  let o = t / u.chunks;
  let p0 = t % u.chunks;
  let src = o * u.srcRow + u.srcOff;
  let dst = o * u.dstRow + u.dstOff;
  for (var c = 0u; c < ${ch}u; c++) {
    let p = p0 + c * u.chunks;
    if (p >= u.block) { break; }
    Y[dst + p] = X[src + p];
  }`,
    },
  );
}

/**
 * Zero padding along one axis in a single pass (no separate fill): every word of Y (rows of
 * `dstRow`) is written, with X's rows (of `block` words) placed at `off` and zeros elsewhere.
 * Serves pad and the backward of slice. Up to `ch` words per invocation, interleaved.
 */
function padKernelBuild(vec4: boolean, ch: number) {
  const T = word(vec4);
  return makeKernel(
    `layout.pad${vec4 ? '.vec4' : ''}`,
    [['n', 'u32'], ['chunks', 'u32'], ['block', 'u32'], ['dstRow', 'u32'], ['off', 'u32']],
    [['X', 'read', T], ['Y', 'rw', T]],
    {
      linear: LAYOUT_WG,
      index: 't',
      body: `  let o = t / u.chunks;
  let p0 = t % u.chunks;
  let src = o * u.block;
  let dst = o * u.dstRow;
  for (var c = 0u; c < ${ch}u; c++) {
    let p = p0 + c * u.chunks;
    if (p >= u.dstRow) { break; }
    var v = ${T}(0u);
    if (p >= u.off && p - u.off < u.block) {
      v = X[src + p - u.off];
    }
    Y[dst + p] = v;
  }`,
    },
  );
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const stridedCopyKernel = memoKernel(stridedCopyKernelBuild);
export const blockCopyKernel = memoKernel(blockCopyKernelBuild);
export const padKernel = memoKernel(padKernelBuild);
