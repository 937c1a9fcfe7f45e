import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TABLE_COLUMNS, defaultRunMarkdown, defaultRunSummary, defaultRunSvg, type DefaultRunReport, type Summary } from '../src/nast/default-run-report.js';

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
  assert.match(md, /NAST higher in 1 of 3 seeds, tied in 1/);
  assert.match(md, /CTE_l over layers 1\.\.4 \(positions "differ", 2 probe pairs\): 0\.160, 0\.140, 0\.120, 0\.000/);
  assert.match(md, /Wall time 42 s\.\n$/);
  assert.not.match(md, /NAST sweep/);
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
