/**
 * Optimizer kernels over flat parameter arenas: the fused AdamW update and the two-stage global
 * gradient norm used for clipping. Arenas are whole vec4s (every slot starts 256-byte aligned
 * and the arena length is a multiple of 64 floats), so every kernel works on vec4s: lavapipe
 * pays per storage access, not per byte, and GPUs like the wide loads too.
 */
import { makeKernel, memoKernel } from './kernel.js';

export const ADAMW_WG = 256;
/** vec4s each invocation of the first norm stage sums (256 floats). */
export const SUMSQ_ITEMS = 64;
export const SUMSQ_WG = 64;
export const NORM_WG = 256;

/** Added to the norm before dividing, as torch.nn.utils.clip_grad_norm_ does. */
export const CLIP_EPS = 1e-6;

/**
 * One AdamW step (PyTorch semantics, decoupled weight decay) over `n` vec4s:
 *   g' = G * scale [* min(1, maxNorm / (norm + 1e-6))]
 *   M = b1 M + (1 - b1) g';  V = b2 V + (1 - b2) g'^2
 *   P = P * decay - stepSize * M / (sqrt(V) * invSqrtBc2 + eps)
 * with decay = 1 - lr * wd, stepSize = lr / (1 - b1^t), invSqrtBc2 = 1 / sqrt(1 - b2^t), all
 * computed on the host so the learning rate can change every step without a new pipeline.
 * omb1 = 1 - b1 and omb2 = 1 - b2 also come from the host, in float64: 1.0 - f32(0.999) is off
 * by 1.3e-5 relative, which would bias v by as much.
 * With `clip`, the global gradient norm is read from S[0] (written by `normFinalizeKernel`), so
 * clipping needs no readback.
 */
function adamwKernelBuild(clip: boolean) {
  const v = 'vec4<f32>';
  return makeKernel(
    `adamw${clip ? '.clip' : ''}`,
    [['n', 'u32'], ['decay', 'f32'], ['stepSize', 'f32'], ['invSqrtBc2', 'f32'], ['b1', 'f32'], ['b2', 'f32'], ['omb1', 'f32'], ['omb2', 'f32'], ['eps', 'f32'], ['scale', 'f32'], ['maxNorm', 'f32']],
    [['P', 'rw', v], ['G', 'read', v], ['M', 'rw', v], ['V', 'rw', v], ...(clip ? [['S', 'read', 'f32'] as const] : [])],
    {
      linear: ADAMW_WG,
      body: `  ${clip ? `let s = u.scale * min(1.0, u.maxNorm / (S[0] + ${CLIP_EPS}));` : 'let s = u.scale;'}
  let g = G[i] * s;
  let m = u.b1 * M[i] + u.omb1 * g;
  let v = u.b2 * V[i] + u.omb2 * g * g;
  M[i] = m;
  V[i] = v;
  P[i] = P[i] * u.decay - u.stepSize * m / (sqrt(v) * u.invSqrtBc2 + u.eps);`,
    },
  );
}

/**
 * First stage of the global norm: invocation k writes the sum of squares of SUMSQ_ITEMS vec4s of
 * X to OUT[base + k]. Within a workgroup, lane l reads vec4s l, l + WG, l + 2 WG ... of the
 * workgroup's block, so neighbouring lanes read neighbouring memory (coalesced on GPUs). One
 * dispatch per arena; every arena writes its partials into one shared buffer at `base`.
 */
function sumSquaresKernelBuild() {
  return makeKernel('adamw.sumsq', [['n', 'u32'], ['parts', 'u32'], ['base', 'u32']], [['X', 'read', 'vec4<f32>'], ['OUT', 'rw', 'f32']], {
    linear: SUMSQ_WG,
    index: 'k',
    bound: 'u.parts',
    body: `  let lane = k % ${SUMSQ_WG}u;
  let start = (k - lane) * ${SUMSQ_ITEMS}u + lane;
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < ${SUMSQ_ITEMS}u; j++) {
    let idx = start + j * ${SUMSQ_WG}u;
    if (idx < u.n) {
      let x = X[idx];
      acc += x * x;
    }
  }
  OUT[u.base + k] = acc.x + acc.y + acc.z + acc.w;`,
  });
}

/**
 * Second stage: one workgroup sums all `n` partials (tree in workgroup memory, one barrier per
 * level: a single workgroup, so the barrier cost on CPU adapters is negligible) and writes the
 * global norm sqrt(total) to S[0].
 */
function normFinalizeKernelBuild() {
  return makeKernel('adamw.norm', [['n', 'u32']], [['PARTS', 'read', 'f32'], ['S', 'rw', 'f32']], `var<workgroup> sh: array<f32, ${NORM_WG}>;
@compute @workgroup_size(${NORM_WG}) fn main(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var i = l; i < u.n; i += ${NORM_WG}u) { acc += PARTS[i]; }
  sh[l] = acc;
  workgroupBarrier();
  for (var w = ${NORM_WG / 2}u; w > 0u; w = w >> 1u) {
    if (l < w) { sh[l] += sh[l + w]; }
    workgroupBarrier();
  }
  if (l == 0u) { S[0] = sqrt(sh[0]); }
}`);
}

// Kernels are pure functions of their arguments: built once, then shared (and so is the pipeline).
export const adamwKernel = memoKernel(adamwKernelBuild);
export const sumSquaresKernel = memoKernel(sumSquaresKernelBuild);
export const normFinalizeKernel = memoKernel(normFinalizeKernelBuild);
