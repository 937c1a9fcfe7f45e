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
 * ATTN_MAX_HEAD_DIM), so the hot loops can be unrolled with constant indices (see `unrolled`);
 * the actual head dim travels in a uniform and slots past it hold zeros.
 */
import { makeKernel, type StorageBinding, type UniformType, memoKernel } from './kernel.js';

export const ATTN_MAX_HEAD_DIM = 128;
const TIERS = [4, 8, 16, 32];
const NEG = '-3.0e38';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const lines = (n: number, f: (i: number) => string) => range(n).map(f).join('\n');

export type AttnImpl = 'register' | 'tiled';

/**
 * What distinguishes an implementation; the code generators below ask these, not the name, so a
 * new AttnImpl does not compile until it states them here.
 */
export interface AttnImplTraits {
  /** Invocations per workgroup (a subgroup's size when one shares the streamed rows). */
  lanes(subgroup: number): number;
  /** The label in kernel names and benchmark notes. */
  label(subgroup: number): string;
  /**
   * Streamed rows go through workgroup-memory tiles (GPUs), and the lane's own rows stay
   * unrolled in registers; otherwise they are streamed from storage, in registers or through
   * subgroup broadcasts (CPU adapters: no barriers, no workgroup memory).
   */
  tiles: boolean;
  /** May share streamed rows through subgroupBroadcast. */
  subgroups: boolean;
}

export const ATTN_IMPLS: { readonly [I in AttnImpl]: AttnImplTraits } = {
  register: {
    lanes: (sg) => (sg > 0 ? sg : 8),
    label: (sg) => (sg > 0 ? `register.sg${sg}` : 'register'),
    tiles: false,
    subgroups: true,
  },
  tiled: {
    lanes: () => 32,
    label: () => 'tiled',
    tiles: true,
    subgroups: false,
  },
};

export interface AttnVariant {
  impl: AttnImpl;
  /** vec4 slots per row (head dim rounded up to a tier). */
  d4: number;
  /** Rows stored as vec4 (head dim a multiple of 4); otherwise scalar loads. */
  vec4: boolean;
  /** register only: subgroup size that shares streamed rows through subgroupBroadcast; 0 = none. */
  subgroup: number;
  /**
   * Own rows per invocation (row sets r0 + set * lanes + lane). Two rows per lane use each
   * broadcast streamed element twice, halving the loads per row, the dominant cost on lavapipe
   * (10-20 % faster at 32x8x77x64); four spill more and are slower again.
   */
  rows: number;
}

/**
 * Streamed rows per step. On lavapipe, 1 (or the fewest that fill a subgroup's loads) is
 * fastest: more rows per step add live registers to an invocation that already spills (D = 64:
 * 2 x 16 vec4 of row state), and compile time grows faster than linearly with the step. The
 * subgroup variant needs BK * d4 to be a multiple of the subgroup size.
 */
function stepRows(v: AttnVariant): number {
  if (v.subgroup > 0) return Math.max(1, v.subgroup / v.d4);
  return 2;
}

export function attnVariant(impl: AttnImpl, headDim: number, subgroup = 0, rows?: number): AttnVariant {
  const d4 = TIERS.find((t) => t * 4 >= headDim);
  if (d4 === undefined) throw new Error(`attention: head dim ${headDim} above ${ATTN_MAX_HEAD_DIM}`);
  const v = { impl, d4, vec4: headDim % 4 === 0, subgroup: ATTN_IMPLS[impl].subgroups ? subgroup : 0, rows: 1 };
  if (v.subgroup > 0 && (stepRows(v) * d4) % v.subgroup !== 0) v.subgroup = 0;
  v.rows = rows ?? (v.subgroup > 0 ? 2 : 1);
  return v;
}

/** Whether the register variant can share loads through subgroups of this (fixed) size. */
export function attnSubgroupOk(size: number): boolean {
  return size === 4 || size === 8 || size === 16;
}

/** e.g. 'register.sg8', for kernel labels and benchmark notes. */
export function attnVariantName(v: AttnVariant): string {
  return ATTN_IMPLS[v.impl].label(v.subgroup);
}

/** Invocations per workgroup. Small on CPUs: fewer idle rows and a tighter causal range. */
function lanes(v: AttnVariant): number {
  return ATTN_IMPLS[v.impl].lanes(v.subgroup);
}

/** Own rows per workgroup. */
export function attnRowsPerGroup(v: AttnVariant): number {
  return lanes(v) * v.rows;
}

/** One line per own row set, `f` given the row suffix (`_0`, `_1`, ...). */
const per = (v: AttnVariant, f: (x: string) => string) => range(v.rows).map((i) => f(`_${i}`)).join('\n');

/**
 * Streamed rows per workgroup-memory tile: two tiles of vec4 rows plus the (lse, D) tile fit
 * in the 16 KiB every adapter offers; a multiple of the step rows.
 */
function tileRows(v: AttnVariant): number {
  return Math.min(32, Math.floor(448 / v.d4 / 2) * 2);
}

/** Uniforms shared by the forward and both backward kernels (dispatch packs them by name). */
export const ATTN_UNIFORMS = [
  // rs: row stride in bound elements (D / 4 for vec4 rows, else D); nv: vec4 slots used, ceil(D / 4).
  ['bh', 'u32'], ['heads', 'u32'], ['tq', 'u32'], ['tk', 'u32'], ['d', 'u32'], ['rs', 'u32'], ['nv', 'u32'],
  ['scale', 'f32'], ['causal', 'u32'], ['hasMask', 'u32'], ['maskFloat', 'u32'],
  // Row addresses (in rows of D): q side (q, o, dO, lse) and k side (k, v): base, batch, head and time strides.
  ['qb', 'u32'], ['qbs', 'u32'], ['qhs', 'u32'], ['qjs', 'u32'], ['kb', 'u32'], ['kbs', 'u32'], ['khs', 'u32'], ['kjs', 'u32'],
] as const satisfies readonly (readonly [string, UniformType])[];
export type AttnField = (typeof ATTN_UNIFORMS)[number][0];

/** The binding of a [rows, D] operand (vec4 rows when the variant has them). */
function rowBinding(v: AttnVariant, name: string, access: 'read' | 'rw'): StorageBinding {
  return [name, access, v.vec4 ? 'vec4<f32>' : 'f32'];
}

/** The `ld_X(row, c) -> vec4` loader of a row operand (zeros past D). */
function rowLoader(v: AttnVariant, name: string): string {
  if (v.vec4) {
    return `fn ld_${name}(row: u32, c: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), ${name}[row * u.rs + min(c, u.rs - 1u)], c < u.rs);
}
`;
  }
  const comp = (t: number) => `select(0.0, ${name}[b + min(c4 + ${t}u, u.d - 1u)], c4 + ${t}u < u.d)`;
  return `fn ld_${name}(row: u32, c: u32) -> vec4<f32> {
  let b = row * u.d;
  let c4 = c * 4u;
  return vec4<f32>(${range(4).map(comp).join(', ')});
}
`;
}

/**
 * Whether the streamed loop's head-dim loops are unrolled over the tier with constant indices
 * (tiled; register with subgroups) or run to the uniform `nv` (register without subgroups,
 * whose per-lane loads of every streamed element would otherwise make a huge shader that
 * lavapipe takes tens of seconds to compile).
 */
const unrolled = (v: AttnVariant) => ATTN_IMPLS[v.impl].tiles || v.subgroup > 0;
const tiles = (v: AttnVariant) => ATTN_IMPLS[v.impl].tiles;

/**
 * Loads / stores of this lane's own rows. On CPU adapters they are loops over the uniform `nv`:
 * each per-lane vec4 access is a branchy 8-lane loop in lavapipe's code, and unrolling them
 * costs seconds of compile time for nothing (they run once per invocation). The arrays then
 * live in stack memory, where the hot loop's constant-index accesses are plain loads. GPUs keep
 * them unrolled so the arrays stay in registers.
 */
function loadRow(v: AttnVariant, arr: string, name: string, row: string, factor: string): string {
  if (tiles(v)) return lines(v.d4, (c) => `  ${arr}[${c}] = ld_${name}(${row}, ${c}u) * ${factor};`);
  return `  for (var c = 0u; c < u.nv; c++) { ${arr}[c] = ld_${name}(${row}, c) * ${factor}; }`;
}

function storeRow(v: AttnVariant, name: string, row: string, arr: string, factor: string): string {
  if (v.vec4) {
    if (tiles(v)) return lines(v.d4, (c) => `    if (${c}u < u.rs) { ${name}[${row} * u.rs + ${c}u] = ${arr}[${c}] * ${factor}; }`);
    return `    for (var c = 0u; c < u.nv; c++) { ${name}[${row} * u.rs + c] = ${arr}[c] * ${factor}; }`;
  }
  if (tiles(v)) {
    return lines(v.d4 * 4, (e) => `    if (${e}u < u.d) { ${name}[${row} * u.d + ${e}u] = ${arr}[${e >> 2}][${e & 3}] * ${factor}; }`);
  }
  return `    for (var e = 0u; e < u.d; e++) { ${name}[${row} * u.d + e] = ${arr}[e / 4u][e % 4u] * ${factor}; }`;
}

const MASK = `
fn keyOk(b: u32, j: u32) -> bool {
  let w = M[b * u.tk + j];
  let nz = select(w != 0u, (w & 0x7fffffffu) != 0u, u.maskFloat != 0u);
  return (u.hasMask == 0u) | nz;
}
`;

/** Reads vec4 `c` (a constant or the WGSL loop variable `c`) of streamed row jb + kk of `name`. */
type Getter = (name: string, kk: number, c: number | 'c') => string;

/**
 * Statement builders over the head dim for one streamed step. Names are prefixes: for own row
 * set x, `arr` means arr{x}, `target` target{x}, `keep` keep{x} and a term's `coef` coef{x}.
 * Each streamed vec4 is read once and used by every row set.
 */
interface Ops {
  /** var target = sum_c dot(arr[c], name_kk[c]). */
  dot(target: string, arr: string, name: string, kk: number): string;
  /** For every slot c: arr[c] = arr[c] * keep + sum coef * name_kk[c] over `terms`. */
  accum(arr: string, keep: string | null, terms: [string, string, number][]): string;
  /** The streamed row's (lse, D) pair, for streams with scalars. */
  scalar(kk: number): string;
}

function makeOps(v: AttnVariant, get: Getter, scalar: (kk: number) => string, indent: string): Ops {
  const xs = range(v.rows).map((i) => `_${i}`);
  const dotBody = (t: string, arr: string, name: string, kk: number, c: string) =>
    `let x = ${get(name, kk, c === 'c' ? 'c' : Number(c))};${xs.map((x) => ` ${t}${x} += dot(${arr}${x}[${c}], x);`).join('')}`;
  const accBody = (arr: string, keep: string | null, terms: [string, string, number][], c: string) =>
    terms.map(([, name, kk], i) => `let x${i} = ${get(name, kk, c === 'c' ? 'c' : Number(c))};`).join(' ') +
    xs.map((x) => ` ${arr}${x}[${c}] = ${keep ? `${arr}${x}[${c}] * ${keep}${x}` : `${arr}${x}[${c}]`} + ${
      terms.map(([coef], i) => `${coef}${x} * x${i}`).join(' + ')};`).join('');
  const decl = (t: string) => xs.map((x) => `${indent}var ${t}${x} = 0.0;`).join('\n');
  if (unrolled(v)) {
    return {
      dot: (t, arr, name, kk) => `${decl(t)}\n${lines(v.d4, (c) => `${indent}{ ${dotBody(t, arr, name, kk, String(c))} }`)}`,
      accum: (arr, keep, terms) => lines(v.d4, (c) => `${indent}{ ${accBody(arr, keep, terms, String(c))} }`),
      scalar,
    };
  }
  return {
    dot: (t, arr, name, kk) => `${decl(t)}\n${indent}for (var c = 0u; c < u.nv; c++) { ${dotBody(t, arr, name, kk, 'c')} }`,
    accum: (arr, keep, terms) => `${indent}for (var c = 0u; c < u.nv; c++) { ${accBody(arr, keep, terms, 'c')} }`,
    scalar,
  };
}

/**
 * The streaming loop over rows j in [begin, end) (uniform expressions) of the [rows, D]
 * operands `names`, BK rows per step, with `scalars`: the per-row vec2 `LD` too. `step(kk)`
 * emits the statements for row j{kk} = jb + kk (clamped: jc{kk}); `post` runs once per step.
 */
interface Stream {
  names: string[];
  scalars: boolean;
  rowBase: string;
  /** Memory rows between consecutive streamed rows (a uniform). */
  rowStep: string;
  last: string;
  begin: string;
  end: string;
  step: (kk: number, o: Ops) => string;
  post: (o: Ops) => string;
}

function streamLoop(v: AttnVariant, s: Stream): string {
  const wg = lanes(v);
  const bk = stepRows(v);
  const body = (get: Getter, sc: (kk: number) => string, indent: string) => {
    const o = makeOps(v, get, sc, indent);
    return `${lines(bk, (kk) => `${indent}let j${kk} = jb + ${kk}u;\n${indent}let jc${kk} = min(j${kk}, ${s.last});`)}
${lines(bk, (kk) => s.step(kk, o))}
${s.post(o)}`;
  };
  const cs = (c: number | 'c') => (c === 'c' ? 'c' : `${c}u`);
  const at = (j: string) => `${s.rowBase} + ${j} * ${s.rowStep}`;
  if (!tiles(v) && v.subgroup === 0) {
    const get: Getter = (name, kk, c) => `ld_${name}(${at(`jc${kk}`)}, ${cs(c)})`;
    const sc = (kk: number) => `LD[${at(`jc${kk}`)}]`;
    return `  for (var jb = ${s.begin}; jb < ${s.end}; jb += ${bk}u) {
${body(get, sc, '    ')}
  }`;
  }
  if (!tiles(v)) {
    // Lane l holds vec4 e = l + sg * t of the step's bk x d4 block in f{name}{t}.
    const sg = v.subgroup;
    const per = (bk * v.d4) / sg;
    const loads = s.names.map((n) => lines(per, (t) => {
      const e = `(lane + ${t * sg}u)`;
      return `    let f${n}${t} = ld_${n}(${at(`min(jb + ${e} / ${v.d4}u, ${s.last})`)}, ${e} % ${v.d4}u);`;
    })).join('\n');
    const get: Getter = (name, kk, c) => {
      const e = kk * v.d4 + (c as number);
      return `subgroupBroadcast(f${name}${Math.floor(e / sg)}, ${e % sg}u)`;
    };
    const sc = (kk: number) => `subgroupBroadcast(fLD, ${kk}u)`;
    return `  for (var jb = ${s.begin}; jb < ${s.end}; jb += ${bk}u) {
${loads}
${s.scalars ? `    let fLD = LD[${at(`min(jb + lane % ${bk}u, ${s.last})`)}];` : ''}
${body(get, sc, '    ')}
  }`;
  }
  const ts = tileRows(v);
  const get: Getter = (name, kk, c) => `t_${name}[(jl + ${kk}u) * ${v.d4}u + ${cs(c)}]`;
  const sc = (kk: number) => `t_LD[jl + ${kk}u]`;
  const loads = s.names.map((n) => `      t_${n}[e] = ld_${n}(${at('jj')}, c);`).join('\n');
  return `  for (var t0 = ${s.begin}; t0 < ${s.end}; t0 += ${ts}u) {
    workgroupBarrier();
    for (var e = lane; e < ${ts * v.d4}u; e += ${wg}u) {
      let jj = min(t0 + e / ${v.d4}u, ${s.last});
      let c = e % ${v.d4}u;
${loads}
    }
${s.scalars ? `    for (var e = lane; e < ${ts}u; e += ${wg}u) { t_LD[e] = LD[${at(`min(t0 + e, ${s.last})`)}]; }` : ''}
    workgroupBarrier();
    for (var jl = 0u; jl < ${ts}u; jl += ${bk}u) {
      let jb = t0 + jl;
      if (jb >= ${s.end}) { break; }
${body(get, sc, '      ')}
    }
  }`;
}

function tileDecls(v: AttnVariant, names: string[], scalars: boolean): string {
  if (!tiles(v)) return '';
  const ts = tileRows(v);
  return names.map((n) => `var<workgroup> t_${n}: array<vec4<f32>, ${ts * v.d4}>;\n`).join('') +
    (scalars ? `var<workgroup> t_LD: array<vec2<f32>, ${ts}>;\n` : '');
}

/**
 * Entry point prologue: workgroup (row block, b*h) with b*h clamped (a folded grid may
 * overshoot; the extra groups redo the last block and store identical values), this lane's
 * own rows r{x} and their clamped copies rc{x}. No early return: it would make the rest
 * non-uniform.
 */
function prologue(v: AttnVariant, rows: string): string {
  const wg = lanes(v);
  const lane = v.subgroup > 0 ? '@builtin(subgroup_invocation_id) lane: u32' : '@builtin(local_invocation_index) lane: u32';
  const li = v.subgroup > 0 ? '@builtin(local_invocation_index) li: u32' : '';
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, ${lane}${li ? `, ${li}` : ''}) {
  let bhI = min(wid.y + wid.z * nwg.y, u.bh - 1u);
  let b = bhI / u.heads;
  let hI = bhI % u.heads;
  let r0 = wid.x * ${attnRowsPerGroup(v)}u;
${per(v, (x) => `  let r${x} = r0 + ${Number(x.slice(1)) * wg}u + ${li ? 'li' : 'lane'};\n  let rc${x} = min(r${x}, ${rows} - 1u);`)}
`;
}

/** Q, K, V and the key-mask words (any buffer when hasMask = 0): the first four bindings of every kernel here. */
function QKVM(v: AttnVariant): StorageBinding[] {
  return [rowBinding(v, 'Q', 'read'), rowBinding(v, 'K', 'read'), rowBinding(v, 'V', 'read'), ['M', 'read', 'u32']];
}

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
