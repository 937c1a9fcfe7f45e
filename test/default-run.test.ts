import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'train.js');
const EXPECTED = join(ROOT, 'test', 'fixtures', 'default-run', 'base-short.json');
const LAYERS = (JSON.parse(readFileSync(join(ROOT, 'models', 'tiny-world', 'config.json'), 'utf8')) as { text_config: { num_hidden_layers: number } }).text_config.num_hidden_layers;

interface Results {
  seeds: number[];
  rows: { name: string; values: Record<string, number[]> }[];
}

test('node train.js --short: the whole default run completes and writes every output; base numbers reproduce', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'default-run-')), 'run');
  const stdout = execFileSync('node', [CLI, '--short', '--out', out, '--quiet'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(stdout, /\| base \|/);
  for (const f of ['results.json', 'results.md', 'results.svg', 'trace/cte.json', 'trace/cte_heatmap.svg', 'eval-base.json',
    'seed-0/uniform/adapter/adapter_model.safetensors', 'seed-0/nast/adapter/adapter_config.json', 'seed-0/nast/report.json',
    'seed-0/negbench/adapter/adapter_model.safetensors', 'seed-0/negbench/report.json', 'seed-0/negbench/eval.json',
    'seed-0/nast/metrics.jsonl', 'validation.svg', 'seed-0/uniform/eval.json', 'seed-0/nast/eval.json', 'data/dataset.json', 'data/test/attributes.jsonl']) {
    assert.ok(existsSync(join(out, f)), `missing ${f}`);
  }
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
  assert.equal(res.rows.map((r) => r.name), ['base', 'NegBench', 'uniform', 'NAST'], 'the four arms, in order');
  const neg = JSON.parse(readFileSync(join(out, 'seed-0/negbench/report.json'), 'utf8')) as { recipe: string; layer_scales: unknown };
  assert.is(neg.recipe, 'negbench');
  assert.is(neg.layer_scales, null, 'NegBench: every layer at one rate');
  const nast = JSON.parse(readFileSync(join(out, 'seed-0/nast/report.json'), 'utf8')) as { layer_scales: number[] };
  assert.is(nast.layer_scales.length, LAYERS, 'NAST: one CTE scale per text layer');
  assert.ok(LAYERS >= 8, `the miniature's text tower is deep (${LAYERS} blocks)`);
  const cte = JSON.parse(readFileSync(join(out, 'trace/cte.json'), 'utf8')) as { version: number; positions: string; alpha: number[]; layers: number };
  assert.equal([cte.version, cte.positions, cte.layers, cte.alpha.length], [2, 'differ', LAYERS, LAYERS]);
  const summary = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { seconds: number; alpha: number[]; cte_layer: number[]; nast_vs_uniform: { diffs: number[]; n: number; ci95: unknown; negated: { column: string; diffs: number[] } } };
  assert.ok(summary.seconds > 0);
  // Each arm at its own selected setting (the committed selection.json), with its validation curve.
  const extra = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { arm_settings: Record<string, { lr: number; lambda: number }>; arm_settings_source: string | null; validation_curves: Record<string, { runs: number; mean: [number, number][] }> };
  const selection = join(ROOT, 'models', 'tiny-world', 'selection.json');
  if (existsSync(selection)) {
    const chosen = (JSON.parse(readFileSync(selection, 'utf8')) as { chosen: Record<string, { lr: number; lambda: number; beta?: number }> }).chosen;
    for (const arm of ['NegBench', 'uniform', 'NAST']) {
      const want = { lr: chosen[arm].lr, lambda: chosen[arm].lambda, ...(arm === 'NAST' ? { beta: chosen[arm].beta ?? null } : {}) };
      assert.equal(extra.arm_settings[arm], want, `${arm}'s setting`);
    }
    assert.is(extra.arm_settings_source, selection);
  }
  // NegBench's L_CLIP on its NegCap-style captions, NAST's recipe on affirmative ones, 32 pairs a step; results.md says so.
  const clip = (JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { clip_term: { captions: Record<string, string>; batch: number } }).clip_term;
  assert.equal(clip, { captions: { NegBench: 'retrieval-neg', uniform: 'affirmative', NAST: 'affirmative' }, batch: 32 });
  assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /NAST's recipe \(claim sets \+ L_CLIP on affirmative captions\).*L_CLIP over 32 image-caption pairs a step/);
  for (const arm of ['NegBench', 'uniform', 'NAST']) {
    const c = extra.validation_curves[arm];
    assert.ok(c && c.runs === 1 && c.mean.length >= 2 && c.mean[c.mean.length - 1][0] === 6, `${arm}: validation curve up to the last step`);
  }
  assert.equal([summary.alpha.length, summary.cte_layer.length, summary.nast_vs_uniform.diffs.length], [LAYERS, LAYERS, 1]);
  const vs = summary.nast_vs_uniform;
  assert.equal([vs.n, vs.ci95, vs.negated.column, vs.negated.diffs.length], [1, null, 'Claim acc (negated)', 1], 'one seed: differences, no interval');
  for (const r of res.rows) for (const v of Object.values(r.values).flat()) assert.ok(Number.isNaN(v) || (v >= -1 && v <= 1), `${r.name}: ${v}`);
  for (const r of res.rows) {
    const v = r.values;
    assert.ok(Math.abs(v['Claim gap (affirmative - negated)'][0] - (v['Claim acc (affirmative)'][0] - v['Claim acc (negated)'][0])) < 1e-12, `${r.name}: claim gap`);
  }
  const base = res.rows[0].values;
  const expected = JSON.parse(readFileSync(EXPECTED, 'utf8')) as Record<string, number[]>;
  // The committed tiny CLIP on the same seeded world gives the same base numbers; a near-tie may
  // flip under different float round-off, so allow one sample's worth (the test split has 20 images).
  for (const [k, v] of Object.entries(expected)) {
    if (Number.isNaN(v[0])) continue;
    assert.ok(Math.abs(base[k][0] - v[0]) <= 0.051, `base ${k}: ${base[k][0]} vs committed ${v[0]}`);
  }
});

test('node train.js --select: every arm at every grid point, scored on validation only, chosen; the same command again reuses every run', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'select-run-')), 'sel');
  const args = [CLI, '--select', 'lr=1e-3,2e-3', 'lambda=0.4', 'beta=1,3', '--short', '--steps', '2', '--out', out, '--quiet'];
  const first = spawnSync('node', args, { encoding: 'utf8' });
  assert.is(first.status, 0, first.stderr);
  const sel = JSON.parse(readFileSync(join(out, 'selection.json'), 'utf8')) as {
    split: string; points: { arm: string; setting: { lr: number; lambda: number; beta?: number }; claimGap?: number[] }[]; chosen: Record<string, { lr: number; lambda: number; beta?: number }>;
  };
  assert.is(sel.split, 'validation');
  // NegBench searches its rate (lambda fixed at 0.5), uniform rate x lambda, NAST rate x lambda x beta.
  assert.equal(sel.points.map((p) => `${p.arm} ${p.setting.lr} ${p.setting.lambda}${p.setting.beta !== undefined ? ` ${p.setting.beta}` : ''}`),
    ['NegBench 0.001 0.5', 'NegBench 0.002 0.5', 'uniform 0.001 0.4', 'uniform 0.002 0.4', 'NAST 0.001 0.4 1', 'NAST 0.001 0.4 3', 'NAST 0.002 0.4 1', 'NAST 0.002 0.4 3']);
  assert.equal(Object.keys(sel.chosen), ['NegBench', 'uniform', 'NAST']);
  assert.ok([1, 3].includes(sel.chosen.NAST.beta!), 'NAST\'s choice names its beta');
  for (const p of sel.points) assert.ok(p.claimGap?.length === 1 && Number.isFinite(p.claimGap[0]), `${p.arm}: the validation claim gap is recorded`);
  assert.ok(existsSync(join(out, 'seed-0', 'NAST-lr0.001-lambda0.4-beta3', 'eval-validation.json')));
  assert.not.ok(existsSync(join(out, 'seed-0', 'NAST-lr0.001-lambda0.4-beta3', 'eval.json')), 'no test-split evaluation');
  // The two betas trained the NAST arm apart: their runs record different layer scales.
  const scales = (b: number) => JSON.parse(readFileSync(join(out, 'seed-0', `NAST-lr0.001-lambda0.4-beta${b}`, 'report.json'), 'utf8')).layer_scales as number[];
  assert.not.equal(scales(1), scales(3));
  assert.equal((first.stderr.match(/== train: /g) ?? []).length, 8);
  const again = spawnSync('node', args, { encoding: 'utf8' });
  assert.is(again.status, 0, again.stderr);
  assert.equal([(again.stderr.match(/== train: /g) ?? []).length, (again.stderr.match(/== reused: /g) ?? []).length], [0, 8]);
  assert.equal(JSON.parse(readFileSync(join(out, 'selection.json'), 'utf8')).chosen, sel.chosen);
});

test.run();
