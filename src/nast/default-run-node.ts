/**
 * The embedded default of `node dist/train.js` with no model or data: the papers' story in
 * miniature. Builds the miniature world's negation data, traces the tiny affirmation-only CLIP
 * (models/tiny-world), fine-tunes LoRA adapters NAST-weighted and uniformly with the same seeds,
 * data and steps, evaluates base / uniform / NAST on the held-out split, and writes the table
 * (JSON, Markdown, SVG). Each phase is the project's own CLI in a child process, so the default
 * run exercises exactly what users run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { barChartSvg, markdownTable } from './report.js';
import { updateShares } from './update-shares.js';
import type { EvalReport } from './evaluate.js';

export interface DefaultRunOptions {
  out: string;
  seeds: number[];
  steps: number;
  worldCount: number;
  tracePairs: number;
  /** Flags passed unchanged to every fine-tuning run (--beta, --lambda, --lr, ...). */
  trainFlags: string[];
  model?: string;
}

const DIST = dirname(dirname(fileURLToPath(import.meta.url)));
/** The package root: dist/ (or build/src/ in tests) sits one or two levels below it. */
function packageRoot(): string {
  for (const up of ['..', '../..']) {
    const r = resolve(DIST, up);
    if (existsSync(join(r, 'models', 'tiny-world', 'config.json'))) return r;
  }
  throw new Error(`models/tiny-world not found above ${DIST}: the embedded tiny CLIP ships in the repository`);
}

function run(script: string, args: string[], phase: string): Promise<string> {
  return new Promise((ok, fail) => {
    process.stderr.write(`\n== ${phase}\n`);
    const child = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => {
      // Dawn's limit warnings are noise here; progress lines pass through.
      const s = b.toString().split('\n').filter((l) => !l.startsWith('Warning: maxDynamic')).join('\n');
      if (s) process.stderr.write(s);
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code === 0) ok(out);
      else fail(new Error(`${phase} failed (${script} exited with ${code}): ${out.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

interface Summary {
  name: string;
  values: Record<string, number[]>;
}

const COLUMNS: [string, (r: EvalReport) => number][] = [
  ['R@1', (r) => r.retrieval.r1],
  ['R@5', (r) => r.retrieval.r5],
  ['Claim acc', (r) => r.claims.accuracy],
  ['MCQ acc', (r) => r.mcq.overall.accuracy],
  ['MCQ Affirmation', (r) => r.mcq.byType['affirmation']?.accuracy ?? NaN],
  ['MCQ Negation', (r) => r.mcq.byType['negation']?.accuracy ?? NaN],
  ['MCQ Hybrid', (r) => r.mcq.byType['hybrid']?.accuracy ?? NaN],
  ['Paired negated', (r) => r.paired.negated.accuracy],
  ['Paired affirmative', (r) => r.paired.affirmative.accuracy],
  ['Paired gap', (r) => r.paired.gap],
];

function meanStd(xs: number[]): { mean: number; std: number } {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return { mean: NaN, std: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std };
}

function cell(xs: number[] | undefined, pct: boolean): string {
  if (!xs || xs.length === 0) return '-';
  const { mean, std } = meanStd(xs);
  if (!Number.isFinite(mean)) return '-';
  const f = (x: number) => (pct ? (100 * x).toFixed(1) : x.toFixed(3));
  return xs.length > 1 ? `${f(mean)} ± ${f(std)}` : f(mean);
}

function readEval(file: string): EvalReport {
  const j = JSON.parse(readFileSync(file, 'utf8')) as { models: { report: EvalReport }[] };
  return j.models[0].report;
}

export async function defaultRun(o: DefaultRunOptions): Promise<void> {
  const t0 = Date.now();
  const root = packageRoot();
  const model = o.model ?? join(root, 'models', 'tiny-world');
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const data = join(out, 'data');
  const steps = String(o.steps);
  process.stderr.write(`default run: tiny CLIP ${model}, ${o.worldCount} world images, seeds ${o.seeds.join(',')}, ${o.steps} steps each -> ${out}\n`);

  await run('data.js', ['build', '--from', 'world', '--world-count', String(o.worldCount), '--world-size', '32', '--seed', '0', '--out', data], 'data: miniature world -> claim sets, captions, MCQs, probe pairs');
  await run('trace.js', ['--model', model, '--pairs', join(data, 'train', 'probe.jsonl'), '--limit', String(o.tracePairs), '--out', join(out, 'trace')], 'trace: causal tracing of the text encoder');
  const cte = join(out, 'trace', 'cte.json');

  const evalOf = async (adapter: string | null, file: string, label: string) => {
    const args = ['--model', model, '--data', data, '--split', 'test', '--out', file];
    if (adapter) args.push('--adapter', adapter);
    await run('eval.js', args, `eval: ${label}`);
    return readEval(file);
  };
  const rows: Summary[] = [{ name: 'base', values: {} }, { name: 'uniform', values: {} }, { name: 'NAST', values: {} }];
  const push = (s: Summary, r: EvalReport) => {
    for (const [k, f] of COLUMNS) (s.values[k] ??= []).push(f(r));
  };
  push(rows[0], await evalOf(null, join(out, 'eval-base.json'), 'base model'));
  for (const seed of o.seeds) {
    for (const [mode, row] of [['uniform', rows[1]], ['nast', rows[2]]] as const) {
      const dir = join(out, `seed-${seed}`, mode);
      const flags = ['--model', model, '--data', data, '--steps', steps, '--seed', String(seed), '--out', dir, ...o.trainFlags];
      flags.push(...(mode === 'uniform' ? ['--uniform'] : ['--cte', cte]));
      await run('train.js', flags, `train: ${mode} LoRA, seed ${seed}`);
      push(row, await evalOf(join(dir, 'adapter'), join(dir, 'eval.json'), `${mode}, seed ${seed}`));
      const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { update_norms: number[] };
      // Shares of the update held by the top-3 / top-5 layers ranked by the trace's CTE, for both modes.
      const shares = updateShares(rep.update_norms, (JSON.parse(readFileSync(cte, 'utf8')) as { cte_layer: number[] }).cte_layer);
      (row.values['Top-1 share'] ??= []).push(shares.topK[0]);
      (row.values['Top-3 share'] ??= []).push(shares.top3);
      (row.values['Top-5 share'] ??= []).push(shares.top5);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const headers = ['Model', ...COLUMNS.map(([k]) => k), 'Top-1 share', 'Top-3 share', 'Top-5 share'];
  const table = markdownTable(headers, rows.map((r) => [r.name, ...headers.slice(1).map((h) => cell(r.values[h], true))]));
  const cteJson = JSON.parse(readFileSync(cte, 'utf8')) as { cte_layer: number[]; alpha: number[]; pairs: unknown[] };
  const md = `# NAST vs uniform LoRA on the miniature world\n\n` +
    `Tiny affirmation-only CLIP (${model}), ${o.worldCount} world images (held-out test split), ` +
    `${o.seeds.length} seed(s) (${o.seeds.join(', ')}), ${o.steps} steps each; mean ± std over seeds, percentages. ` +
    `Paired gap = affirmative - negated (smaller is better). Top-k share: fraction of the total LoRA update norm in the k layers with the highest CTE.\n\n${table}\n` +
    `CTE_l (residual index 0..L): ${cteJson.cte_layer.map((x) => x.toFixed(3)).join(', ')} from ${cteJson.pairs.length} probe pairs; ` +
    `alpha: ${cteJson.alpha.map((x) => x.toFixed(3)).join(', ')}.\n\nWall time ${seconds.toFixed(0)} s.\n`;
  const summary = {
    format: 'negclip-default-run', version: 1, model, world_count: o.worldCount, seeds: o.seeds, steps: o.steps,
    train_flags: o.trainFlags, seconds, cte_layer: cteJson.cte_layer, alpha: cteJson.alpha,
    rows: rows.map((r) => ({ name: r.name, values: r.values, mean: Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, meanStd(v)])) })),
  };
  const chartCols = ['R@5', 'Claim acc', 'MCQ Negation', 'MCQ Hybrid', 'Paired negated', 'Paired affirmative'];
  const svg = barChartSvg({
    labels: chartCols,
    series: rows.map((r) => ({ name: r.name, values: chartCols.map((c) => 100 * meanStd(r.values[c] ?? []).mean) })),
    title: `base vs uniform vs NAST (mean of ${o.seeds.length} seed(s))`, yLabel: '%', yMin: 0, yMax: 100, digits: 1,
  });
  await writeFileAtomic(join(out, 'results.json'), JSON.stringify(summary, null, 1) + '\n');
  await writeFileAtomic(join(out, 'results.md'), md);
  await writeFileAtomic(join(out, 'results.svg'), svg);
  process.stderr.write('\n');
  console.log(md);
  console.log(`wrote ${join(out, 'results.json')}, results.md, results.svg, trace/cte_heatmap.svg`);
}
