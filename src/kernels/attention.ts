/**
 * Fused multi-head attention: online-softmax forward and FlashAttention-2 style recomputing
 * backward. No kernel writes a Tq x Tk matrix: each invocation owns one row (a query row for
 * the forward and dQ, a key row for dK/dV), keeps it and its accumulators in registers, and
 * streams the rows of the other side.
 *
 * Layout: q, k, v, o and their gradients are rows of D values; the row of (b, h, t) sits at
 * `base + b * bs + h * hs + t * js` (uniforms per side: q/o/dO and k/v), so [B, H, T, D],
 * token-major [B, T, H, D] (what a [.., H * D] projection writes: no head split/merge copies)
 * and a segment of a packed varlen batch are the same kernel. `lse` (and the backward's row
 * terms) are indexed by the q row's memory row, so the row-term kernel stays elementwise. The
 * optional key padding mask is [B, Tk] words (nonzero = attend). A workgroup is a block of
 * consecutive rows of one (b, h), so all its invocations want the same streamed row at once.
 *
 * How streamed rows reach the lanes:
 * - `register` (CPU adapters): no workgroup memory, no barriers. lavapipe turns every storage
 *   load inside a loop into a per-lane scalar loop, even when the address is uniform. With a
 *   fixed subgroup size `sg`, lane l loads vec4s l, l + sg, ... of a block of BK streamed rows
 *   and `subgroupBroadcast` hands them to the other lanes: one load per element instead of sg.
 *   Without subgroups every lane loads every streamed element (correct, 5-6x slower).
 * - `tiled` (GPUs): the workgroup stages a tile of streamed rows in workgroup memory behind
 *   barriers; lanes read it from there.
 * Masks are applied with select, never by branching around loads, so control flow around
 * subgroup operations and barriers stays uniform.
 *
 * Head dim: rows are arrays of vec4 sized for a tier (4, 8, 16 or 32 vec4, up to
 * ATTN_MAX_HEAD_DIM), so the hot loops can be unrolled with constant indices (`unrolled` in
 * attention-stream.ts); the actual head dim travels in a uniform and slots past it hold zeros.
 *
 * Files: attention-variant.ts picks the kernel shape, attention-stream.ts generates the shared
 * WGSL (loaders, prologue, streaming loop), this file holds the uniforms and the four kernels.
 */
import { makeKernel, type StorageBinding, type UniformType, memoKernel } from './kernel.js';
import { attnRowsPerGroup, attnVariantName, lines, per, range, stepRows, type AttnVariant } from './attention-variant.js';
import { MASK, QKVM, loadRow, prologue, rowBinding, rowLoader, storeRow, streamLoop, tileDecls } from './attention-stream.js';

export {
  ATTN_IMPLS, ATTN_MAX_HEAD_DIM, attnRowsPerGroup, attnSubgroupOk, attnVariant, attnVariantName,
  type AttnImpl, type AttnImplTraits, type AttnVariant,
} from './attention-variant.js';

const NEG = '-3.0e38';

/** Uniforms shared by the forward and both backward kernels (dispatch packs them by name). */
export const ATTN_UNIFORMS = [
  // rs: row stride in bound elements (D / 4 for vec4 rows, else D); nv: vec4 slots used, ceil(D / 4).
  ['bh', 'u32'], ['heads', 'u32'], ['tq', 'u32'], ['tk', 'u32'], ['d', 'u32'], ['rs', 'u32'], ['nv', 'u32'],
  ['scale', 'f32'], ['causal', 'u32'], ['hasMask', 'u32'], ['maskFloat', 'u32'],
  // Row addresses (in rows of D): q side (q, o, dO, lse) and k side (k, v): base, batch, head and time strides.
  ['qb', 'u32'], ['qbs', 'u32'], ['qhs', 'u32'], ['qjs', 'u32'], ['kb', 'u32'], ['kbs', 'u32'], ['khs', 'u32'], ['kjs', 'u32'],
] as const satisfies readonly (readonly [string, UniformType])[];
export type AttnField = (typeof ATTN_UNIFORMS)[number][0];

function finish(v: AttnVariant, name: string, bindings: readonly StorageBinding[], body: string) {
  return makeKernel(`${name}.${attnVariantName(v)}`, ATTN_UNIFORMS, bindings, body, { enables: v.subgroup > 0 ? ['subgroups'] : [] });
}

/**
 * Forward: O = softmax(scale * Q K^T + masks) V per (b, h), and lse = log-sum-exp of each row's
 * masked scaled scores (0 for a row whose every key is masked; such a row outputs zeros).
 * Bindings: Q, K, V, M (mask words; any buffer when hasMask = 0), O, L.
 */
function attentionForwardKernelBuild(v: AttnVariant) {
  const bk = stepRows(v);
  const ks = range(bk);
  const loop = streamLoop(v, {
    names: ['K', 'V'],
    scalars: false,
    rowBase: 'kRow0',
    rowStep: 'u.kjs',
    last: 'u.tk - 1u',
    begin: '0u',
    end: 'kEnd',
    step: (kk, o) => `    let km${kk} = (j${kk} < kEnd) & keyOk(b, jc${kk});
${per(v, (x) => `    let ok${kk}${x} = km${kk} & ((u.causal == 0u) | (j${kk} <= r${x}));`)}
${o.dot(`t${kk}`, 'q', 'K', kk)}
${per(v, (x) => `    let s${kk}${x} = select(${NEG}, t${kk}${x}, ok${kk}${x});`)}`,
    // One rescale per step: the running max moves at most once per BK keys.
    post: (o) => `${per(v, (x) => `    let bm${x} = max(m${x}, ${ks.map((kk) => `s${kk}${x}`).reduce((acc, y) => `max(${acc}, ${y})`)});
    let corr${x} = exp(m${x} - bm${x});
${lines(bk, (kk) => `    let p${kk}${x} = select(0.0, exp(s${kk}${x} - bm${x}), ok${kk}${x});`)}
    l${x} = l${x} * corr${x} + ${ks.map((kk) => `p${kk}${x}`).join(' + ')};
    m${x} = bm${x};`)}
${o.accum('acc', 'corr', ks.map((kk) => [`p${kk}`, 'V', kk]))}`,
  });
  const body = `${rowLoader(v, 'Q')}${rowLoader(v, 'K')}${rowLoader(v, 'V')}${tileDecls(v, ['K', 'V'], false)}${MASK}
${prologue(v, 'u.tq')}
${per(v, (x) => `  let qRow${x} = u.qb + b * u.qbs + hI * u.qhs + rc${x} * u.qjs;
  var q${x}: array<vec4<f32>, ${v.d4}>;
${loadRow(v, `q${x}`, 'Q', `qRow${x}`, 'u.scale')}
  var acc${x}: array<vec4<f32>, ${v.d4}>;
  var m${x} = ${NEG};
  var l${x} = 0.0;`)}
  let kRow0 = u.kb + b * u.kbs + hI * u.khs;
  // Causal: no row of this block attends past the block's last row.
  let kEnd = select(u.tk, min(u.tk, r0 + ${attnRowsPerGroup(v)}u), u.causal != 0u);
${loop}
${per(v, (x) => `  if (r${x} < u.tq) {
    let inv = select(0.0, 1.0 / l${x}, l${x} > 0.0);
${storeRow(v, 'O', `qRow${x}`, `acc${x}`, 'inv')}
    L[qRow${x}] = select(0.0, m${x} + log(l${x}), l${x} > 0.0);
  }`)}
}`;
  return finish(v, 'attention.forward', [...QKVM(v), rowBinding(v, 'O', 'rw'), ['L', 'rw', 'f32']], body);
}

/**
 * Backward prologue: LD[row] = (lse_row, D_row) with D_row = dot(dO_row, O_row) (the
 * FlashAttention-2 row term), packed so each backward kernel binds one buffer for both.
 * Bindings: O, dO, L, LD. Uniforms: n (rows), d, rs, nv.
 */
function attentionRowTermKernelBuild(v: AttnVariant) {
  const WG = 64;
  return makeKernel(`attention.backward.rowterm`, [['n', 'u32'], ['d', 'u32'], ['rs', 'u32'], ['nv', 'u32']],
    [rowBinding(v, 'O', 'read'), rowBinding(v, 'dO', 'read'), ['L', 'read', 'f32'], ['LD', 'rw', 'vec2<f32>']], {
      linear: WG,
      helpers: rowLoader(v, 'O') + rowLoader(v, 'dO'),
      body: `  var s = 0.0;
  // A uniform bound: a constant one gets unrolled into seconds of lavapipe compile time.
  for (var c = 0u; c < u.nv; c++) { s += dot(ld_O(i, c), ld_dO(i, c)); }
  LD[i] = vec2<f32>(L[i], s);`,
    });
}

/**
 * dQ: one invocation per query row, streaming K and V. dQ_i = scale * sum_j dS_ij k_j with
 * p_ij = exp(s_ij - lse_i) and dS_ij = p_ij (dO_i . v_j - D_i).
 * Bindings: Q, K, V, M, dO, LD, dQ.
 */
function attentionBackwardQKernelBuild(v: AttnVariant) {
  const ks = range(stepRows(v));
  const loop = streamLoop(v, {
    names: ['K', 'V'],
    scalars: false,
    rowBase: 'kRow0',
    rowStep: 'u.kjs',
    last: 'u.tk - 1u',
    begin: '0u',
    end: 'kEnd',
    step: (kk, o) => `    let km${kk} = (j${kk} < kEnd) & keyOk(b, jc${kk});
${o.dot(`s${kk}`, 'q', 'K', kk)}
${o.dot(`dp${kk}`, 'g', 'V', kk)}
${per(v, (x) => `    let ok${kk}${x} = km${kk} & ((u.causal == 0u) | (j${kk} <= r${x}));
    let p${kk}${x} = select(0.0, exp(s${kk}${x} - ld${x}.x), ok${kk}${x});
    let ds${kk}${x} = p${kk}${x} * (dp${kk}${x} - ld${x}.y);`)}`,
    post: (o) => o.accum('dq', null, ks.map((kk) => [`ds${kk}`, 'K', kk])),
  });
  const body = `${rowLoader(v, 'Q')}${rowLoader(v, 'K')}${rowLoader(v, 'V')}${rowLoader(v, 'dO')}${tileDecls(v, ['K', 'V'], false)}${MASK}
${prologue(v, 'u.tq')}
${per(v, (x) => `  let qRow${x} = u.qb + b * u.qbs + hI * u.qhs + rc${x} * u.qjs;
  var q${x}: array<vec4<f32>, ${v.d4}>;
  var g${x}: array<vec4<f32>, ${v.d4}>;
${loadRow(v, `q${x}`, 'Q', `qRow${x}`, 'u.scale')}
${loadRow(v, `g${x}`, 'dO', `qRow${x}`, '1.0')}
  let ld${x} = LD[qRow${x}];
  var dq${x}: array<vec4<f32>, ${v.d4}>;`)}
  let kRow0 = u.kb + b * u.kbs + hI * u.khs;
  let kEnd = select(u.tk, min(u.tk, r0 + ${attnRowsPerGroup(v)}u), u.causal != 0u);
${loop}
${per(v, (x) => `  if (r${x} < u.tq) {
${storeRow(v, 'dQ', `qRow${x}`, `dq${x}`, 'u.scale')}
  }`)}
}`;
  return finish(v, 'attention.backward.dq', [...QKVM(v), rowBinding(v, 'dO', 'read'), ['LD', 'read', 'vec2<f32>'], rowBinding(v, 'dQ', 'rw')], body);
}

/**
 * dK, dV: one invocation per key row, streaming Q, dO and (lse, D). dV_j = sum_i p_ij dO_i and
 * dK_j = scale * sum_i dS_ij q_i. A masked key's rows stay zero.
 * Bindings: Q, K, V, M, dO, LD, dK, dV.
 */
function attentionBackwardKVKernelBuild(v: AttnVariant) {
  const ks = range(stepRows(v));
  const loop = streamLoop(v, {
    names: ['Q', 'dO'],
    scalars: true,
    rowBase: 'qRow0',
    rowStep: 'u.qjs',
    last: 'u.tq - 1u',
    begin: 'iBegin',
    end: 'u.tq',
    // Here j indexes query rows and r{x} are this lane's key rows.
    step: (kk, o) => `    let ld${kk} = ${o.scalar(kk)};
${o.dot(`s${kk}`, 'ks', 'Q', kk)}
${o.dot(`dp${kk}`, 'vr', 'dO', kk)}
${per(v, (x) => `    let ok${kk}${x} = (j${kk} < u.tq) & kOk${x} & ((u.causal == 0u) | (r${x} <= j${kk}));
    let p${kk}${x} = select(0.0, exp(s${kk}${x} - ld${kk}.x), ok${kk}${x});
    let ds${kk}${x} = p${kk}${x} * (dp${kk}${x} - ld${kk}.y);`)}`,
    post: (o) => `${o.accum('dv', null, ks.map((kk) => [`p${kk}`, 'dO', kk]))}
${o.accum('dk', null, ks.map((kk) => [`ds${kk}`, 'Q', kk]))}`,
  });
  const body = `${rowLoader(v, 'Q')}${rowLoader(v, 'K')}${rowLoader(v, 'V')}${rowLoader(v, 'dO')}${tileDecls(v, ['Q', 'dO'], true)}${MASK}
${prologue(v, 'u.tk')}
${per(v, (x) => `  let kRow${x} = u.kb + b * u.kbs + hI * u.khs + rc${x} * u.kjs;
  var ks${x}: array<vec4<f32>, ${v.d4}>;
  var vr${x}: array<vec4<f32>, ${v.d4}>;
${loadRow(v, `ks${x}`, 'K', `kRow${x}`, 'u.scale')}
${loadRow(v, `vr${x}`, 'V', `kRow${x}`, '1.0')}
  let kOk${x} = keyOk(b, rc${x});
  var dk${x}: array<vec4<f32>, ${v.d4}>;
  var dv${x}: array<vec4<f32>, ${v.d4}>;`)}
  let qRow0 = u.qb + b * u.qbs + hI * u.qhs;
  // Causal: no query row before the block's first key sees any key of the block.
  let iBegin = select(0u, min(r0, u.tq), u.causal != 0u);
${loop}
${per(v, (x) => `  if (r${x} < u.tk) {
${storeRow(v, 'dK', `kRow${x}`, `dk${x}`, 'u.scale')}
${storeRow(v, 'dV', `kRow${x}`, `dv${x}`, '1.0')}
  }`)}
}`;
  return finish(v, 'attention.backward.dkv',
    [...QKVM(v), rowBinding(v, 'dO', 'read'), ['LD', 'read', 'vec2<f32>'], rowBinding(v, 'dK', 'rw'), rowBinding(v, 'dV', 'rw')], body);
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const attentionForwardKernel = memoKernel(attentionForwardKernelBuild);
export const attentionRowTermKernel = memoKernel(attentionRowTermKernelBuild);
export const attentionBackwardQKernel = memoKernel(attentionBackwardQKernelBuild);
export const attentionBackwardKVKernel = memoKernel(attentionBackwardKVKernelBuild);
