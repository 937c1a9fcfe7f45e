import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers/gpu.js';
import { fixtureJson } from './helpers/fixtures.js';
import { assertClose, gradCheck, toGpu } from './helpers/check.js';
import { f32, nd, randNd, type Nd } from './helpers/ref.js';
import { backward, scope, tensor, type Tensor } from '../src/engine/index.js';
import { choiceLoss, clipLoss, nastLoss } from '../src/nast/losses.js';

// ---- float64 references ----------------------------------------------------------------------

function normRows(x: Nd): Float64Array {
  const [n, e] = x.shape;
  const out = new Float64Array(n * e);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < e; j++) s += x.data[i * e + j] ** 2;
    const r = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < e; j++) out[i * e + j] = x.data[i * e + j] * r;
  }
  return out;
}

/** -log softmax(logits)[target]. */
function nll(logits: readonly number[], target: number): number {
  const m = Math.max(...logits);
  let s = 0;
  for (const v of logits) s += Math.exp(v - m);
  return m + Math.log(s) - logits[target];
}

function dotRows(a: Float64Array, i: number, b: Float64Array, j: number, e: number): number {
  let s = 0;
  for (let k = 0; k < e; k++) s += a[i * e + k] * b[j * e + k];
  return s;
}

function refClip(img: Nd, txt: Nd, ls: number): number {
  const [b, e] = img.shape;
  const a = normRows(img);
  const t = normRows(txt);
  const scale = Math.exp(ls);
  const logits = (i: number, j: number) => scale * dotRows(a, i, t, j, e);
  let sum = 0;
  for (let i = 0; i < b; i++) {
    sum += nll(Array.from({ length: b }, (_, j) => logits(i, j)), i);
    sum += nll(Array.from({ length: b }, (_, j) => logits(j, i)), i);
  }
  return sum / (2 * b);
}

function refClaim(img: Nd, claims: Nd, counts: number[], answers: number[], ls: number): number {
  const [b, e] = img.shape;
  const a = normRows(img);
  const c = normRows(claims);
  const scale = Math.exp(ls);
  let sum = 0;
  let o = 0;
  for (let i = 0; i < b; i++) {
    sum += nll(Array.from({ length: counts[i] }, (_, j) => scale * dotRows(a, i, c, o + j, e)), answers[i]);
    o += counts[i];
  }
  return sum / b;
}

const scalar = (v: number) => nd([], [v]);
const LS = Math.log(1 / 0.07);

// ---- gradient checks -------------------------------------------------------------------------

const TOL = { rtol: 2e-5, atol: 2e-6, gradRtol: 2e-3, gradAtol: 2e-5 };

test('clipLoss: forward and gradients (embeddings and logit scale) vs float64 finite differences', async () => {
  const ctx = await gpu();
  for (const [b, e, ls] of [[3, 5, LS], [1, 4, 0.5], [6, 7, 1.2]] as const) {
    await gradCheck(ctx, `clipLoss B=${b} E=${e}`,
      (img, txt, s) => clipLoss(img, txt, s),
      (img, txt, s) => scalar(refClip(img, txt, s.data[0])),
      [randNd([b, e], 11 + b, -2, 2), randNd([b, e], 23 + e, -2, 2), nd([1], [ls])], TOL);
  }
});

test('clipLoss: a plain-number logit scale, and a [] logit-scale tensor', async () => {
  const ctx = await gpu();
  const img = f32(randNd([3, 5], 5, -1, 1));
  const txt = f32(randNd([3, 5], 6, -1, 1));
  await gradCheck(ctx, 'clipLoss numeric scale', (a, b) => clipLoss(a, b, LS), (a, b) => scalar(refClip(a, b, LS)), [img, txt], TOL);
  await gradCheck(ctx, 'clipLoss [] scale', (a, b, s) => clipLoss(a, b, s), (a, b, s) => scalar(refClip(a, b, s.data[0])),
    [img, txt, nd([], [2])], TOL);
});

for (const [counts, answers] of [
  [[2, 4, 3], [1, 3, 0]],
  [[4, 2, 2, 3], [3, 0, 1, 2]],
  [[3, 3, 3], [2, 0, 1]],
  [[1, 4, 2], [0, 2, 1]],
] as const) {
  test(`choiceLoss: counts [${counts}] answers [${answers}]: forward and gradients incl. logit scale`, async () => {
    const ctx = await gpu();
    const c = [...counts];
    const a = [...answers];
    const total = c.reduce((x, y) => x + y, 0);
    await gradCheck(ctx, `choiceLoss [${c}]`,
      (img, cl, s) => choiceLoss(img, cl, c, a, s),
      (img, cl, s) => scalar(refClaim(img, cl, c, a, s.data[0])),
      [randNd([c.length, 5], 31 + total, -2, 2), randNd([total, 5], 41 + total, -2, 2), nd([1], [LS])], TOL);
  });
}

test('choiceLoss: padding slots take no probability: same loss as without the extra claims', async () => {
  const ctx = await gpu();
  // Sample 0 has 2 claims and sample 1 has 5: the mask must make sample 0's loss exactly its
  // own 2-way cross-entropy, whatever the padding rows hold.
  const img = f32(randNd([2, 5], 3, -1, 1));
  const claims = f32(randNd([7, 5], 4, -1, 1));
  const loss = choiceLoss(toGpu(ctx, img), toGpu(ctx, claims), [2, 5], [1, 4], LS);
  assertClose('padded claim loss', await loss.toArray(), [refClaim(img, claims, [2, 5], [1, 4], LS)], 2e-6, 2e-6);
  loss.dispose();
});

test('nastLoss: lambda * L_CLIP + (1 - lambda) * L_claim, gradients through both', async () => {
  const ctx = await gpu();
  const counts = [3, 2, 4];
  const answers = [0, 1, 3];
  for (const lambda of [0.3, 0, 1]) {
    await gradCheck(ctx, `nastLoss lambda=${lambda}`,
      (img, txt, cl, s) => scope(ctx, () => nastLoss(lambda, clipLoss(img, txt, s), choiceLoss(img, cl, counts, answers, s))),
      (img, txt, cl, s) => scalar(lambda * refClip(img, txt, s.data[0]) + (1 - lambda) * refClaim(img, cl, counts, answers, s.data[0])),
      [randNd([3, 5], 51, -2, 2), randNd([3, 5], 52, -2, 2), randNd([9, 5], 53, -2, 2), nd([1], [LS])], TOL);
  }
});

test('NegBench recipe: alpha * L_CLIP + (1 - alpha) * L_MCQ, four options per image, forward and gradients vs float64', async () => {
  // NegBench Eq. (2): the MCQ term is the cross-entropy over each image's four options (Eq. 1),
  // which the trainer computes with choiceLoss at K = 4 and the weight NegBench calls alpha.
  const ctx = await gpu();
  const counts = [4, 4, 4, 4];
  for (const [alpha, answers] of [[0.5, [2, 0, 3, 1]], [0.9, [0, 0, 1, 3]]] as const) {
    const a = [...answers];
    await gradCheck(ctx, `negbench alpha=${alpha}`,
      (img, txt, mcq, s) => scope(ctx, () => nastLoss(alpha, clipLoss(img, txt, s), choiceLoss(img, mcq, counts, a, s))),
      (img, txt, mcq, s) => scalar(alpha * refClip(img, txt, s.data[0]) + (1 - alpha) * refClaim(img, mcq, counts, a, s.data[0])),
      [randNd([4, 6], 61, -2, 2), randNd([4, 6], 62, -2, 2), randNd([16, 6], 63, -2, 2), nd([1], [LS])], TOL);
  }
});

test('nastLoss: a missing term is allowed only with weight 0', async () => {
  const ctx = await gpu();
  const a = tensor(ctx, [2], []);
  const b = tensor(ctx, [5], []);
  const only = nastLoss(0, null, b);
  assertClose('lambda 0, no clip', await only.toArray(), [5], 0, 0);
  const mix = nastLoss(0.25, a, b);
  assertClose('0.25 * 2 + 0.75 * 5', await mix.toArray(), [0.25 * 2 + 0.75 * 5], 1e-6, 0);
  assert.throws(() => nastLoss(0.5, null, b), /lClip is missing but lambda = 0.5/);
  assert.throws(() => nastLoss(1.5, a, b), /lambda must be in \[0, 1\], got 1.5/);
  assert.throws(() => nastLoss(0.5, a, tensor(ctx, [1, 2], [2])), /lClaim must be a one-element loss/);
  for (const t of [a, b, only, mix]) t.dispose();
});

// ---- PyTorch fixture -------------------------------------------------------------------------

interface Fixture {
  batch: number; dim: number; counts: number[]; answers: number[]; lambda: number;
  image: number[]; text: number[]; claims: number[]; logit_scale: number[];
  clip: { loss: number; d_image: number[]; d_text: number[]; d_logit_scale: number[] };
  claim: { loss: number; d_image: number[]; d_claims: number[]; d_logit_scale: number[] };
  total: { loss: number; d_image: number[]; d_text: number[]; d_claims: number[]; d_logit_scale: number[] };
}

test('losses match the PyTorch reference (scripts/ref/nast_losses_ref.py): values and gradients', async () => {
  const fx = await fixtureJson<Fixture>('nast/losses.json');
  const { batch: b, dim: e, counts, answers, lambda } = fx;
  const img = nd([b, e], fx.image);
  const txt = nd([b, e], fx.text);
  const cl = nd([counts.reduce((x, y) => x + y, 0), e], fx.claims);
  const ls = fx.logit_scale[0];
  // The float64 references agree with PyTorch to rounding.
  assertClose('ref L_CLIP vs torch', [refClip(img, txt, ls)], [fx.clip.loss], 1e-12, 1e-12);
  assertClose('ref L_claim vs torch', [refClaim(img, cl, counts, answers, ls)], [fx.claim.loss], 1e-12, 1e-12);

  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const ti = toGpu(ctx, img, true);
  const tt = toGpu(ctx, txt, true);
  const tc = toGpu(ctx, cl, true);
  const ts = toGpu(ctx, nd([1], [ls]), true);
  const parts: Tensor[] = [];
  const loss = scope(ctx, () => {
    const lc = clipLoss(ti, tt, ts);
    const lm = choiceLoss(ti, tc, counts, answers, ts);
    parts.push(lc.keep(), lm.keep());
    return nastLoss(lambda, lc, lm);
  });
  assertClose('L_CLIP', await parts[0].toArray(), [fx.clip.loss], 2e-6, 2e-6);
  assertClose('L_claim', await parts[1].toArray(), [fx.claim.loss], 2e-6, 2e-6);
  assertClose('L_total', await loss.toArray(), [fx.total.loss], 2e-6, 2e-6);
  backward(loss);
  const g = fx.total;
  assertClose('d image', await ti.grad!.toArray(), g.d_image, 1e-4, 2e-6);
  assertClose('d text', await tt.grad!.toArray(), g.d_text, 1e-4, 2e-6);
  assertClose('d claims', await tc.grad!.toArray(), g.d_claims, 1e-4, 2e-6);
  assertClose('d logit scale', await ts.grad!.toArray(), g.d_logit_scale, 1e-4, 2e-6);
  for (const t of [ti, tt, tc, ts, loss, ...parts]) t.dispose();
  assert.is(ctx.pool.liveBytes, live, 'GPU memory leaked by the loss graph');
});

// ---- argument errors -------------------------------------------------------------------------

test('choiceLoss and clipLoss: bad arguments give errors that name them', async () => {
  const ctx = await gpu();
  const img = tensor(ctx, new Array(15).fill(0.5), [3, 5]);
  const cl = tensor(ctx, new Array(45).fill(0.1), [9, 5]);
  const txt4 = tensor(ctx, new Array(20).fill(0.5), [4, 5]);
  const bad = tensor(ctx, [1, 2], [2]);
  assert.throws(() => choiceLoss(img, cl, [2, 4, 2], [0, 0, 0], 1), /counts sum to 8 claims but claimEmb has 9 rows/);
  assert.throws(() => choiceLoss(img, cl, [2, 4, 3], [0, 4, 0], 1), /answers\[1\] = 4 is not a claim index in \[0, 4\)/);
  assert.throws(() => choiceLoss(img, cl, [2, 4], [0, 0], 1), /counts has 2 entries but imageEmb has 3 rows/);
  assert.throws(() => choiceLoss(img, cl, [2, 0, 7], [0, 0, 0], 1), /counts\[1\] = 0/);
  assert.throws(() => choiceLoss(img, cl, [2, 4, 3], [0, 0, 0], bad), /logitScale must be a one-element f32 tensor/);
  assert.throws(() => clipLoss(img, txt4, 1), /imageEmb \[3, 5\] and textEmb \[4, 5\] must have the same/);
  assert.throws(() => clipLoss(img, img, NaN), /logitScale must be a finite number/);
  for (const t of [img, cl, txt4, bad]) t.dispose();
});

test.run();
