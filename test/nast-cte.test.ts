import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertClose } from './helpers/check.js';
import {
  aggregateCte, buildCteReport, computeCte, gradientScale, layerScales, minMaxAlpha, negationPositions,
  type TracedPair,
} from '../src/nast/cte.js';
import { cteUpgradeNote, parseCteReport } from '../src/nast/cte-report-parse.js';
import { heatmapSvg } from '../src/nast/heatmap-svg.js';
import { updateShares } from '../src/nast/update-shares.js';
import { barChartSvg, markdownTable } from '../src/io/report.js';

const SOT = 49406;
const EOT = 49407;

function closeMatrix(what: string, actual: readonly (readonly number[])[], expected: readonly (readonly number[])[], tol = 1e-12): void {
  assert.is(actual.length, expected.length, `${what}: rows`);
  actual.forEach((row, i) => {
    assert.is(row.length, expected[i].length, `${what}: row ${i} length`);
    assertClose(`${what} row ${i}`, row, expected[i], tol, tol);
  });
}

// ---- CTE(l, p) -------------------------------------------------------------------------------

test('computeCte: known values, (S_corr - S_lp) / (S_corr - S_foil)', () => {
  const r = computeCte(0.30, 0.20, [[0.30, 0.20, 0.25], [0.28, 0.30, 0.35]]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assertClose('d', [r.d], [0.1], 1e-12, 1e-12);
  closeMatrix('cte', r.cte, [[0, 1, 0.5], [0.2, 0, -0.5]]);
});

test('computeCte: negative d keeps the formula (fraction of the gap moved)', () => {
  // The model prefers the foil (d = -0.1); patching that fully restores the foil gives 1.
  const r = computeCte(0.2, 0.3, [[0.3, 0.2, 0.25]]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assertClose('d', [r.d], [-0.1], 1e-12, 1e-12);
  closeMatrix('cte', r.cte, [[1, 0, 0.5]]);
});

test('computeCte: |d| < minDelta is skipped with a reason, never divided', () => {
  const r = computeCte(0.2, 0.2005, [[0.1, 0.9]]);
  assert.not.ok(r.ok);
  if (r.ok) return;
  assert.match(r.reason, /minDelta 0.001/);
  assert.ok(Math.abs(r.d + 5e-4) < 1e-12);
  const zero = computeCte(0.4, 0.4, [[0.1]], 0);
  assert.not.ok(zero.ok, 'd = 0 is skipped even with minDelta 0');
  const custom = computeCte(0.2, 0.2005, [[0.1]], 1e-4);
  assert.ok(custom.ok, 'a smaller minDelta keeps the pair');
  assert.throws(() => computeCte(0.3, 0.2, [[0.1, NaN]]), /S_lp\[0\]\[1\] = NaN is not finite/);
  assert.throws(() => computeCte(0.3, 0.2, [[0.1, 0.2], [0.1]]), /row 1 has 1 positions, row 0 has 2/);
});

// ---- negation positions ------------------------------------------------------------------------

test('negationPositions: the rules differ (default), after, eot and all; padding excluded', () => {
  const cap = [SOT, 997, 533, 871, 3245, 269, EOT, 0, 0, 0];
  const foil = [SOT, 997, 533, 2067, 3245, 269, EOT, 0, 0, 0];
  // differ: exactly where the ids differ (the negator and its counterpart), nothing after it.
  assert.equal(negationPositions(cap, foil), [3]);
  assert.equal(negationPositions(cap, foil, { rule: 'differ' }), [3]);
  assert.equal(negationPositions(cap, foil, { rule: 'after' }), [3, 4, 5, 6]);
  assert.equal(negationPositions(cap, foil, { rule: 'eot' }), [6]);
  assert.equal(negationPositions(cap, foil, { rule: 'all' }), [0, 1, 2, 3, 4, 5, 6]);
  // Two differing tokens apart: differ takes both and not the shared one between them.
  assert.equal(negationPositions([SOT, 1, 2, 3, EOT], [SOT, 7, 2, 8, EOT]), [1, 3]);
  assert.equal(negationPositions([SOT, 1, 2, 3, EOT], [SOT, 7, 2, 8, EOT], { rule: 'after' }), [1, 2, 3, 4]);
  // Hugging Face pads with EOT itself; padding that differs after EOT is ignored.
  assert.equal(negationPositions([SOT, 5, 6, EOT, EOT, EOT], [SOT, 5, 7, EOT, 0, 9]), [2]);
  assert.equal(negationPositions([SOT, 5, 6, EOT, EOT, EOT], [SOT, 5, 7, EOT, 0, 9], { rule: 'after' }), [2, 3]);
  // The difference can be right after SOT.
  assert.equal(negationPositions([SOT, 1, 2, EOT], [SOT, 3, 2, EOT], { rule: 'after' }), [1, 2, 3]);
  assert.throws(() => negationPositions(cap, foil, { rule: 'first' as never }), /unknown rule "first" \(expected differ, after, eot, all\)/);
});

test('negationPositions: different lengths, identical sequences or no EOT are errors naming both captions', () => {
  const opts = { caption: 'there is no edema.', foil: 'there is severe pulmonary edema.' };
  assert.throws(() => negationPositions([SOT, 1, 2, 3, EOT], [SOT, 1, 4, 3, 5, EOT], opts),
    /caption "there is no edema\." and foil "there is severe pulmonary edema\." have different token lengths \(5 vs 6 through EOT\)/);
  assert.throws(() => negationPositions([SOT, 1, 2, EOT], [SOT, 1, 2, EOT, 7], { caption: 'a', foil: 'b' }), /caption "a" and foil "b" tokenise identically/);
  assert.throws(() => negationPositions([SOT, 1, 2], [SOT, 1, 3, EOT]), /no EOT token \(49407\) in the caption ids of caption ids \[49406, 1, 2\]/);
  // A custom EOT id.
  assert.equal(negationPositions([0, 1, 2, 9], [0, 1, 3, 9], { eotId: 9, rule: 'after' }), [2, 3]);
});

// ---- aggregation -----------------------------------------------------------------------------

test('aggregateCte: CTE_l over negation-bearing entries, mean matrix aligned from the start, std', () => {
  // Three residual indices. Pair A: 4 positions, negation at [2, 3]; pair B: 5 positions, at [3, 4].
  const a = { cte: [[0, 0, 1, 0.5], [0, 0, 0.6, 0.4], [0, 0, 0.1, 0.3]], positions: [2, 3], polarity: 'caption' as const };
  const b = { cte: [[0, 0, 0, 0.9, 0.7], [0, 0, 0, 0.2, 0.2], [0, 0.5, 0, 0.4, 0.8]], positions: [3, 4], polarity: 'foil' as const };
  const agg = aggregateCte([a, b], 3, { resamples: 2000, seed: 3 });
  // Pooled entries per index: l0 {1, .5, .9, .7}, l1 {.6, .4, .2, .2}, l2 {.1, .3, .4, .8}.
  assertClose('cte per index', agg.cteIndex, [0.775, 0.35, 0.4], 1e-12, 1e-12);
  const sd = (xs: number[]) => {
    const m = xs.reduce((s, x) => s + x, 0) / xs.length;
    return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length);
  };
  // Spread across pairs: std of each pair's own mean (A: .75 .5 .2; B: .8 .2 .6).
  assertClose('std across pairs', agg.cteIndexStd, [sd([0.75, 0.8]), sd([0.5, 0.2]), sd([0.2, 0.6])], 1e-12, 1e-12);
  // Two pairs with two entries each: a resample holds A twice, B twice or one of each, so the
  // interval's ends are the all-A and all-B means (each drawn with probability 1/4).
  assertClose('ci95 l0', agg.cteIndexCi95[0], [0.75, 0.8], 1e-12, 1e-12);
  assertClose('ci95 l1', agg.cteIndexCi95[1], [0.2, 0.5], 1e-12, 1e-12);
  assert.equal(aggregateCte([a, b], 3, { resamples: 0 }).cteIndexCi95, [], 'no resamples, no interval');
  // Columns 0-3 average both pairs; column 4 only B (A ends at its EOT, position 3).
  closeMatrix('cte_mean', agg.cteMean, [
    [0, 0, 0.5, 0.7, 0.7],
    [0, 0, 0.3, 0.3, 0.2],
    [0, 0.25, 0.05, 0.35, 0.8],
  ]);
  closeMatrix('cte_std', agg.cteStd, [
    [0, 0, 0.5, 0.2, 0],
    [0, 0, 0.3, 0.1, 0],
    [0, 0.25, 0.05, 0.05, 0],
  ]);
  assert.equal(agg.cteCount, [2, 2, 2, 2, 1]);
  assertClose('caption subset', agg.byPolarity.caption!, [0.75, 0.5, 0.2], 1e-12, 1e-12);
  assertClose('foil subset', agg.byPolarity.foil!, [0.8, 0.2, 0.6], 1e-12, 1e-12);
  // Pooled, not the average of the two subset vectors (which would differ with unequal counts).
  const c = { cte: [[0, 0, 0.2, 0.2], [0, 0, 0.1, 0.1], [0, 0, 0, 0]], positions: [2, 3], polarity: 'caption' as const };
  const agg3 = aggregateCte([a, b, c], 3);
  assertClose('pooled over 6 entries', [agg3.cteIndex[0]], [(1 + 0.5 + 0.9 + 0.7 + 0.2 + 0.2) / 6], 1e-12, 1e-12);
  assert.throws(() => aggregateCte([a], 4), /pair 0 has 3 CTE rows, expected 4/);
  assert.throws(() => aggregateCte([{ ...a, positions: [4] }], 3), /pair 0 position 4 is outside its 4 positions/);
  assert.throws(() => aggregateCte([], 3), /no pairs/);
});

test('minMaxAlpha: min-max over the layers given; all equal gives all ones', () => {
  assertClose('alpha', minMaxAlpha([0.1, 0.5, 0.3, -0.3]), [0.5, 1, 0.75, 0], 1e-12, 1e-12);
  assert.equal(minMaxAlpha([0.2, 0.2, 0.2]), [1, 1, 1]);
  assert.equal(minMaxAlpha([0]), [1]);
  assert.throws(() => minMaxAlpha([0.1, NaN]), /CTE of layer 2 = NaN/);
});

test('gradientScale and layerScales: alpha^beta, alpha 0 -> exactly 0, block i takes index i + 1', () => {
  assertClose('beta 2', gradientScale([0, 0.25, 1], 2), [0, 0.0625, 1], 1e-15, 0);
  assertClose('beta 0.5', gradientScale([0, 0.25, 1], 0.5), [0, 0.5, 1], 1e-15, 0);
  assert.ok(Object.is(gradientScale([0], 0.01)[0], 0), 'alpha 0 gives exactly +0 for any beta > 0');
  assert.throws(() => gradientScale([0.5], 0), /beta must be a finite number > 0, got 0/);
  assert.throws(() => gradientScale([0.5], -1), /beta must be/);
  assert.throws(() => gradientScale([1.5], 1), /alpha\[0\] = 1.5 is outside \[0, 1\]/);
  // alpha over layers 1..3 -> block i takes layer i + 1's alpha.
  assert.equal(layerScales([0, 0.5, 1]), [0, 0.5, 1]);
  assertClose('beta 3', layerScales([0.5, 0.2, 0], 3), [0.125, 0.008, 0], 1e-15, 0);
  assert.throws(() => layerScales([]), /one entry per text-encoder layer, got none/);
});

// ---- report ------------------------------------------------------------------------------------

/** S_lp giving chosen CTE values: S_lp = S_corr - cte * d. */
function sLpFor(sCorr: number, d: number, cte: number[][]): number[][] {
  return cte.map((row) => row.map((c) => sCorr - c * d));
}

function traced(): TracedPair[] {
  const ctePairA = [[0, 0, 1, 0.5], [0, 0, 0.6, 0.4], [0, 0, 0.1, 0.3]];
  const ctePairB = [[0, 0, 0, 0.9, 0.7], [0, 0, 0, 0.2, 0.2], [0, 0.5, 0, 0.4, 0.8]];
  return [
    {
      image: 'img/a.png', caption: 'no edema.', foil: 'severe edema.',
      idsCaption: [SOT, 1, 2, EOT, 0, 0], idsFoil: [SOT, 1, 3, EOT, 0, 0],
      sCorr: 0.31, sFoil: 0.21,
      // Two extra columns past EOT are dropped.
      sLp: sLpFor(0.31, 0.1, ctePairA).map((r) => [...r, 0.5, 0.5]),
      polarity: 'caption',
    },
    {
      image: 'img/b.png', caption: 'there is no <effusion> & "x".', foil: 'there is same thing.',
      idsCaption: [SOT, 4, 5, 6, EOT], idsFoil: [SOT, 4, 5, 7, EOT],
      sCorr: 0.25, sFoil: 0.29,
      sLp: sLpFor(0.25, -0.04, ctePairB),
      polarity: 'foil',
    },
    {
      image: 'img/c.png', caption: 'no mass.', foil: 'severe mass.',
      idsCaption: [SOT, 8, EOT], idsFoil: [SOT, 9, EOT],
      sCorr: 0.3, sFoil: 0.2996, sLp: [[0.3, 0.3, 0.3], [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]], polarity: 'caption',
    },
  ];
}

test('buildCteReport: version 2, CTE_l and alpha over layers 1..L, the embeddings beside them', () => {
  const rep = buildCteReport(traced(), { layers: 2, beta: 2, positions: 'after' });
  assert.equal(Object.keys(rep).slice(0, 11), ['version', 'layers', 'positions', 'pairs', 'skipped', 'cte_mean', 'cte_embeddings', 'cte_layer', 'alpha', 'beta', 'cte_std']);
  assert.is(rep.version, 2);
  assert.is(rep.layers, 2);
  assert.is(rep.positions, 'after');
  assert.is(rep.beta, 2);
  assert.is(rep.pairs.length, 2);
  assert.equal(Object.keys(rep.pairs[0]).slice(0, 8), ['image', 'caption', 'foil', 'ids', 's_corr', 's_foil', 'd', 'cte']);
  assert.equal(rep.pairs[0].ids, [SOT, 1, 2, EOT]);
  assert.equal(rep.pairs[0].positions, [2, 3]);
  assert.equal(rep.pairs[1].positions, [3, 4]);
  closeMatrix('pair A cte (all L + 1 rows)', rep.pairs[0].cte, [[0, 0, 1, 0.5], [0, 0, 0.6, 0.4], [0, 0, 0.1, 0.3]], 1e-9);
  assertClose('pair B d', [rep.pairs[1].d], [-0.04], 1e-9, 1e-12);
  assert.is(rep.skipped.length, 1);
  assert.is(rep.skipped[0].caption, 'no mass.');
  assert.match(rep.skipped[0].reason, /minDelta/);
  assert.is(rep.cte_mean.length, 3, 'the mean matrix keeps the embeddings row');
  assertClose('cte_embeddings', [rep.cte_embeddings], [0.775], 1e-9, 1e-12);
  assertClose('cte_layer', rep.cte_layer, [0.35, 0.4], 1e-9, 1e-12);
  // Min-max over layers 1..2 only: the embeddings' 0.775 would have made layer 1 the minimum of a wider range.
  assertClose('alpha', rep.alpha, [0, 1], 1e-12, 1e-12);
  assert.is(rep.cte_layer_std!.length, 2);
  assert.is(rep.cte_layer_ci95!.length, 2);
  for (const [l, [lo, hi]] of rep.cte_layer_ci95!.entries()) assert.ok(lo <= rep.cte_layer[l] + 1e-12 && rep.cte_layer[l] <= hi + 1e-12, `layer ${l + 1} inside its interval`);
  assert.equal(rep.bootstrap, { resamples: 1000, seed: 0 });
  assert.equal(rep.cte_count, [2, 2, 2, 2, 1]);
  assertClose('caption polarity', rep.cte_layer_by_polarity!.caption!, [0.5, 0.2], 1e-9, 1e-12);

  // The default rule, differ: pair A at [2], pair B at [3] only.
  const d = buildCteReport(traced(), { layers: 2 });
  assert.is(d.positions, 'differ');
  assert.equal(d.pairs.map((p) => p.positions), [[2], [3]]);
  assertClose('differ: embeddings', [d.cte_embeddings], [(1 + 0.9) / 2], 1e-9, 1e-12);
  assertClose('differ: layers', d.cte_layer, [(0.6 + 0.2) / 2, (0.1 + 0.4) / 2], 1e-9, 1e-12);
  assertClose('differ: alpha', d.alpha, [1, 0], 1e-12, 1e-12);
});

test('buildCteReport: malformed pairs are errors naming the pair; all skipped is an error', () => {
  const t = traced();
  assert.throws(() => buildCteReport([{ ...t[0], sLp: t[0].sLp.slice(0, 2) }], { layers: 2 }),
    /pair 0 \(caption "no edema\.", foil "severe edema\."\): S_lp has 2 rows, expected 3 \(L \+ 1 residual indices\)/);
  assert.throws(() => buildCteReport([{ ...t[1], sLp: t[1].sLp.map((r) => r.slice(0, 4)) }], { layers: 2 }),
    /pair 0 .*S_lp row 0 has 4 positions, fewer than the 5 through EOT/);
  assert.throws(() => buildCteReport([{ ...t[0], idsFoil: [SOT, 1, 3, 3, EOT] }], { layers: 2 }), /different token lengths/);
  assert.throws(() => buildCteReport([t[2]], { layers: 2 }), /no usable pairs \(1 given, 1 skipped: "no mass\.": /);
  // A pair that cannot be traced (identical ids, different lengths) is skipped with its source,
  // not an error that loses every other pair; the message has no internal function name.
  const mixed = buildCteReport([t[0], { ...t[1], idsFoil: t[1].idsCaption, source: 'pairs.jsonl:7' }], { layers: 2 });
  assert.is(mixed.pairs.length, 1);
  assert.equal(mixed.skipped.map((x) => x.source), ['pairs.jsonl:7']);
  assert.match(mixed.skipped[0].reason, /^caption .* tokenise identically; there is no negation to trace$/);
  assert.throws(() => buildCteReport([{ ...t[0], idsFoil: t[0].idsCaption }], { layers: 2 }), (e: Error) => /^no usable pairs/.test(e.message));
  assert.throws(() => buildCteReport(t, { layers: 2, beta: 0 }), /beta must be/);
  assert.throws(() => buildCteReport(t, { layers: 2, positions: 'near' as never }), /positions must be one of differ, after, eot, all, got "near"/);
});

test('parseCteReport: round trip, and errors that name the file and the key', () => {
  const rep = buildCteReport(traced(), { layers: 2 });
  const text = JSON.stringify(rep);
  assert.equal(parseCteReport(text, 'cte.json'), rep);
  assert.equal(parseCteReport(JSON.parse(text), 'cte.json'), rep);
  assert.is(cteUpgradeNote(rep, 'cte.json'), null, 'a current file needs no note');

  const broken = (edit: (o: any) => void) => {
    const o = JSON.parse(text);
    edit(o);
    return () => parseCteReport(o, 'runs/x/cte.json');
  };
  assert.throws(() => parseCteReport('{"layers": 3,', 'cte.json'), /^cte.json: is not valid JSON/);
  assert.throws(broken((o) => delete o.alpha), /runs\/x\/cte.json: key "alpha" must be an array, got nothing \(missing\)/);
  assert.throws(broken((o) => (o.layers = 2.5)), /key "layers" must be an integer >= 1/);
  assert.throws(broken((o) => (o.alpha = [0, 1, 1])), /key "alpha" must have 2 entries, has 3/);
  assert.throws(broken((o) => (o.alpha[1] = 1.2)), /key "alpha\[1\]" must be in \[0, 1\]/);
  // In [0, 1] but not the min-max of cte_layer: refused, naming the layer.
  assert.equal(rep.alpha.slice().sort(), [0, 1]);
  assert.throws(broken((o) => (o.alpha = [0.5, 0.5])), /runs\/x\/cte.json: key "alpha\[0\]" is 0.5 but the min-max of cte_layer gives [01] for layer 1; alpha must be cte_layer min-max normalised/);
  assert.throws(broken((o) => (o.alpha = [...o.alpha].reverse())), /key "alpha\[0\]" is [01] but the min-max of cte_layer gives [01] for layer 1/);
  assert.throws(broken((o) => (o.cte_layer = [...o.cte_layer].reverse())), /key "alpha\[0\]" is [01] but the min-max of cte_layer gives [01] for layer 1/);
  // Rounded as files written with a few decimals are (interop/torch's tests write 4): accepted.
  const rounded = {
    version: 2, layers: 4, positions: 'differ', beta: 1, pairs: [], skipped: [], cte_mean: [[0.1], [0.2], [0.5], [0.9], [0.4]],
    cte_embeddings: 0.1, cte_layer: [0.2, 0.5, 0.9, 0.4], alpha: [0, 0.4286, 1, 0.2857],
  };
  assert.equal(parseCteReport(rounded, 'rounded/cte.json').alpha, rounded.alpha);
  assert.throws(() => parseCteReport({ ...rounded, alpha: [0, 0.44, 1, 0.2857] }, 'edited/cte.json'), /alpha\[1\]" is 0\.44 but the min-max of cte_layer gives 0\.428\d* for layer 2/);
  assert.throws(broken((o) => (o.beta = -1)), /key "beta" must be > 0/);
  assert.throws(broken((o) => (o.version = 3)), /key "version" must be 1 or 2, got number 3/);
  assert.throws(broken((o) => (o.positions = 'near')), /key "positions" must be one of "differ", "after", "eot", "all", got the string "near"/);
  assert.throws(broken((o) => delete o.cte_embeddings), /key "cte_embeddings" must be a finite number/);
  assert.throws(broken((o) => (o.cte_layer_ci95[0] = [0.5, 0.1])), /key "cte_layer_ci95\[0\]" must be \[lo, hi\] with lo <= hi/);
  assert.throws(broken((o) => (o.pairs[1].cte[2][4] = 'x')), /key "pairs\[1\].cte\[2\]\[4\]" must be a finite number, got the string "x"/);
  assert.throws(broken((o) => o.pairs[0].cte[1].pop()), /key "pairs\[0\].cte\[1\]" must have 4 entries \(one per position\), has 3/);
  assert.throws(broken((o) => o.pairs[0].cte.pop()), /key "pairs\[0\].cte" must have 3 entries, has 2/);
  assert.throws(broken((o) => (o.pairs[0].ids[2] = -1)), /key "pairs\[0\].ids\[2\]" must be a token id/);
  assert.throws(broken((o) => (o.pairs[0].polarity = 'both')), /key "pairs\[0\].polarity" must be "caption" or "foil"/);
  assert.throws(broken((o) => (o.skipped[0].reason = null)), /key "skipped\[0\].reason" must be a string, got null/);
  assert.throws(broken((o) => o.cte_mean[2].push(0)), /key "cte_mean\[2\]" must have 5 entries/);
  assert.throws(broken((o) => (o.cte_layer = {})), /key "cte_layer" must be an array, got object/);
  assert.throws(() => parseCteReport([], 'cte.json'), /cte.json: must be an object, got an array/);
  // The required keys are enough: extras are optional.
  const minimal = JSON.parse(text);
  for (const k of ['cte_std', 'cte_count', 'cte_layer_std', 'cte_layer_ci95', 'cte_embeddings_std', 'cte_embeddings_ci95', 'bootstrap', 'cte_layer_by_polarity', 'min_delta']) delete minimal[k];
  for (const p of minimal.pairs) {
    delete p.positions;
    delete p.polarity;
  }
  const parsed = parseCteReport(minimal, 'cte.json');
  assert.equal(parsed.alpha, rep.alpha);
  assert.equal(parsed.pairs[0].positions, []);
});

test('parseCteReport: a version-1 file loads as version 2, alpha re-normalised over layers 1..L, with a note', () => {
  // Version 1 (no "version" key): layers = L + 1 residual indices, cte_layer and alpha over all of them.
  const v1 = {
    layers: 3, beta: 1.5,
    pairs: [{ image: 'a.png', caption: 'no edema.', foil: 'severe edema.', ids: [SOT, 1, 2, EOT], s_corr: 0.3, s_foil: 0.2, d: 0.1, cte: [[0, 0, 1, 0.5], [0, 0, 0.6, 0.4], [0, 0, 0.1, 0.3]], positions: [2, 3] }],
    skipped: [],
    cte_mean: [[0, 0, 1, 0.5], [0, 0, 0.6, 0.4], [0, 0, 0.1, 0.3]],
    cte_layer: [0.75, 0.5, 0.2], alpha: [1, 0.5454545454545454, 0], cte_layer_std: [0.25, 0.1, 0.1],
    cte_layer_by_polarity: { caption: [0.75, 0.5, 0.2], foil: null },
  };
  const r = parseCteReport(JSON.stringify(v1), 'old/cte.json');
  assert.is(r.version, 2);
  assert.is(r.upgraded_from, 1);
  assert.is(r.layers, 2);
  assert.is(r.positions, 'after');
  assert.is(r.cte_embeddings, 0.75);
  assert.equal(r.cte_layer, [0.5, 0.2]);
  assert.equal(r.alpha, [1, 0], 'min-max over layers 1..2, without the embeddings');
  assert.equal(r.cte_layer_std, [0.1, 0.1]);
  assert.is(r.cte_embeddings_std, 0.25);
  assert.equal(r.cte_layer_by_polarity, { caption: [0.5, 0.2], foil: null });
  assert.is(r.beta, 1.5);
  assert.is(r.pairs[0].cte.length, 3, 'per-pair rows keep the embeddings');
  assert.match(cteUpgradeNote(r, 'old/cte.json')!, /^old\/cte.json: version-1 cte.json .*alpha re-normalised over layers 1\.\.2 \(1\.000, 0\.000\)/);
  assert.throws(() => parseCteReport({ ...v1, layers: 1 }, 'old/cte.json'), /key "layers" must be an integer >= 2 \(version 1 counts the L \+ 1 residual indices\)/);
  assert.throws(() => parseCteReport({ ...v1, alpha: [1, 2, 0] }, 'old/cte.json'), /key "alpha\[1\]" must be in \[0, 1\]/);
  assert.throws(() => parseCteReport({ ...v1, alpha: [1, 0.9, 0] }, 'old/cte.json'), /key "alpha\[1\]" is 0.9 but the min-max of cte_layer gives 0.54\d* for layer 1/);
});

// ---- SVG ---------------------------------------------------------------------------------------

/** Checks that `svg` is well-formed XML as far as tags, attributes quoting and entities go. */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  let roots = 0;
  while (i < svg.length) {
    const lt = svg.indexOf('<', i);
    const text = svg.slice(i, lt < 0 ? svg.length : lt);
    const badAmp = text.match(/&(?!(amp|lt|gt|quot|#\d+);)/);
    assert.not.ok(badAmp, `unescaped & in text near ${JSON.stringify(text.slice(0, 40))}`);
    assert.not.ok(text.includes('>'), `stray > in text ${JSON.stringify(text.slice(0, 40))}`);
    if (stack.length === 0) assert.ok(text.trim() === '', `text outside the root: ${JSON.stringify(text.slice(0, 40))}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    assert.ok(m, `malformed tag at ${lt}: ${JSON.stringify(svg.slice(lt, lt + 60))}`);
    const [whole, close, name, attrs, self] = m!;
    const badAttrAmp = attrs.match(/&(?!(amp|lt|gt|quot|#\d+);)/);
    assert.not.ok(badAttrAmp, `unescaped & in attributes of <${name}>`);
    if (close) {
      assert.is(stack.pop(), name, `</${name}> closes the wrong element`);
    } else if (!self) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
    i = lt + whole.length;
  }
  assert.equal(stack, [], 'unclosed elements');
  assert.is(roots, 1, 'one root element');
}

const count = (s: string, needle: string) => s.split(needle).length - 1;

test('assertWellFormed itself rejects broken markup', () => {
  assertWellFormed('<svg><g><rect x="1"/></g><text>a &amp; b</text></svg>');
  const rejected = (markup: string) => {
    try {
      assertWellFormed(markup);
      return false;
    } catch {
      return true;
    }
  };
  for (const bad of ['<svg><g></svg>', '<svg><text>a & b</text></svg>', '<svg><rect x=1/></svg>', '<svg></svg><svg></svg>', '<svg><g>']) {
    assert.ok(rejected(bad), `accepted ${bad}`);
  }
});

test('heatmapSvg: the CTE_l bars have their own axis; an embeddings value far outside it is clipped and written out', () => {
  // Layers near 0.005 beside embeddings at 1 (what one traced pair gives): the layers' bars must be visible.
  const bars = { embeddings: 1, layers: [0.0045, 0.0027, -0.0034, 0] };
  const svg = heatmapSvg([[1, 0], [0.004, 0.005], [0.002, 0.003], [-0.003, -0.004], [0, 0]], null, bars);
  assertWellFormed(svg);
  const widths = [...svg.matchAll(/<rect class="bar[^"]*" x="[^"]+" y="[^"]+" width="([^"]+)"/g)].map((m) => Number(m[1]));
  assert.is(widths.length, 5);
  // Bar area is 160 px wide; the largest layer bar spans its share of the axis [-0.0034, 0.0045].
  assert.ok(widths[1] > 80, `layer 1's bar is ${widths[1]} px wide`);
  assert.ok(widths[3] > 60, `layer 3's (negative) bar is ${widths[3]} px wide`);
  assert.ok(widths[0] <= 160 && widths[0] > 0, `the embeddings' bar stays inside the bar area (${widths[0]} px)`);
  assert.ok(svg.includes('class="clipped"') && svg.includes('1.000 ▶'), 'the clipped embeddings value is written out');
  assert.match(svg, /its bar is clipped to the layers(&apos;|&#39;|')? axis/);
  // Values inside the axis are not marked as clipped.
  assert.not.ok(heatmapSvg([[0.1], [0.2]], null, { embeddings: 0.1, layers: [0.2] }).includes('class="clipped"'));
});

test('heatmapSvg: well-formed, one rect per cell, one bar per row (embeddings grey), intervals, outlined positions, escaped tokens', () => {
  const rep = buildCteReport(traced(), { layers: 2 });
  const tokens = ['<|startoftext|>', 'there', 'is', 'no & "x"', '<|endoftext|>'];
  const bars = { embeddings: rep.cte_embeddings, layers: rep.cte_layer, ci95: rep.cte_layer_ci95, alpha: rep.alpha };
  const svg = heatmapSvg(rep.cte_mean, tokens, bars, { title: 'CTE <test>', positions: [3] });
  assertWellFormed(svg);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.is(count(svg, '<rect class="cell"'), 3 * 5);
  assert.is(count(svg, '<rect class="bar'), 3);
  assert.is(count(svg, '<rect class="bar embeddings"'), 1);
  assert.ok(svg.includes('not a layer: not in the min-max'));
  assert.is(count(svg, '<line class="ci"'), 2);
  assert.is(count(svg, '<rect class="position"'), 1);
  assert.ok(svg.includes('&lt;|endoftext|&gt;'));
  assert.ok(svg.includes('no &amp; &quot;x&quot;'));
  assert.ok(svg.includes('CTE &lt;test&gt;'));
  // Strongest positive cell is full red, zero is the neutral mid colour.
  assert.ok(svg.includes('fill="#b2182b"'), 'vmax cell is the end colour');
  assert.ok(svg.includes('fill="#f7f7f7"'), 'zero cell is neutral');
  // Without tokens, positions are numbered; negative CTE_l bars are drawn too.
  const plain = heatmapSvg([[0.5, -0.25], [-1, 0]], undefined, { embeddings: 0.3, layers: [-0.2] });
  assertWellFormed(plain);
  assert.is(count(plain, '<rect class="cell"'), 4);
  assert.is(count(plain, '<rect class="bar'), 2);
  assert.ok(plain.includes('fill="#2166ac"'), 'most negative cell is full blue');
  assert.throws(() => heatmapSvg([[1, 2], [3]], null, { embeddings: 0, layers: [0] }), /row 1 has 1 positions, row 0 has 2/);
  assert.throws(() => heatmapSvg([[1, 2], [3, 4]], ['a'], { embeddings: 0, layers: [0] }), /1 tokens for 2 positions/);
  assert.throws(() => heatmapSvg([[1, 2], [3, 4]], null, { embeddings: 0, layers: [0, 1] }), /2 layer bars, cteMean has 2 rows \(embeddings \+ 1 layers expected\)/);
  assert.throws(() => heatmapSvg([[1, 2], [3, 4]], null, { embeddings: 0, layers: [0] }, { positions: [2] }), /outlined position 2 is outside the 2 columns/);
});

test('barChartSvg: well-formed, one bar per value, errors on ragged series', () => {
  const svg = barChartSvg({
    title: 'Claim accuracy <%>', labels: ['R@1', 'R@5', 'Claim & acc'], yLabel: '%',
    series: [{ name: 'CLIP', values: [23.5, 34.7, 24.6] }, { name: 'NAST "ours"', values: [49.5, 65.7, -3] }],
  });
  assertWellFormed(svg);
  assert.is(count(svg, '<rect class="bar"'), 6);
  assert.is(count(svg, '<rect class="legend"'), 2);
  assert.ok(svg.includes('Claim &amp; acc') && svg.includes('NAST &quot;ours&quot;'));
  assert.throws(() => barChartSvg({ labels: ['a', 'b'], series: [{ name: 's', values: [1] }] }), /series "s" has 1 values, expected 2/);
});

// ---- tables and update shares ------------------------------------------------------------------

test('markdownTable: alignment, digits, escaped pipes, row length errors', () => {
  const md = markdownTable(['Model', 'R@1', 'note'], [['CLIP', 23.456, 'a|b'], ['NAST', 49.5, 'x\ny']], { digits: 1 });
  assert.is(md, [
    '| Model | R@1 | note |',
    '| --- | ---: | --- |',
    '| CLIP | 23.5 | a\\|b |',
    '| NAST | 49.5 | x y |',
    '',
  ].join('\n'));
  assert.is(markdownTable(['a'], [[-0.0001]], { digits: 2 }), '| a |\n| ---: |\n| 0.00 |\n');
  assert.throws(() => markdownTable(['a', 'b'], [['x']]), /row 0 has 1 cells, expected 2 \(a, b\)/);
});

test('updateShares: per-layer shares and top-3 / top-5 by CTE (Table 4)', () => {
  const norms = [1, 2, 3, 4, 5, 5];
  const cteBlocks = [0.1, 0.9, 0.3, 0.8, 0.2, 0.0];
  const r = updateShares(norms, cteBlocks);
  assertClose('shares', r.shares, [0.05, 0.1, 0.15, 0.2, 0.25, 0.25], 1e-12, 1e-12);
  assert.equal(r.ranking, [1, 3, 2, 4, 0, 5]);
  assertClose('top3', [r.top3], [0.1 + 0.2 + 0.15], 1e-12, 1e-12);
  assertClose('top5', [r.top5], [0.45 + 0.25 + 0.05], 1e-12, 1e-12);
  assertClose('topK ends at 1', [r.topK[5]], [1], 1e-12, 1e-12);
  assert.is(r.total, 20);
  // cte_layer over residual indices 0..L: index 0 (embeddings) is ignored, block i takes i + 1.
  const withEmb = updateShares(norms, [99, ...cteBlocks]);
  assert.equal(withEmb.ranking, r.ranking);
  // Ties keep the lower block first; fewer than 5 blocks -> top5 is everything.
  const small = updateShares([1, 1, 2], [0.5, 0.5, 0.1]);
  assert.equal(small.ranking, [0, 1, 2]);
  assertClose('small top3', [small.top3, small.top5], [1, 1], 1e-12, 1e-12);
  assert.throws(() => updateShares([1, 2], [0.1, 0.2, 0.3, 0.4]), /cte_layer has 4 values; expected 2 \(one per block\) or 3/);
  // Nothing updated (--lr 1e-300): zero shares with a note, not an error after the adapter was written.
  const none = updateShares([0, 0], [0.1, 0.2]);
  assert.equal([none.shares, none.top3, none.top5, none.topK, none.total], [[0, 0], 0, 0, [0, 0], 0]);
  assert.match(none.note!, /every update norm is 0/);
  assert.is(r.note, undefined);
  assert.throws(() => updateShares([1, -1], [0.1, 0.2]), (e: Error) => /^update shares: the update norm of layer 2 is -1/.test(e.message));
});

test.run();
