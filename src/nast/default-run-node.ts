/**
 * The embedded default of `node dist/train.js` with no model or data: the papers' story in
 * miniature. Builds the miniature world's negation data, traces the tiny affirmation-only CLIP
 * (models/tiny-world), fine-tunes four arms with the same seeds, data and steps (base: none;
 * NegBench: its recipe, LoRA; uniform: NAST's recipe, uniform scales; NAST: CTE scales),
 * evaluates them on the held-out split with the linear-probe ceiling of the frozen image tower,
 * and writes the table (JSON, Markdown, SVG). Each phase is the project's own CLI in a child
 * process, so the default run exercises exactly what users run.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { makeFolderSync } from '../io/fs-errors-node.js';
import { barChartSvg, markdownTable } from '../io/report.js';
import { updateShares } from './update-shares.js';
import type { EvalReport } from './evaluate.js';
import { probeFamilyTable, type ProbeReport } from './linear-probe.js';

export interface SweepSpec {
  /** A flag of train.js the sweep varies for the NAST arm: beta, lambda or lr. */
  param: 'beta' | 'lambda' | 'lr';
  values: number[];
}

export interface DefaultRunOptions {
  out: string;
  /** Fine-tuning runs side by side (default 2: one run leaves part of a 2-core machine idle while it encodes). */
  jobs?: number;
  seeds: number[];
  steps: number;
  worldCount: number;
  tracePairs: number;
  /** Flags passed unchanged to every fine-tuning run (--lambda, --lr, ...). */
  trainFlags: string[];
  /** Flags for the NAST arm only (--beta, --scale-mode). */
  nastFlags?: string[];
  sweep?: SweepSpec;
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

/** Runs the tasks, at most `n` at a time; results in task order. */
export async function pool<T>(n: number, tasks: readonly (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

/** The four arms, in table order; `results.json` rows keep exactly these names. */
export const ARMS = ['base', 'NegBench', 'uniform', 'NAST'] as const;
export type Arm = (typeof ARMS)[number];

/** Train flags and run folder of a fine-tuned arm. */
const ARM_RUN: Record<Exclude<Arm, 'base'>, { dir: string; flags: (cte: string) => string[] }> = {
  NegBench: { dir: 'negbench', flags: () => ['--recipe', 'negbench'] },
  uniform: { dir: 'uniform', flags: () => ['--recipe', 'nast', '--uniform'] },
  NAST: { dir: 'nast', flags: (cte) => ['--recipe', 'nast', '--cte', cte] },
};

interface Summary {
  name: string;
  values: Record<string, number[]>;
}

/** Eval-report columns, in table order (percentages). */
const COLUMNS: [string, (r: EvalReport) => number][] = [
  ['R@1', (r) => r.retrieval.r1],
  ['R@5', (r) => r.retrieval.r5],
  ['R@5 (affirmative)', (r) => r.retrieval.affirmative.r5],
  ['Claim acc', (r) => r.claims.accuracy],
  ['Claim acc (negated)', (r) => r.claims.negated.accuracy],
  ['Claim acc (affirmative)', (r) => r.claims.affirmative.accuracy],
  ['MCQ acc', (r) => r.mcq.overall.accuracy],
  ['MCQ Affirmation', (r) => r.mcq.byType['affirmation']?.accuracy ?? NaN],
  ['MCQ Negation', (r) => r.mcq.byType['negation']?.accuracy ?? NaN],
  ['MCQ Hybrid', (r) => r.mcq.byType['hybrid']?.accuracy ?? NaN],
  ['Paired negated', (r) => r.paired.negated.accuracy],
  ['Paired affirmative', (r) => r.paired.affirmative.accuracy],
  ['Paired gap', (r) => r.paired.gap],
];
/** From each run's report.json and the shares of its update held by the top-CTE layers. */
const RUN_COLUMNS = ['Train claim acc', 'Top-1 share', 'Top-3 share', 'Top-5 share'] as const;
const PROBE_COLUMN = 'Probe ceiling';

function meanStd(xs: number[]): { mean: number; std: number } {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return { mean: NaN, std: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std };
}

function cell(xs: number[] | undefined): string {
  if (!xs || xs.length === 0) return '-';
  const { mean, std } = meanStd(xs);
  if (!Number.isFinite(mean)) return '-';
  const f = (x: number) => (100 * x).toFixed(1);
  return xs.length > 1 ? `${f(mean)} ± ${f(std)}` : f(mean);
}

function readEval(file: string): { report: EvalReport; probe: ProbeReport | null } {
  const j = JSON.parse(readFileSync(file, 'utf8')) as { models: { report: EvalReport }[]; probe?: ProbeReport };
  return { report: j.models[0].report, probe: j.probe ?? null };
}

interface CteSummary {
  cte_layer: number[];
  cte_embeddings: number;
  alpha: number[];
  positions: string;
  pairs: unknown[];
  cte_layer_ci95?: [number, number][];
}

/** NAST minus uniform claim accuracy per seed, and how many seeds NAST won, tied, lost. */
export function pairedDifference(nast: readonly number[], uniform: readonly number[]): { diffs: number[]; mean: number; std: number; wins: number; ties: number; losses: number } {
  if (nast.length !== uniform.length) throw new Error(`pairedDifference: ${nast.length} NAST and ${uniform.length} uniform values`);
  const diffs = nast.map((v, i) => v - uniform[i]);
  const { mean, std } = meanStd(diffs);
  return { diffs, mean, std, wins: diffs.filter((d) => d > 1e-12).length, ties: diffs.filter((d) => Math.abs(d) <= 1e-12).length, losses: diffs.filter((d) => d < -1e-12).length };
}

export async function defaultRun(o: DefaultRunOptions): Promise<void> {
  const t0 = Date.now();
  const root = packageRoot();
  const model = o.model ?? join(root, 'models', 'tiny-world');
  const out = resolve(o.out);
  makeFolderSync(out);
  const data = join(out, 'data');
  const steps = String(o.steps);
  const jobs = o.jobs ?? 2;
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`default run: jobs must be a positive integer, got ${jobs}`);
  process.stderr.write(`default run: tiny CLIP ${model}, ${o.worldCount} world images, seeds ${o.seeds.join(',')}, ${o.steps} steps per arm -> ${out}\n`);

  await run('data.js', ['build', '--from', 'world', '--world-count', String(o.worldCount), '--world-size', '32', '--seed', '0', '--out', data], 'data: miniature world -> claim sets, captions, MCQs, probe pairs');
  await run('trace.js', ['--model', model, '--pairs', join(data, 'train', 'probe.jsonl'), '--limit', String(o.tracePairs), '--out', join(out, 'trace')], 'trace: causal tracing of the text encoder');
  const cte = join(out, 'trace', 'cte.json');
  const cteJson = JSON.parse(readFileSync(cte, 'utf8')) as CteSummary;

  const evalOf = async (adapter: string | null, file: string, label: string, probe = false) => {
    const args = ['--model', model, '--data', data, '--split', 'test', '--out', file];
    if (adapter) args.push('--adapter', adapter);
    if (probe) args.push('--probe');
    await run('eval.js', args, `eval: ${label}`);
    return readEval(file);
  };
  const rows: Summary[] = ARMS.map((name) => ({ name, values: {} }));
  const row = (name: string) => rows.find((r) => r.name === name)!;
  const push = (s: Summary, r: EvalReport) => {
    for (const [k, f] of COLUMNS) (s.values[k] ??= []).push(f(r));
  };
  const base = await evalOf(null, join(out, 'eval-base.json'), 'base model (and the linear probe of its frozen image tower)', true);
  push(row('base'), base.report);
  const probe = base.probe;
  const probeMean = probe && probe.attributes.length ? probe.attributes.reduce((s, a) => s + a.balanced, 0) / probe.attributes.length : NaN;

  /** Trains one arm for one seed and evaluates it: that run's column values. */
  const trainArm = async (arm: Exclude<Arm, 'base'>, seed: number, label: string, extra: string[] = [], dirName = ARM_RUN[arm].dir): Promise<Record<string, number>> => {
    const dir = join(out, `seed-${seed}`, dirName);
    const flags = ['--model', model, '--data', data, '--steps', steps, '--seed', String(seed), '--out', dir, ...o.trainFlags, ...ARM_RUN[arm].flags(cte)];
    if (arm === 'NAST') flags.push(...(o.nastFlags ?? []));
    flags.push(...extra);
    // Runs side by side would interleave their progress bars.
    if (jobs > 1 && !flags.includes('--quiet')) flags.push('--quiet');
    await run('train.js', flags, `train: ${label}, seed ${seed}`);
    const values: Record<string, number> = {};
    const report = (await evalOf(join(dir, 'adapter'), join(dir, 'eval.json'), `${label}, seed ${seed}`)).report;
    for (const [k, f] of COLUMNS) values[k] = f(report);
    const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { update_norms: number[]; train_claim_accuracy: number | null };
    values['Train claim acc'] = rep.train_claim_accuracy ?? NaN;
    // Shares of the update held by the top-1/3/5 layers ranked by the trace's CTE, for every arm.
    const shares = updateShares(rep.update_norms, cteJson.cte_layer);
    values['Top-1 share'] = shares.topK[0];
    values['Top-3 share'] = shares.top3;
    values['Top-5 share'] = shares.top5;
    return values;
  };
  /** Every (arm, seed) run, `jobs` at a time; each row's values are kept in seed order. */
  const runAll = async (list: { into: Summary; arm: Exclude<Arm, 'base'>; extra?: string[]; dir?: string }[]) => {
    const tasks = list.flatMap((a) => o.seeds.map((seed) => ({ ...a, seed })));
    const results = await pool(jobs, tasks.map((t) => () => trainArm(t.arm, t.seed, t.into.name, t.extra, t.dir)));
    tasks.forEach((t, i) => {
      for (const [k, v] of Object.entries(results[i])) (t.into.values[k] ??= []).push(v);
    });
  };
  await runAll((['NegBench', 'uniform', 'NAST'] as const).map((arm) => ({ into: row(arm), arm })));
  for (const r of rows) r.values[PROBE_COLUMN] = [probeMean];

  const sweepRows: Summary[] = [];
  if (o.sweep) {
    const sweep = o.sweep;
    sweepRows.push(...sweep.values.map((v) => ({ name: `NAST ${sweep.param}=${v}`, values: {} as Record<string, number[]> })));
    await runAll(sweep.values.map((v, i) => ({ into: sweepRows[i], arm: 'NAST' as const, extra: [`--${sweep.param}`, String(v)], dir: `sweep-${sweep.param}-${v}` })));
    for (const s of sweepRows) s.values[PROBE_COLUMN] = [probeMean];
  }
  const seconds = (Date.now() - t0) / 1000;

  const headers = ['Model', ...COLUMNS.map(([k]) => k), ...RUN_COLUMNS, PROBE_COLUMN];
  const tableOf = (list: Summary[]) => markdownTable(headers, list.map((r) => [r.name, ...headers.slice(1).map((h) => cell(r.values[h]))]));
  const paired = pairedDifference(row('NAST').values['Claim acc'] ?? [], row('uniform').values['Claim acc'] ?? []);
  const pct = (x: number) => (100 * x).toFixed(1);
  const ci = cteJson.cte_layer_ci95;
  const probeTable = probe ? `\n${probeFamilyTable(probe.families)}` : '';
  const md = `# Negation fine-tuning on the miniature world: base vs NegBench vs uniform vs NAST\n\n` +
    `Tiny affirmation-only CLIP (${model}), ${o.worldCount} world images (held-out test split), ` +
    `${o.seeds.length} seed(s) (${o.seeds.join(', ')}), ${o.steps} steps per arm; mean ± std over seeds, percentages. ` +
    `NegBench: its recipe (NegBench MCQs + negated captions), LoRA; uniform and NAST: NAST's recipe (claim sets + negated captions), LoRA at uniform or CTE-scaled rates. ` +
    `Paired gap = affirmative - negated (smaller is better). Train claim acc: a fixed sample of training claim sets at the last step. ` +
    `Top-k share: fraction of the total update norm in the k layers with the highest CTE. ` +
    `Probe ceiling: mean held-out balanced accuracy of linear probes of the frozen image embeddings over every tested attribute (chance 50).\n\n${tableOf(rows)}\n` +
    `NAST - uniform claim accuracy per seed: ${paired.diffs.map((d) => `${d >= 0 ? '+' : ''}${pct(d)}`).join(', ')} ` +
    `(mean ${paired.mean >= 0 ? '+' : ''}${pct(paired.mean)} ± ${pct(paired.std)}; NAST higher in ${paired.wins} of ${paired.diffs.length} seeds, tied in ${paired.ties}).\n\n` +
    `CTE_l over layers 1..${cteJson.cte_layer.length} (positions "${cteJson.positions}", ${cteJson.pairs.length} probe pairs): ` +
    `${cteJson.cte_layer.map((x, l) => `${x.toFixed(3)}${ci ? ` [${ci[l][0].toFixed(3)}, ${ci[l][1].toFixed(3)}]` : ''}`).join(', ')}; ` +
    `embeddings ${cteJson.cte_embeddings.toFixed(3)} (not a layer); alpha: ${cteJson.alpha.map((x) => x.toFixed(3)).join(', ')}.\n` +
    (probe ? `\nLinear probes of the frozen image embeddings (train split -> test split):\n${probeTable}` : '') +
    (sweepRows.length ? `\n## NAST sweep over ${o.sweep!.param}\n\n${tableOf(sweepRows)}` : '') +
    `\nWall time ${seconds.toFixed(0)} s.\n`;
  const summaryRow = (r: Summary) => ({ name: r.name, values: r.values, mean: Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, meanStd(v)])) });
  const summary = {
    format: 'negclip-default-run', version: 2, model, world_count: o.worldCount, seeds: o.seeds, steps: o.steps,
    train_flags: o.trainFlags, nast_flags: o.nastFlags ?? [], seconds,
    cte_positions: cteJson.positions, cte_layer: cteJson.cte_layer, cte_embeddings: cteJson.cte_embeddings, alpha: cteJson.alpha,
    rows: rows.map(summaryRow),
    nast_vs_uniform: { column: 'Claim acc', ...paired },
    probe: probe ? { families: probe.families, attributes: probe.attributes } : null,
    ...(sweepRows.length ? { sweep: { param: o.sweep!.param, values: o.sweep!.values, rows: sweepRows.map(summaryRow) } } : {}),
  };
  const chartCols = ['R@5 (affirmative)', 'Claim acc (negated)', 'Claim acc (affirmative)', 'MCQ Negation', 'MCQ Hybrid', 'Paired negated', 'Paired affirmative'];
  const svg = barChartSvg({
    labels: chartCols,
    series: rows.map((r) => ({ name: r.name, values: chartCols.map((c) => 100 * meanStd(r.values[c] ?? []).mean) })),
    title: `base vs NegBench vs uniform vs NAST (mean of ${o.seeds.length} seed(s))`, yLabel: '%', yMin: 0, yMax: 100, digits: 1,
  });
  await writeFileAtomic(join(out, 'results.json'), JSON.stringify(summary, null, 1) + '\n');
  await writeFileAtomic(join(out, 'results.md'), md);
  await writeFileAtomic(join(out, 'results.svg'), svg);
  process.stderr.write('\n');
  console.log(md);
  console.log(`wrote ${join(out, 'results.json')}, results.md, results.svg, trace/cte_heatmap.svg`);
}
