/**
 * Elementwise kernels: unary maps with their derivatives, binary ops with broadcasting,
 * reduction of a broadcast gradient back to an operand's shape, fill and casts.
 */
import { makeKernel, memoKernel, type StorageBinding } from './kernel.js';

export const WG = 256;
export const MAX_RANK = 6;

/** WGSL helpers of the unary ops, shared with the matmul epilogue. erf: Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7). */
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

export const GELU_TANH_GRAD = `
fn gelu_tanh_grad(x: f32) -> f32 {
  let k = 0.7978845608028654;
  let inner = k * (x + 0.044715 * x * x * x);
  let t = tanh_safe(inner);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}
`;

function unaryKernelBuild(op: UnaryOp, backward: boolean) {
  const e = UNARY[op];
  return makeKernel(
    `unary.${op}${backward ? '.backward' : ''}`,
    [['n', 'u32'], ['p0', 'f32'], ['p1', 'f32']],
    backward ? [['X', 'read', 'f32'], ['G', 'read', 'f32'], ['Y', 'rw', 'f32']] : [['X', 'read', 'f32'], ['Y', 'rw', 'f32']],
    {
      linear: WG,
      helpers: UNARY_MATH_WGSL + GELU_TANH_GRAD,
      body: backward ? `  let x = X[i];\n  let g = G[i];\n  Y[i] = ${e.bwd};` : `  let x = X[i];\n  Y[i] = ${e.fwd};`,
    },
  );
}

export const BINARY = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
} as const;

export type BinaryOp = keyof typeof BINARY;

const DIM_FIELDS = <P extends string>(prefix: P): [`${P}${number}`, 'u32'][] =>
  Array.from({ length: MAX_RANK }, (_, i) => [`${prefix}${i}`, 'u32'] as [`${P}${number}`, 'u32']);

/**
 * The per-dimension uniforms `${prefix}0..` of a broadcast kernel: `values` padded with `fill`
 * to MAX_RANK entries.
 */
export function dimUniforms<P extends string>(prefix: P, values: readonly number[], fill: number): Record<`${P}${number}`, number> {
  const out = {} as Record<`${P}${number}`, number>;
  for (let i = 0; i < MAX_RANK; i++) out[`${prefix}${i}`] = values[i] ?? fill;
  return out;
}

const dimArray = (prefix: string) =>
  `array<u32, ${MAX_RANK}>(${Array.from({ length: MAX_RANK }, (_, i) => `u.${prefix}${i}`).join(', ')})`;

/**
 * Binary op. `same` variant: both operands have the output's shape. Broadcast variant:
 * operands are read through strides (0 on broadcast dims) of the output's coordinates.
 */
const BINARY_BINDINGS: StorageBinding[] = [['A', 'read', 'f32'], ['B', 'read', 'f32'], ['Y', 'rw', 'f32']];

function binaryKernelBuild(op: BinaryOp) {
  return makeKernel(`binary.${op}`, [['n', 'u32']], BINARY_BINDINGS, { linear: WG, body: `  let a = A[i];\n  let b = B[i];\n  Y[i] = ${BINARY[op]};` });
}

function binaryBroadcastKernelBuild(op: BinaryOp) {
  const expr = BINARY[op];
  const bindings = BINARY_BINDINGS;
  return makeKernel(
    `binary.${op}.broadcast`,
    [['n', 'u32'], ['rank', 'u32'], ...DIM_FIELDS('d'), ...DIM_FIELDS('sa'), ...DIM_FIELDS('sb')],
    bindings,
    {
      linear: WG,
      body: `  var dims = ${dimArray('d')};
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
  Y[i] = ${expr};`,
    },
  );
}

/**
 * Sums an input over the dims where the target has extent 1 (the gradient of a broadcast).
 * One invocation per output element loops over the reduced coordinates.
 */
function reduceToKernelBuild() {
  return makeKernel(
    'reduce-to-shape',
    [['n', 'u32'], ['rank', 'u32'], ['r', 'u32'], ...DIM_FIELDS('od'), ...DIM_FIELDS('rd'), ...DIM_FIELDS('st')],
    [['X', 'read', 'f32'], ['Y', 'rw', 'f32']],
    {
      linear: WG,
      index: 'o',
      body: `  var od = ${dimArray('od')};
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
  Y[o] = acc;`,
    },
  );
}

function fillKernelBuild(dtype: 'f32' | 'i32' | 'u32') {
  return makeKernel(`fill.${dtype}`, [['n', 'u32'], ['v', dtype]], [['Y', 'rw', dtype]], { linear: WG, body: '  Y[i] = u.v;' });
}

/** fill on vec4s (`n` counts vectors); the host widens the output range to whole vectors. */
function fillKernelVec4Build(dtype: 'f32' | 'i32' | 'u32') {
  return makeKernel(`fill.${dtype}.vec4`, [['n', 'u32'], ['v', dtype]], [['Y', 'rw', `vec4<${dtype}>`]], { linear: WG, body: `  Y[i] = vec4<${dtype}>(u.v);` });
}

/** Casts between f32, i32 and u32 (and to/from f16 when the device has shader-f16). */
function castKernelBuild(from: 'f32' | 'f16' | 'i32' | 'u32', to: 'f32' | 'f16' | 'i32' | 'u32') {
  const usesF16 = from === 'f16' || to === 'f16';
  return makeKernel(`cast.${from}.${to}`, [['n', 'u32']], [['X', 'read', from], ['Y', 'rw', to]], { linear: WG, body: `  Y[i] = ${to}(X[i]);` },
    { enables: usesF16 ? ['f16'] : [] });
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
/** The scalar expression applied to each lane of a vec4 (WGSL has no user overloads). */
function perLane(name: string, params: string, expr: string): string {
  return `fn ${name}(${params}) -> f32 { return ${expr}; }\n`;
}

function unaryKernelVec4Build(op: UnaryOp, backward: boolean) {
  const e = UNARY[op];
  const fn = backward ? perLane('f1', 'x: f32, g: f32', e.bwd) : perLane('f1', 'x: f32', e.fwd);
  const call = backward
    ? 'vec4<f32>(f1(x.x, g.x), f1(x.y, g.y), f1(x.z, g.z), f1(x.w, g.w))'
    : 'vec4<f32>(f1(x.x), f1(x.y), f1(x.z), f1(x.w))';
  const v = 'vec4<f32>';
  return makeKernel(
    `unary.${op}${backward ? '.backward' : ''}.vec4`,
    [['n', 'u32'], ['p0', 'f32'], ['p1', 'f32']],
    backward ? [['X', 'read', v], ['G', 'read', v], ['Y', 'rw', v]] : [['X', 'read', v], ['Y', 'rw', v]],
    {
      linear: WG,
      helpers: UNARY_MATH_WGSL + GELU_TANH_GRAD + fn,
      body: `  let x = X[i];\n${backward ? '  let g = G[i];\n' : ''}  Y[i] = ${call};`,
    },
  );
}

/** Same-shape binary op on vec4s (`n` counts vectors). */
function binaryKernelVec4Build(op: BinaryOp) {
  const v = 'vec4<f32>';
  return makeKernel(`binary.${op}.vec4`, [['n', 'u32']], [['A', 'read', v], ['B', 'read', v], ['Y', 'rw', v]],
    { linear: WG, body: `  let a = A[i];\n  let b = B[i];\n  Y[i] = ${BINARY[op]};` });
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
function binary2dKernelBuild(op: BinaryOp, ma: BroadcastMode, mb: BroadcastMode, vec4: boolean) {
  const T = vec4 ? 'vec4<f32>' : 'f32';
  const operand = (name: string, m: BroadcastMode): { elem: string; load: string } => {
    const wide = vec4 && (m === 'full' || m === 'row');
    const elem = vec4 ? 'i * 4u' : 'i';
    const idx = {
      full: 'i',
      row: vec4 ? 'i % (u.cols / 4u)' : 'i % u.cols',
      col: `${elem} / u.cols`,
      scalar: '0u',
    }[m];
    const load = wide || !vec4 ? `${name}[${idx}]` : `${T}(${name}[${idx}])`;
    return { elem: wide ? T : 'f32', load };
  };
  const A = operand('A', ma);
  const B = operand('B', mb);
  return makeKernel(`binary.${op}.2d.${ma}.${mb}${vec4 ? '.vec4' : ''}`, [['n', 'u32'], ['cols', 'u32']],
    [['A', 'read', A.elem], ['B', 'read', B.elem], ['Y', 'rw', T]],
    { linear: WG, body: `  let a = ${A.load};\n  let b = ${B.load};\n  Y[i] = ${BINARY[op]};` });
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const unaryKernel = memoKernel(unaryKernelBuild);
export const binaryKernel = memoKernel(binaryKernelBuild);
export const binaryBroadcastKernel = memoKernel(binaryBroadcastKernelBuild);
export const reduceToKernel = memoKernel(reduceToKernelBuild);
export const fillKernel = memoKernel(fillKernelBuild);
export const fillKernelVec4 = memoKernel(fillKernelVec4Build);
export const castKernel = memoKernel(castKernelBuild);
export const unaryKernelVec4 = memoKernel(unaryKernelVec4Build);
export const binaryKernelVec4 = memoKernel(binaryKernelVec4Build);
export const binary2dKernel = memoKernel(binary2dKernelBuild);
