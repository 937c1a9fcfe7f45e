/**
 * WGSL generators the attention kernels share: row bindings and loaders, the prologue that
 * places a lane's own rows, the key mask, and the loop that streams the other side's rows to
 * the lanes (register: per-lane loads or subgroup broadcasts; tiled: workgroup-memory tiles).
 * Row addresses come from the ATTN_UNIFORMS strides (see attention.ts).
 */
import type { StorageBinding } from './kernel.js';
import { ATTN_IMPLS, attnRowsPerGroup, lanes, lines, per, range, stepRows, tileRows, type AttnVariant } from './attention-variant.js';

/** The binding of a [rows, D] operand (vec4 rows when the variant has them). */
export function rowBinding(v: AttnVariant, name: string, access: 'read' | 'rw'): StorageBinding {
  return [name, access, v.vec4 ? 'vec4<f32>' : 'f32'];
}

/** The `ld_X(row, c) -> vec4` loader of a row operand (zeros past D). */
export function rowLoader(v: AttnVariant, name: string): string {
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
export function loadRow(v: AttnVariant, arr: string, name: string, row: string, factor: string): string {
  if (tiles(v)) return lines(v.d4, (c) => `  ${arr}[${c}] = ld_${name}(${row}, ${c}u) * ${factor};`);
  return `  for (var c = 0u; c < u.nv; c++) { ${arr}[c] = ld_${name}(${row}, c) * ${factor}; }`;
}

export function storeRow(v: AttnVariant, name: string, row: string, arr: string, factor: string): string {
  if (v.vec4) {
    if (tiles(v)) return lines(v.d4, (c) => `    if (${c}u < u.rs) { ${name}[${row} * u.rs + ${c}u] = ${arr}[${c}] * ${factor}; }`);
    return `    for (var c = 0u; c < u.nv; c++) { ${name}[${row} * u.rs + c] = ${arr}[c] * ${factor}; }`;
  }
  if (tiles(v)) {
    return lines(v.d4 * 4, (e) => `    if (${e}u < u.d) { ${name}[${row} * u.d + ${e}u] = ${arr}[${e >> 2}][${e & 3}] * ${factor}; }`);
  }
  return `    for (var e = 0u; e < u.d; e++) { ${name}[${row} * u.d + e] = ${arr}[e / 4u][e % 4u] * ${factor}; }`;
}

export const MASK = `
fn keyOk(b: u32, j: u32) -> bool {
  let w = M[b * u.tk + j];
  let nz = select(w != 0u, (w & 0x7fffffffu) != 0u, u.maskFloat != 0u);
  return (u.hasMask == 0u) | nz;
}
`;

/** Reads vec4 `c` (a constant or the WGSL loop variable `c`) of streamed row jb + kk of `name`. */
export type Getter = (name: string, kk: number, c: number | 'c') => string;

/**
 * Statement builders over the head dim for one streamed step. Names are prefixes: for own row
 * set x, `arr` means arr{x}, `target` target{x}, `keep` keep{x} and a term's `coef` coef{x}.
 * Each streamed vec4 is read once and used by every row set.
 */
export interface Ops {
  /** var target = sum_c dot(arr[c], name_kk[c]). */
  dot(target: string, arr: string, name: string, kk: number): string;
  /** For every slot c: arr[c] = arr[c] * keep + sum coef * name_kk[c] over `terms`. */
  accum(arr: string, keep: string | null, terms: [string, string, number][]): string;
  /** The streamed row's (lse, D) pair, for streams with scalars. */
  scalar(kk: number): string;
}

export function makeOps(v: AttnVariant, get: Getter, scalar: (kk: number) => string, indent: string): Ops {
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
export interface Stream {
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

export function streamLoop(v: AttnVariant, s: Stream): string {
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

export function tileDecls(v: AttnVariant, names: string[], scalars: boolean): string {
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
export function prologue(v: AttnVariant, rows: string): string {
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
export function QKVM(v: AttnVariant): StorageBinding[] {
  return [rowBinding(v, 'Q', 'read'), rowBinding(v, 'K', 'read'), rowBinding(v, 'V', 'read'), ['M', 'read', 'u32']];
}
