/**
 * Elementwise kernels: unary maps with their derivatives, binary ops with broadcasting,
 * reduction of a broadcast gradient back to an operand's shape, fill and casts.
 */
import { makeKernel, WGSL_LINEAR, type Kernel, memoKernel } from './kernel.js';

export const WG = 256;
export const MAX_RANK = 6;

/** WGSL helpers used by several unary maps. erf: Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7). */
/** WGSL helpers of the unary ops, shared with the matmul epilogue. */
export const UNARY_MATH_WGSL = `
fn erf_approx(x: f32) -> f32 {
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}
fn tanh_safe(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
`;

/** Unary maps: `fwd` in terms of x (and uniforms p0, p1); `bwd` is dL/dx in terms of x and g = dL/dy. */
export const UNARY = {
  neg: { fwd: '-x', bwd: '-g' },
  exp: { fwd: 'exp(x)', bwd: 'g * exp(x)' },
  log: { fwd: 'log(x)', bwd: 'g / x' },
  sqrt: { fwd: 'sqrt(x)', bwd: 'g * 0.5 / sqrt(x)' },
  rsqrt: { fwd: 'inverseSqrt(x)', bwd: 'g * -0.5 * inverseSqrt(x) / x' },
  tanh: { fwd: 'tanh_safe(x)', bwd: 'g * (1.0 - tanh_safe(x) * tanh_safe(x))' },
  sigmoid: { fwd: 'sigmoid(x)', bwd: 'g * sigmoid(x) * (1.0 - sigmoid(x))' },
  relu: { fwd: 'max(x, 0.0)', bwd: 'select(0.0, g, x > 0.0)' },
  square: { fwd: 'x * x', bwd: 'g * 2.0 * x' },
  /** x * p0 + p1: every scalar add / sub / mul / div. */
  affine: { fwd: 'x * u.p0 + u.p1', bwd: 'g * u.p0' },
  gelu_tanh: {
    fwd: '0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
    bwd: 'g * gelu_tanh_grad(x)',
  },
  gelu_erf: {
    fwd: '0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476))',
    bwd: 'g * (0.5 * (1.0 + erf_approx(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x))',
  },
  quick_gelu: {
    fwd: 'x * sigmoid(1.702 * x)',
    bwd: 'g * (sigmoid(1.702 * x) + 1.702 * x * sigmoid(1.702 * x) * (1.0 - sigmoid(1.702 * x)))',
  },
} as const;

export type UnaryOp = keyof typeof UNARY;

const GELU_TANH_GRAD = `
fn gelu_tanh_grad(x: f32) -> f32 {
  let k = 0.7978845608028654;
  let inner = k * (x + 0.044715 * x * x * x);
  let t = tanh_safe(inner);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}
`;

function unaryKernelBuild(op: UnaryOp, backward: boolean): Kernel {
  const e = UNARY[op];
  const body = backward
    ? `@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  let x = X[i];
  let g = G[i];
  Y[i] = ${e.bwd};
}`
    : `@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  let x = X[i];
  Y[i] = ${e.fwd};
}`;
  const decls = backward
    ? `@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;`
    : `@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;`;
  return makeKernel(
    `unary.${op}${backward ? '.backward' : ''}`,
    [['n', 'u32'], ['p0', 'f32'], ['p1', 'f32']],
    backward ? ['read', 'read', 'rw'] : ['read', 'rw'],
    `${decls}\n${WGSL_LINEAR}${UNARY_MATH_WGSL}${GELU_TANH_GRAD}${body}`,
    { workgroupSize: WG },
  );
}

export const BINARY = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
} as const;

export type BinaryOp = keyof typeof BINARY;

const DIM_FIELDS = (prefix: string): [string, 'u32'][] =>
  Array.from({ length: MAX_RANK }, (_, i) => [`${prefix}${i}`, 'u32'] as [string, 'u32']);

const dimArray = (prefix: string) =>
  `array<u32, ${MAX_RANK}>(${Array.from({ length: MAX_RANK }, (_, i) => `u.${prefix}${i}`).join(', ')})`;

/**
 * Binary op. `same` variant: both operands have the output's shape. Broadcast variant:
 * operands are read through strides (0 on broadcast dims) of the output's coordinates.
 */
function binaryKernelBuild(op: BinaryOp, broadcast: boolean): Kernel {
  const expr = BINARY[op];
  const decls = `@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
`;
  if (!broadcast) {
    return makeKernel(`binary.${op}`, [['n', 'u32']], ['read', 'read', 'rw'], `${decls}${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  let a = A[i];
  let b = B[i];
  Y[i] = ${expr};
}`, { workgroupSize: WG });
  }
  return makeKernel(
    `binary.${op}.broadcast`,
    [['n', 'u32'], ['rank', 'u32'], ...DIM_FIELDS('d'), ...DIM_FIELDS('sa'), ...DIM_FIELDS('sb')],
    ['read', 'read', 'rw'],
    `${decls}${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  var dims = ${dimArray('d')};
  var sa = ${dimArray('sa')};
  var sb = ${dimArray('sb')};
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var k = i32(u.rank) - 1; k >= 0; k--) {
    let c = rem % dims[k];
    rem = rem / dims[k];
    ia += c * sa[k];
    ib += c * sb[k];
  }
  let a = A[ia];
  let b = B[ib];
  Y[i] = ${expr};
}`,
    { workgroupSize: WG },
  );
}

/**
 * Sums an input over the dims where the target has extent 1 (the gradient of a broadcast).
 * One invocation per output element loops over the reduced coordinates.
 */
function reduceToKernelBuild(): Kernel {
  return makeKernel(
    'reduce-to-shape',
    [['n', 'u32'], ['rank', 'u32'], ['r', 'u32'], ...DIM_FIELDS('od'), ...DIM_FIELDS('rd'), ...DIM_FIELDS('st')],
    ['read', 'rw'],
    `@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = linearIndex(gid, nwg, ${WG}u);
  if (o >= u.n) { return; }
  var od = ${dimArray('od')};
  var rd = ${dimArray('rd')};
  var st = ${dimArray('st')};
  var base = 0u;
  var rem = o;
  for (var k = i32(u.rank) - 1; k >= 0; k--) {
    base += (rem % od[k]) * st[k];
    rem = rem / od[k];
  }
  var acc = 0.0;
  for (var j = 0u; j < u.r; j++) {
    var off = base;
    var q = j;
    for (var k = i32(u.rank) - 1; k >= 0; k--) {
      off += (q % rd[k]) * st[k];
      q = q / rd[k];
    }
    acc += X[off];
  }
  Y[o] = acc;
}`,
    { workgroupSize: WG },
  );
}

function fillKernelBuild(dtype: 'f32' | 'i32' | 'u32'): Kernel {
  return makeKernel(`fill.${dtype}`, [['n', 'u32'], ['v', dtype]], ['rw'], `@group(0) @binding(1) var<storage, read_write> Y: array<${dtype}>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  Y[i] = u.v;
}`, { workgroupSize: WG });
}

/** fill on vec4s (`n` counts vectors); the host widens the output range to whole vectors. */
function fillKernelVec4Build(dtype: 'f32' | 'i32' | 'u32'): Kernel {
  return makeKernel(`fill.${dtype}.vec4`, [['n', 'u32'], ['v', dtype]], ['rw'], `@group(0) @binding(1) var<storage, read_write> Y: array<vec4<${dtype}>>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  Y[i] = vec4<${dtype}>(u.v);
}`, { workgroupSize: WG });
}

/** Casts between f32, i32 and u32 (and to/from f16 when the device has shader-f16). */
function castKernelBuild(from: 'f32' | 'f16' | 'i32' | 'u32', to: 'f32' | 'f16' | 'i32' | 'u32'): Kernel {
  const usesF16 = from === 'f16' || to === 'f16';
  return makeKernel(`cast.${from}.${to}`, [['n', 'u32']], ['read', 'rw'], `@group(0) @binding(1) var<storage, read> X: array<${from}>;
@group(0) @binding(2) var<storage, read_write> Y: array<${to}>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearIndex(gid, nwg, ${WG}u);
  if (i >= u.n) { return; }
  Y[i] = ${to}(X[i]);
}`, { workgroupSize: WG, enables: usesF16 ? ['f16'] : [] });
}

/**
 * Vector variants. On lavapipe the cost is per invocation and per access, not per byte: each
 * per-lane storage access is a scalar loop over the lanes, and each invocation carries fixed
 * overhead, so one invocation moving a vec4 does four elements for about the price of one
 * (same-shape add measured 2.1x faster, gelu 2.3x). Buffers are bound as array<vec4<f32>> over
 * ceil(n / 4) vectors; the host only picks these kernels when every bound range can be widened
 * to a multiple of 16 bytes inside its buffer (the output's padding lanes then hold junk
 * nobody reads).
 */
const vecIndexPrelude = (wg: number) => `
  let i = linearIndex(gid, nwg, ${wg}u);
  if (i >= u.n) { return; }`;

/** The scalar expression applied to each lane of a vec4 (WGSL has no user overloads). */
function perLane(name: string, params: string, expr: string): string {
  return `fn ${name}(${params}) -> f32 { return ${expr}; }\n`;
}

function unaryKernelVec4Build(op: UnaryOp, backward: boolean): Kernel {
  const e = UNARY[op];
  const fn = backward ? perLane('f1', 'x: f32, g: f32', e.bwd) : perLane('f1', 'x: f32', e.fwd);
  const call = backward
    ? 'vec4<f32>(f1(x.x, g.x), f1(x.y, g.y), f1(x.z, g.z), f1(x.w, g.w))'
    : 'vec4<f32>(f1(x.x), f1(x.y), f1(x.z), f1(x.w))';
  const decls = backward
    ? `@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> G: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4<f32>>;`
    : `@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<vec4<f32>>;`;
  return makeKernel(
    `unary.${op}${backward ? '.backward' : ''}.vec4`,
    [['n', 'u32'], ['p0', 'f32'], ['p1', 'f32']],
    backward ? ['read', 'read', 'rw'] : ['read', 'rw'],
    `${decls}\n${WGSL_LINEAR}${UNARY_MATH_WGSL}${GELU_TANH_GRAD}${fn}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {${vecIndexPrelude(WG)}
  let x = X[i];
  ${backward ? 'let g = G[i];' : ''}
  Y[i] = ${call};
}`,
    { workgroupSize: WG },
  );
}

/** Same-shape binary op on vec4s (`n` counts vectors). */
function binaryKernelVec4Build(op: BinaryOp): Kernel {
  return makeKernel(`binary.${op}.vec4`, [['n', 'u32']], ['read', 'read', 'rw'], `@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4<f32>>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {${vecIndexPrelude(WG)}
  let a = A[i];
  let b = B[i];
  Y[i] = ${BINARY[op]};
}`, { workgroupSize: WG });
}

/**
 * How a broadcast operand of a 2-D [rows, cols] op is indexed by the output's element e:
 * 'full' e, 'row' e % cols (a bias row repeated down the rows), 'col' e / cols (one value per
 * row), 'scalar' 0. Covers what coalescing leaves of bias adds, per-row scales and scalars.
 */
export type BroadcastMode = 'full' | 'row' | 'col' | 'scalar';

/**
 * Binary op with 2-D broadcasting: no per-dim index decomposition, at most one division.
 * With `vec4`, `n` counts vectors and cols % 4 == 0, so a 'row' operand is read as vec4 and a
 * 'col' or 'scalar' operand (constant along a vector) is read once and splatted.
 */
function binary2dKernelBuild(op: BinaryOp, ma: BroadcastMode, mb: BroadcastMode, vec4: boolean): Kernel {
  const T = vec4 ? 'vec4<f32>' : 'f32';
  const operand = (name: string, m: BroadcastMode): { decl: string; load: string } => {
    const wide = vec4 && (m === 'full' || m === 'row');
    const elem = vec4 ? 'i * 4u' : 'i';
    const idx = {
      full: 'i',
      row: vec4 ? 'i % (u.cols / 4u)' : 'i % u.cols',
      col: `${elem} / u.cols`,
      scalar: '0u',
    }[m];
    const load = wide || !vec4 ? `${name}[${idx}]` : `${T}(${name}[${idx}])`;
    return { decl: `array<${wide ? T : 'f32'}>`, load };
  };
  const A = operand('A', ma);
  const B = operand('B', mb);
  return makeKernel(`binary.${op}.2d.${ma}.${mb}${vec4 ? '.vec4' : ''}`, [['n', 'u32'], ['cols', 'u32']], ['read', 'read', 'rw'],
    `@group(0) @binding(1) var<storage, read> A: ${A.decl};
@group(0) @binding(2) var<storage, read> B: ${B.decl};
@group(0) @binding(3) var<storage, read_write> Y: array<${T}>;
${WGSL_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {${vecIndexPrelude(WG)}
  let a = ${A.load};
  let b = ${B.load};
  Y[i] = ${BINARY[op]};
}`, { workgroupSize: WG });
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const unaryKernel = memoKernel(unaryKernelBuild);
export const binaryKernel = memoKernel(binaryKernelBuild);
export const reduceToKernel = memoKernel(reduceToKernelBuild);
export const fillKernel = memoKernel(fillKernelBuild);
export const fillKernelVec4 = memoKernel(fillKernelVec4Build);
export const castKernel = memoKernel(castKernelBuild);
export const unaryKernelVec4 = memoKernel(unaryKernelVec4Build);
export const binaryKernelVec4 = memoKernel(binaryKernelVec4Build);
export const binary2dKernel = memoKernel(binary2dKernelBuild);
