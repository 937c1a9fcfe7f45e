/**
 * A kernel is WGSL text plus the description the runtime needs to bind it. The text never
 * contains a shape: shapes travel in the uniform struct, so one pipeline serves every shape.
 *
 * Conventions shared by every kernel:
 * - If `uniforms` is non-empty, binding 0 is `var<uniform> u: U` with `struct U` holding those
 *   scalar fields in that order (each 4 bytes); storage bindings follow from binding 1.
 * - Storage bindings are listed in `storage` in binding order: 'read' for
 *   `var<storage, read>`, 'rw' for `var<storage, read_write>`. `makeKernel` writes both the
 *   declarations and that list from one StorageBinding list.
 * - Large 1-D grids are folded into (x, y) workgroup counts; a LinearSource's generated entry
 *   point rebuilds the linear invocation index (`linearIndex(gid, nwg, wg)`).
 */
export type UniformType = 'u32' | 'i32' | 'f32';
export type StorageAccess = 'read' | 'rw';

/**
 * A kernel's uniform values by field name. Dispatch packs them in the struct's order, so a call
 * site never depends on the order of a field list it cannot see.
 */
export type Uniforms<F extends string = string> = { readonly [K in F]: number };

/** `F` names the uniform fields (string literals where the field list is written out). */
export interface Kernel<F extends string = string> {
  /** Kernel family and variant, for errors and benchmark tables. */
  readonly name: string;
  readonly wgsl: string;
  /** Uniform field names and types, in struct order. */
  readonly fields: readonly F[];
  readonly uniforms: readonly UniformType[];
  readonly storage: readonly StorageAccess[];
  /** Workgroup size along x (the folded 1-D dimension), when the kernel is dispatched 1-D. */
  readonly workgroupSize?: number;
}

/** The WGSL uniform struct declaration for named scalar fields. */
function uniformStruct(fields: readonly (readonly [string, UniformType])[]): string {
  if (fields.length === 0) return '';
  return `struct U {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n};\n@group(0) @binding(0) var<uniform> u: U;\n`;
}

/**
 * One storage binding: its WGSL name, access and array element type. Kernels list these instead
 * of writing `@binding` lines, so the declarations and the runtime's bind-group layout come from
 * the same list and cannot disagree.
 */
export type StorageBinding = readonly [name: string, access: StorageAccess, element: string];

/** The `@binding` declarations of a storage list, from binding 1 (binding 0 is the uniform struct). */
function storageDecls(bindings: readonly StorageBinding[]): string {
  return bindings.map(([name, access, element], i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${access === 'rw' ? 'read_write' : 'read'}> ${name}: array<${element}>;\n`).join('');
}

/** The linear invocation index of a folded 1-D grid. */
const WGSL_LINEAR = `
fn linearIndex(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}
`;

/**
 * A 1-D kernel's entry point: one invocation per element of a grid the host may fold into
 * (x, y) workgroup counts; `body` runs with `index` (default `i`) below `bound` (default `u.n`).
 */
export interface LinearSource {
  linear: number;
  body: string;
  index?: string;
  bound?: string;
  /** Module-scope WGSL the body calls (helper functions, constants). */
  helpers?: string;
}

function linearMain(src: LinearSource): string {
  const i = src.index ?? 'i';
  return `${WGSL_LINEAR}${src.helpers ?? ''}
@compute @workgroup_size(${src.linear}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let ${i} = linearIndex(gid, nwg, ${src.linear}u);
  if (${i} >= ${src.bound ?? 'u.n'}) { return; }
${src.body}
}`;
}

/**
 * Builds a Kernel from named uniform fields and storage bindings, so neither list can drift
 * from the WGSL: the uniform struct and every `@binding` line are generated. `source` is the
 * rest of the module (helpers and an entry point named `main`), or a LinearSource whose entry
 * point and index prologue are generated too. `prelude` (e.g. an `alias`) goes before the
 * declarations.
 */
export function makeKernel<const F extends string>(
  name: string,
  fields: readonly (readonly [F, UniformType])[],
  bindings: readonly StorageBinding[],
  source: string | LinearSource,
  opts: { workgroupSize?: number; enables?: string[]; prelude?: string } = {},
): Kernel<F> {
  const enables = (opts.enables ?? []).map((e) => `enable ${e};\n`).join('');
  const linear = typeof source !== 'string';
  return {
    name,
    wgsl: enables + (opts.prelude ?? '') + uniformStruct(fields) + storageDecls(bindings) + (linear ? linearMain(source) : source),
    fields: fields.map(([n]) => n),
    uniforms: fields.map(([, t]) => t),
    storage: bindings.map(([, access]) => access),
    workgroupSize: linear ? source.linear : opts.workgroupSize,
  };
}

/**
 * Memoises a kernel factory by its arguments (plain data: specs, flags, names), so WGSL is
 * generated once per distinct kernel rather than at every dispatch, and the context can find
 * the pipeline by the kernel object instead of hashing its text.
 */
export function memoKernel<A extends unknown[], F extends string>(build: (...args: A) => Kernel<F>): (...args: A) => Kernel<F> {
  const cache = new Map<string, Kernel<F>>();
  return (...args: A) => {
    const key = JSON.stringify(args);
    let k = cache.get(key);
    if (!k) {
      k = build(...args);
      cache.set(key, k);
    }
    return k;
  };
}
