import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { EvalReport } from '../src/nast/evaluate.js';
import { COLUMNS, PAPER_COUNTERPARTS, TABLE_COLUMNS, paperColumnsSection, defaultRunMarkdown, defaultRunSummary, defaultRunSvg, type DefaultRunReport, type Summary } from '../src/nast/default-run-report.js';

/** A report as the default run would hand over: every column, `seeds` values per fine-tuned arm. */
function fakeReport(seeds: number[], claim: Record<string, number[]>): DefaultRunReport {
  const row = (name: string): Summary => {
    const n = name === 'base' ? 1 : seeds.length;
    const values: Record<string, number[]> = {};
    for (const c of TABLE_COLUMNS) values[c] = Array.from({ length: n }, (_, i) => 0.3 + 0.01 * i);
    values['Claim acc'] = claim[name] ?? values['Claim acc'];
    return { name, values };
  };
  return {
    model: 'models/tiny-world', worldCount: 200, seeds, steps: 6, trainFlags: [], nastFlags: [], seconds: 42.4,
    cte: { cte_layer: [0.16, 0.14, 0.12, 0], cte_embeddings: 1, alpha: [1, 0.88, 0.77, 0], positions: 'differ', pairs: [{}, {}] },
    rows: ['base', 'NegBench', 'uniform', 'NAST'].map(row),
    probe: null,
  };
}

const THREE = fakeReport([0, 1, 2], { uniform: [0.5, 0.4, 0.6], NAST: [0.4, 0.4, 0.65] });

test('markdown: one table with every column, the four arms, the NAST - uniform line, CTE_l and wall time', () => {
  const md = defaultRunMarkdown(THREE);
  assert.ok(md.includes(`| Model | ${TABLE_COLUMNS.join(' | ')} |`), 'the header lists every column in order');
  for (const arm of ['base', 'NegBench', 'uniform', 'NAST']) assert.match(md, new RegExp(`^\\| ${arm} \\|`, 'm'));
  assert.match(md, /NAST - uniform claim accuracy per seed: -10\.0, \+0\.0, \+5\.0 /);
  assert.match(md, /NAST higher in 1 of 3 seeds/);
  assert.match(md, /CTE_l over layers 1\.\.4 \(positions "differ", 2 probe pairs\): 0\.160, 0\.140, 0\.120, 0\.000/);
  assert.match(md, /Wall time 42 s\.\n$/);
  assert.not.match(md, /NAST sweep/);
});

test('markdown: the NAST - uniform interval for claim accuracy and for negated claims', () => {
  const md = defaultRunMarkdown(THREE);
  // diffs -0.1, 0, +0.05: mean -1/60, sd 0.0763763, half-width 4.302653 * 0.0763763 / sqrt(3) = 0.189729.
  assert.ok(md.includes('NAST - uniform claim accuracy per seed: -10.0, +0.0, +5.0 (mean -1.7 ± 6.2; 95 % CI [-20.6, +17.3] (Student t, 2 df); NAST higher in 1 of 3 seeds, lower in 1, tied in 1).'), md);
  // Every arm has the same negated claim accuracy in the fake: three ties.
  assert.ok(md.includes('NAST - uniform claim accuracy on negated claims per seed: +0.0, +0.0, +0.0 (mean +0.0 ± 0.0; 95 % CI [+0.0, +0.0] (Student t, 2 df): every seed gave the same difference: zero width, not certainty; NAST higher in 0 of 3 seeds, lower in 0, tied in 3).'), md);
  const one = defaultRunMarkdown(fakeReport([0], { uniform: [0.5], NAST: [0.55] }));
  assert.match(one, /claim accuracy per seed: \+5\.0 \(mean \+5\.0 ± 0\.0; no 95 % interval \(one seed: no spread to estimate\); NAST higher in 1 of 1 seeds, lower in 0, tied in 0\)/);
});

test('COLUMNS: the claim gap follows the affirmative claim accuracy and is affirmative minus negated', () => {
  const names = COLUMNS.map(([k]) => k);
  assert.is(names.indexOf('Claim gap (affirmative - negated)'), names.indexOf('Claim acc (affirmative)') + 1);
  const report = { claims: { accuracy: 0.5, affirmative: { accuracy: 0.7 }, negated: { accuracy: 0.25 } } } as unknown as EvalReport;
  const gap = COLUMNS.find(([k]) => k === 'Claim gap (affirmative - negated)')![1];
  assert.ok(Math.abs(gap(report) - 0.45) < 1e-15);
  assert.ok(defaultRunMarkdown(THREE).includes('| Claim acc (affirmative) | Claim gap (affirmative - negated) | MCQ acc |'));
});

test('summary: nast_vs_uniform gains n, sd, t975, ci95, sign counts and a negated block', () => {
  const p = defaultRunSummary(THREE).nast_vs_uniform;
  assert.equal([p.n, p.higher, p.lower, p.tied], [3, 1, 1, 1]);
  assert.ok(Math.abs(p.sd! - 0.0763762615825973) < 1e-12 && Math.abs(p.t975! - 4.302652729911275) < 1e-9);
  assert.ok(Math.abs(p.ci95![0] + 0.2063958) < 1e-6 && Math.abs(p.ci95![1] - 0.1730625) < 1e-6, String(p.ci95));
  assert.is(p.ci95_note, null);
  const n = p.negated;
  assert.is(n.column, 'Claim acc (negated)');
  assert.equal([n.n, n.higher, n.lower, n.tied, n.wins, n.ties, n.losses], [3, 0, 0, 3, 0, 3, 0]);
  assert.equal(n.ci95, [0, 0]);
  // JSON has no undefined or NaN in these fields for a one-seed run: the interval is null with its reason.
  const one = JSON.parse(JSON.stringify(defaultRunSummary(fakeReport([0], { uniform: [0.5], NAST: [0.55] })).nast_vs_uniform));
  assert.equal([one.n, one.sd, one.t975, one.ci95, one.negated.ci95], [1, null, null, null, null]);
  assert.match(one.ci95_note, /one seed/);
});

test('paper map: every column it names is a column of the table, and the section lists each paper table once', () => {
  for (const p of PAPER_COUNTERPARTS) for (const c of p.columns) assert.ok(TABLE_COLUMNS.includes(c), `${p.source}: ${c}`);
  const md = paperColumnsSection();
  assert.match(md, /^## What each column reproduces\n\n\| Paper \| Measures \| Columns \|/);
  for (const source of ['NAST Table 1', 'NAST Table 2', 'NAST Table 3', 'NAST Table 4', 'NAST Figure 5', 'NegBench Table 1']) {
    assert.is(md.split(`| ${source} |`).length, 2, source);
  }
  assert.match(md, /\| NAST Table 3 \| [^|]+ \| Claim acc \(negated\), Claim acc \(affirmative\), Claim gap \(affirmative - negated\) \|/);
  assert.match(md, /\| NAST Figure 5 \| [^|]+ \| \(the CTE_l line of this file and trace\/cte_heatmap\.svg\) \|/);
  assert.match(md, /\| NegBench Table 1 \| [^|]+ \| MCQ acc, MCQ Affirmation, MCQ Negation, MCQ Hybrid, R@5 \|/);
  assert.ok(md.includes('No paper table has a counterpart for: R@1, Paired negated, Paired affirmative, Paired gap, Train claim acc, Probe ceiling'), md);
  assert.ok(defaultRunMarkdown(THREE).includes(md), 'results.md carries the section');
});

test('paper map: a renamed column is caught, not silently dropped', () => {
  assert.throws(() => paperColumnsSection(TABLE_COLUMNS.filter((c) => c !== 'Top-3 share')), /NAST Table 4 names column "Top-3 share"/);
});

test('summary: existing results.json fields keep their names and shapes', () => {
  const s = defaultRunSummary(THREE);
  assert.equal(s.rows.map((r) => r.name), ['base', 'NegBench', 'uniform', 'NAST']);
  const nast = s.rows[3];
  assert.ok(Math.abs(nast.mean['Claim acc'].mean - 1.45 / 3) < 1e-12, 'rows[].mean[COLUMN].mean');
  assert.equal(nast.values['Claim acc'], [0.4, 0.4, 0.65]);
  const p = s.nast_vs_uniform;
  assert.is(p.column, 'Claim acc');
  assert.equal([p.wins, p.ties, p.losses], [1, 1, 1]);
  assert.ok(Math.abs(p.diffs[0] + 0.1) < 1e-12 && Math.abs(p.mean + 0.05 / 3) < 1e-12 && p.std > 0);
  assert.equal([s.format, s.version, s.world_count, s.steps], ['negclip-default-run', 2, 200, 6]);
  assert.not.ok('sweep' in s);
});

test('sweep rows get their own table and JSON block', () => {
  const rep = { ...THREE, sweep: { param: 'beta', values: [0.5], rows: [{ name: 'NAST beta=0.5', values: { 'Claim acc': [0.5, 0.5, 0.5] } }] } };
  assert.match(defaultRunMarkdown(rep), /## NAST sweep over beta\n\n\| Model \|[^\n]*\n[^\n]*\n\| NAST beta=0\.5 \|/);
  assert.equal(defaultRunSummary(rep).sweep?.rows.map((r) => r.name), ['NAST beta=0.5']);
});

test('svg: one series per arm', () => {
  const svg = defaultRunSvg(THREE);
  for (const arm of ['base', 'NegBench', 'uniform', 'NAST']) assert.ok(svg.includes(`>${arm}<`), arm);
});

test('a report without a uniform row is a programming error, named', () => {
  assert.throws(() => defaultRunMarkdown({ ...THREE, rows: THREE.rows.filter((r) => r.name !== 'uniform') }), /no row "uniform"/);
});

test.run();
