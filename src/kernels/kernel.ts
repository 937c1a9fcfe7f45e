/**
 * A kernel is WGSL text plus the description the runtime needs to bind it. The text never
 * contains a shape: shapes travel in the uniform struct, so one pipeline serves every shape.
 *
 * Conventions shared by every kernel:
 * - If `uniforms` is non-empty, binding 0 is `var<uniform> u: U` with `struct U` holding those
 *   scalar fields in that order (each 4 bytes); storage bindings follow from binding 1.
 * - Storage bindings are listed in `storage` in binding order: 'read' for
 *   `var<storage, read>`, 'rw' for `var<storage, read_write>`.
 * - Large 1-D grids are folded into (x, y) workgroup counts; kernels rebuild the linear
 *   invocation index with `linearIndex(gid, nwg)` from `WGSL_LINEAR`.
 */
export type UniformType = 'u32' | 'i32' | 'f32';
export type StorageAccess = 'read' | 'rw';

export interface Kernel {
  /** Kernel family and variant, for errors and benchmark tables. */
  readonly name: string;
  readonly wgsl: string;
  readonly uniforms: readonly UniformType[];
  readonly storage: readonly StorageAccess[];
  /** Workgroup size along x (the folded 1-D dimension), when the kernel is dispatched 1-D. */
  readonly workgroupSize?: number;
}

/** The WGSL uniform struct declaration for named scalar fields. */
export function uniformStruct(fields: readonly [string, UniformType][]): string {
  if (fields.length === 0) return '';
  return `struct U {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n};\n@group(0) @binding(0) var<uniform> u: U;\n`;
}

export function storageDecl(binding: number, name: string, access: StorageAccess, type: string): string {
  const mode = access === 'rw' ? 'read_write' : 'read';
  return `@group(0) @binding(${binding}) var<storage, ${mode}> ${name}: ${type};\n`;
}

export const WGSL_LINEAR = `
fn linearIndex(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}
`;

/** Builds a Kernel from named uniform fields, so the field list and the WGSL cannot drift apart. */
export function makeKernel(
  name: string,
  fields: readonly [string, UniformType][],
  storage: readonly StorageAccess[],
  body: string,
  opts: { workgroupSize?: number; enables?: string[] } = {},
): Kernel {
  const enables = (opts.enables ?? []).map((e) => `enable ${e};\n`).join('');
  return {
    name,
    wgsl: enables + uniformStruct(fields) + body,
    uniforms: fields.map(([, t]) => t),
    storage,
    workgroupSize: opts.workgroupSize,
  };
}

/**
 * Memoises a kernel factory by its arguments (plain data: specs, flags, names), so WGSL is
 * generated once per distinct kernel rather than at every dispatch, and the context can find
 * the pipeline by the kernel object instead of hashing its text.
 */
export function memoKernel<A extends unknown[]>(build: (...args: A) => Kernel): (...args: A) => Kernel {
  const cache = new Map<string, Kernel>();
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
