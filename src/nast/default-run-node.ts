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
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { MAX_CONFIG_BYTES, MAX_TEXT_BYTES, readRegularTextSync } from '../io/read-file-node.js';
import { makeFolderSync } from '../io/fs-errors-node.js';
import { updateShares } from './update-shares.js';
import { pool } from './task-pool.js';
import { NAST_RECIPE, NEGBENCH_RECIPE } from './recipe.js';
import type { ArmSetting, TunedArm } from './arm-selection.js';
import type { CaptionKind } from './train-data.js';
import type { EvalReport } from './evaluate.js';
import type { ProbeReport } from '../world/linear-probe.js';
import { COLUMNS, PROBE_COLUMN, defaultRunMarkdown, defaultRunSummary, defaultRunSvg, validationCurveSvg, type CteSummary, type DefaultRunReport, type Summary } from './default-run-report.js';

export { pairedDifference } from './default-run-report.js';

export interface SweepSpec {
  /** A flag of train.js the sweep varies for the NAST arm: beta, lambda or lr. */
  param: 'beta' | 'lambda' | 'lr';
  values: number[];
}

/** What every miniature run (the default run, a selection) is given. */
export interface MiniatureRunOptions {
  out: string;
  /** The tiny CLIP's folder (default models/tiny-world). */
  model?: string;
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
}

export interface DefaultRunOptions extends MiniatureRunOptions {
  /** Each fine-tuned arm's lr and lambda (selection.json's choice); flags the user gave in trainFlags win. */
  armSettings?: Partial<Record<TunedArm, ArmSetting>>;
  /** Where armSettings came from, for the report. */
  armSettingsSource?: string | null;
  sweep?: SweepSpec;
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

/**
 * The embedded tiny CLIP's folder (models/tiny-world of the repository or of the installed
 * package), found from this module's location, not the working directory.
 */
export function tinyWorldModelPath(): string {
  return join(packageRoot(), 'models', 'tiny-world');
}

/**
 * Mesa's lavapipe (the software Vulkan driver of GPU-less machines) starts a worker thread per
 * core in every process, so runs side by side oversubscribe the cores: measured on a 2-core
 * machine, two fine-tunes side by side took 74 s a pair with one worker each against 85 s with
 * the default (interleaved, 4 pairs each), while one fine-tune alone needs its two (66-71 s with
 * one, 44-52 s with two). Other drivers ignore the variable; a user's own setting is kept.
 */
export function lavapipeThreadsEnv(threads: number | undefined, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (threads === undefined || env.LP_NUM_THREADS !== undefined) return env;
  return { ...env, LP_NUM_THREADS: String(threads) };
}

/** Lavapipe workers per process when `jobs` processes share the machine's cores (at least 1). */
export function threadsPerJob(jobs: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / jobs));
}

function run(script: string, args: string[], phase: string, threads?: number): Promise<string> {
  return new Promise((ok, fail) => {
    process.stderr.write(`\n== ${phase}\n`);
    const child = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: lavapipeThreadsEnv(threads) });
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


/** The four arms, in table order; `results.json` rows keep exactly these names. */
export const ARMS = ['base', 'NegBench', 'uniform', 'NAST'] as const;
export type Arm = (typeof ARMS)[number];

/** Train flags and run folder of a fine-tuned arm: a recipe, with CTE scales where it takes them. */
export const ARM_RUN: Record<TunedArm, { dir: string; flags: (cte: string) => string[] }> = {
  NegBench: { dir: 'negbench', flags: () => ['--recipe', NEGBENCH_RECIPE.name] },
  uniform: { dir: 'uniform', flags: () => ['--recipe', NAST_RECIPE.name, '--uniform'] },
  NAST: { dir: 'nast', flags: (cte) => ['--recipe', NAST_RECIPE.name, '--cte', cte] },
};

/**
 * The L_CLIP captions of each arm where the user gives no --clip-captions. NegBench keeps its
 * recipe's NegCap-style captions (an image's caption with "There is no X in the image.").
 * NAST's recipe pairs images with their affirmative captions: the issue-20 measurements found
 * that negated CLIP captions, with the claim loss beside them, cost affirmative retrieval at
 * every rate that narrowed the Table-3 gap, and that affirmative captions in a 32-pair CLIP
 * batch keep it (README, "Why the NAST-recipe arms lost affirmative R@5").
 */
export const ARM_CLIP_CAPTIONS: Record<TunedArm, CaptionKind> = { NegBench: 'retrieval-neg', uniform: 'affirmative', NAST: 'affirmative' };

/** An arm's fine-tuning flags: `flags`, with the arm's CLIP captions where they name none. */
export function armTrainFlags(arm: TunedArm, flags: readonly string[]): string[] {
  return flags.includes('--clip-captions') ? [...flags] : [...flags, '--clip-captions', ARM_CLIP_CAPTIONS[arm]];
}

/** The last value of `flag` in `flags`, or null. */
function flagValue(flags: readonly string[], flag: string): string | null {
  const i = flags.lastIndexOf(flag);
  return i >= 0 && i + 1 < flags.length ? flags[i + 1] : null;
}

/** What the runs' L_CLIP terms were: each arm's captions and the pairs per batch (--clip-batch, else the batch size). */
export function clipTermOf(trainFlags: readonly string[], armFlagsOf: (arm: TunedArm) => string[]): NonNullable<DefaultRunReport['clipTerm']> {
  const captions: Partial<Record<TunedArm, string>> = {};
  for (const arm of ['NegBench', 'uniform', 'NAST'] as const) captions[arm] = flagValue(armFlagsOf(arm), '--clip-captions') ?? 'negated';
  const batch = flagValue(trainFlags, '--clip-batch') ?? flagValue(trainFlags, '--batch-size');
  return { captions, batch: batch === null ? null : Number(batch) };
}

/** A JSON file a step of the run wrote: configuration-sized, a regular file. */
export const readJson = (file: string) => readRegularTextSync(file, MAX_CONFIG_BYTES, 'a JSON report');

function readEval(file: string): { report: EvalReport; probe: ProbeReport | null } {
  const j = JSON.parse(readJson(file)) as { models: { report: EvalReport }[]; probe?: ProbeReport };
  return { report: j.models[0].report, probe: j.probe ?? null };
}

/** Each validation check of a run's metrics.jsonl: [step, validation claim accuracy]. */
export function validationCurve(metricsText: string): [number, number][] {
  const out: [number, number][] = [];
  for (const line of metricsText.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { step?: number; val_claim_accuracy?: number | null };
    if (typeof r.step === 'number' && typeof r.val_claim_accuracy === 'number') out.push([r.step, r.val_claim_accuracy]);
  }
  return out;
}

/** The mean over runs at each step every run checked (steps some run lacks are left out). */
export function meanCurve(curves: readonly [number, number][][]): [number, number][] {
  if (!curves.length) return [];
  const at = curves.map((c) => new Map(c));
  return curves[0].map(([step]) => step).filter((step) => at.every((m) => m.has(step)))
    .map((step) => [step, at.reduce((s, m) => s + m.get(step)!, 0) / at.length] as [number, number]);
}

/**
 * The miniature's phases as the project's own CLIs in child processes: build the world's data,
 * trace, train an arm, evaluate. The default run and the selection run share them.
 */
export class Miniature {
  readonly data: string;
  readonly cte: string;
  constructor(readonly model: string, readonly out: string) {
    this.data = join(out, 'data');
    this.cte = join(out, 'trace', 'cte.json');
  }

  async build(worldCount: number): Promise<void> {
    await run('data.js', ['build', '--from', 'world', '--world-count', String(worldCount), '--world-size', '32', '--seed', '0', '--out', this.data], 'data: miniature world -> claim sets, captions, MCQs, probe pairs');
  }

  /** Traces the text encoder over the first `pairs` probe pairs; `quiet`: no progress line (a run beside it prints its own). */
  async trace(pairs: number, quiet = false, threads?: number): Promise<CteSummary> {
    const args = ['--model', this.model, '--pairs', join(this.data, 'train', 'probe.jsonl'), '--limit', String(pairs), '--out', join(this.out, 'trace')];
    if (quiet) args.push('--quiet');
    const said = await run('trace.js', args, 'trace: causal tracing of the text encoder', threads);
    // Quiet beside other runs: its summary line says when it finished.
    if (quiet) process.stderr.write(`trace: ${said.trim().split('\n')[0]}\n`);
    return JSON.parse(readJson(this.cte)) as CteSummary;
  }

  /** Evaluates the base model (adapter null) or an adapter on a split of the data; the report is also written to `file`. */
  async evaluate(adapter: string | null, file: string, label: string, split: 'validation' | 'test', probe = false, threads?: number): Promise<{ report: EvalReport; probe: ProbeReport | null }> {
    const args = ['--model', this.model, '--data', this.data, '--split', split, '--out', file];
    if (adapter) args.push('--adapter', adapter);
    if (probe) args.push('--probe');
    await run('eval.js', args, `eval (${split}): ${label}`, threads);
    return readEval(file);
  }

  /** Fine-tunes one arm for one seed into `dir` (replaced), with `flags` (armTrainFlags applied) after the arm's own. */
  async train(arm: TunedArm, seed: number, dir: string, steps: number, flags: readonly string[], label: string, threads?: number): Promise<void> {
    const args = ['--model', this.model, '--data', this.data, '--steps', String(steps), '--seed', String(seed), '--out', dir, '--overwrite', ...ARM_RUN[arm].flags(this.cte), ...armTrainFlags(arm, flags)];
    await run('train.js', args, `train: ${label}, seed ${seed}`, threads);
  }
}

/** `--lr`, `--lambda` (and `--beta`, where the setting has one) of an arm's setting, each unless `flags` already has it (a user's flag applies to every arm). */
export function settingFlags(setting: ArmSetting | undefined, flags: readonly string[]): string[] {
  if (!setting) return [];
  const out: string[] = [];
  if (!flags.includes('--lr')) out.push('--lr', String(setting.lr));
  if (!flags.includes('--lambda')) out.push('--lambda', String(setting.lambda));
  if (setting.beta !== undefined && !flags.includes('--beta')) out.push('--beta', String(setting.beta));
  return out;
}

export async function defaultRun(o: DefaultRunOptions): Promise<void> {
  const t0 = Date.now();
  const model = o.model ?? tinyWorldModelPath();
  const out = resolve(o.out);
  makeFolderSync(out);
  const jobs = o.jobs ?? 2;
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`default run: jobs must be a positive integer, got ${jobs}`);
  process.stderr.write(`default run: tiny CLIP ${model}, ${o.worldCount} world images, seeds ${o.seeds.join(',')}, ${o.steps} steps per arm -> ${out}\n`);
  const mini = new Miniature(model, out);
  await mini.build(o.worldCount);
  // The trace and the base model's evaluation share the pool with the fine-tunes: only NAST's
  // runs need the trace's scales (the others need its CTE only for their update shares, after
  // they train), so the first fine-tunes run beside the trace instead of after it, and no phase
  // leaves a core idle while it runs alone.
  let traced: Promise<CteSummary> | undefined;
  const trace = (threads?: number) => (traced ??= mini.trace(o.tracePairs, jobs > 1, threads));

  const rows: Summary[] = ARMS.map((name) => ({ name, values: {} }));
  const row = (name: string) => rows.find((r) => r.name === name)!;
  const push = (s: Summary, r: EvalReport) => {
    for (const [k, f] of COLUMNS) (s.values[k] ??= []).push(f(r));
  };
  let probe: ProbeReport | null = null;
  const evaluateBase = async (threads?: number) => {
    const base = await mini.evaluate(null, join(out, 'eval-base.json'), 'base model (and the linear probe of its frozen image tower)', 'test', true, threads);
    push(row('base'), base.report);
    probe = base.probe;
  };
  // The user's flags win over the selection's: theirs for every arm, and NAST's own (--beta).
  const userFlags = (arm: TunedArm) => [...o.trainFlags, ...(arm === 'NAST' ? o.nastFlags ?? [] : [])];
  const armFlags = (arm: TunedArm) => [...o.trainFlags, ...settingFlags(o.armSettings?.[arm], userFlags(arm))];
  /** What an arm's runs are given: its flags, then NAST's own. */
  const runFlags = (arm: TunedArm) => [...armFlags(arm), ...(arm === 'NAST' ? o.nastFlags ?? [] : [])];
  const curves: Partial<Record<TunedArm, [number, number][][]>> = {};

  /** Trains one arm for one seed and evaluates it: that run's column values. */
  const trainArm = async (arm: TunedArm, seed: number, label: string, extra: string[] = [], dirName = ARM_RUN[arm].dir, threads?: number): Promise<Record<string, number>> => {
    const dir = join(out, `seed-${seed}`, dirName);
    const flags = [...runFlags(arm), ...extra];
    // Runs side by side would interleave their progress bars.
    if (jobs > 1 && !flags.includes('--quiet')) flags.push('--quiet');
    if (arm === 'NAST') await trace();
    // Scored on the test split by the training process itself (eval.js's report, in dir/eval.json):
    // no second process loading the model and adapter again.
    await mini.train(arm, seed, dir, o.steps, [...flags, '--eval-split', 'test'], label, threads);
    const values: Record<string, number> = {};
    const report = readEval(join(dir, 'eval.json')).report;
    for (const [k, f] of COLUMNS) values[k] = f(report);
    const rep = JSON.parse(readJson(join(dir, 'report.json'))) as { update_norms: number[]; train_claim_accuracy: number | null };
    values['Train claim acc'] = rep.train_claim_accuracy ?? NaN;
    // Shares of the update held by the top-1/3/5 layers ranked by the trace's CTE, for every arm.
    const shares = updateShares(rep.update_norms, (await trace()).cte_layer);
    values['Top-1 share'] = shares.topK[0];
    values['Top-3 share'] = shares.top3;
    values['Top-5 share'] = shares.top5;
    if (dirName === ARM_RUN[arm].dir) {
      const curve = validationCurve(readRegularTextSync(join(dir, 'metrics.jsonl'), MAX_TEXT_BYTES, 'a metrics file'));
      if (curve.length) (curves[arm] ??= []).push(curve);
    }
    return values;
  };
  /**
   * Every (arm, seed) run after the `first` tasks, `jobs` at a time; each row's values are kept in
   * seed order. A task with others beside it gets its share of the cores for lavapipe.
   */
  const runAll = async (list: { into: Summary; arm: TunedArm; extra?: string[]; dir?: string }[], first: ((threads?: number) => Promise<unknown>)[] = []) => {
    const tasks = list.flatMap((a) => o.seeds.map((seed) => ({ ...a, seed })));
    const all = [...first, ...tasks.map((t) => (threads?: number) => trainArm(t.arm, t.seed, t.into.name, t.extra, t.dir, threads))];
    const share = threadsPerJob(jobs);
    const results = await pool<unknown>(jobs, all.map((task) => (shared) => task(shared ? share : undefined)));
    tasks.forEach((t, i) => {
      for (const [k, v] of Object.entries(results[first.length + i] as Record<string, number>)) (t.into.values[k] ??= []).push(v);
    });
  };
  await runAll((['NegBench', 'uniform', 'NAST'] as const).map((arm) => ({ into: row(arm), arm })), [trace, evaluateBase]);
  const cteJson = await traced!;
  const probeReport = probe as ProbeReport | null;
  const probeMean = probeReport && probeReport.attributes.length ? probeReport.attributes.reduce((s, a) => s + a.balanced, 0) / probeReport.attributes.length : NaN;
  for (const r of rows) r.values[PROBE_COLUMN] = [probeMean];

  const sweepRows: Summary[] = [];
  if (o.sweep) {
    const sweep = o.sweep;
    sweepRows.push(...sweep.values.map((v) => ({ name: `NAST ${sweep.param}=${v}`, values: {} as Record<string, number[]> })));
    await runAll(sweep.values.map((v, i) => ({ into: sweepRows[i], arm: 'NAST' as const, extra: [`--${sweep.param}`, String(v)], dir: `sweep-${sweep.param}-${v}` })));
    for (const s of sweepRows) s.values[PROBE_COLUMN] = [probeMean];
  }
  const seconds = (Date.now() - t0) / 1000;

  const armSettings: DefaultRunReport['armSettings'] = {};
  for (const arm of ['NegBench', 'uniform', 'NAST'] as const) {
    const f = runFlags(arm);
    const val = (flag: string) => {
      const v = flagValue(f, flag);
      return v === null ? null : Number(v);
    };
    armSettings[arm] = { lr: val('--lr'), lambda: val('--lambda'), ...(arm === 'NAST' ? { beta: val('--beta') } : {}) };
  }
  const validationCurves: DefaultRunReport['validationCurves'] = {};
  for (const [arm, list] of Object.entries(curves)) validationCurves[arm as TunedArm] = { runs: list.length, mean: meanCurve(list) };
  const report: DefaultRunReport = {
    model, worldCount: o.worldCount, seeds: o.seeds, steps: o.steps, trainFlags: o.trainFlags, nastFlags: o.nastFlags ?? [], seconds,
    armSettings, armSettingsSource: o.armSettingsSource ?? null, validationCurves, clipTerm: clipTermOf(o.trainFlags, (arm) => armTrainFlags(arm, runFlags(arm))),
    cte: cteJson, rows, probe: probeReport, ...(o.sweep ? { sweep: { param: o.sweep.param, values: o.sweep.values, rows: sweepRows } } : {}),
  };
  const md = defaultRunMarkdown(report);
  const summary = defaultRunSummary(report);
  const svg = defaultRunSvg(report);
  await writeFileAtomic(join(out, 'results.json'), JSON.stringify(summary, null, 1) + '\n');
  await writeFileAtomic(join(out, 'results.md'), md);
  await writeFileAtomic(join(out, 'results.svg'), svg);
  const curveSvg = validationCurveSvg(report);
  if (curveSvg) await writeFileAtomic(join(out, 'validation.svg'), curveSvg);
  process.stderr.write('\n');
  console.log(md);
  console.log(`wrote ${join(out, 'results.json')}, results.md, results.svg${curveSvg ? ', validation.svg' : ''}, trace/cte_heatmap.svg`);
}
