/**
 * Each fine-tuned arm of the default run at its own settings, chosen on the validation split:
 * the grid a `--select` run searches, the rule that picks a point per arm, and selection.json
 * (what the default run reads). Pure and browser-safe; select-run-node.ts trains and evaluates.
 *
 * Why per arm: NAST's layer scales are at most 1, so at one shared rate it trains with less total
 * update than uniform; comparing the two at a rate that suits one of them is not a fair test.
 */
import { formatNumber, markdownTable } from '../io/report.js';
import { pool } from './task-pool.js';

export const TUNED_ARMS = ['NegBench', 'uniform', 'NAST'] as const;
export type TunedArm = (typeof TUNED_ARMS)[number];

/** The settings that differ between arms. */
export interface ArmSetting {
  lr: number;
  lambda: number;
  /** NAST's sharpness (layer scale alpha_l^beta); absent: the cte.json's beta. */
  beta?: number;
}

/**
 * Which settings each arm searches: every arm its rate, the NAST-recipe arms also lambda
 * (NegBench keeps its alpha), NAST also its sharpness beta when the grid lists it (uniform has
 * no layer scales to sharpen).
 */
export const ARM_SEARCHES: Readonly<Record<TunedArm, readonly (keyof ArmSetting)[]>> = {
  NegBench: ['lr'],
  uniform: ['lr', 'lambda'],
  NAST: ['lr', 'lambda', 'beta'],
};

export interface SelectionGrid {
  lr: number[];
  lambda: number[];
  /** NAST's beta values; absent: NAST runs at the cte.json's beta. */
  beta?: number[];
}

/** `lr 0.002, lambda 0.5` (and `, beta 4` where the setting has one): a setting in messages and labels. */
export function settingLabel(s: ArmSetting): string {
  return `lr ${s.lr}, lambda ${s.lambda}${s.beta !== undefined ? `, beta ${s.beta}` : ''}`;
}

const sameSetting = (a: ArmSetting, b: ArmSetting) => a.lr === b.lr && a.lambda === b.lambda && a.beta === b.beta;

/**
 * `lr=1e-3,2e-3,4e-3 lambda=0.3,0.5,0.7 beta=1,4` (words separated by spaces or semicolons). A
 * setting left out keeps `fallback`'s single value (beta: the cte.json's). Throws a RangeError
 * naming the bad word.
 */
export function parseSelectionGrid(raw: string, fallback: ArmSetting): SelectionGrid {
  const grid: SelectionGrid = { lr: [fallback.lr], lambda: [fallback.lambda] };
  const seen = new Set<string>();
  const words = raw.split(/[\s;]+/).filter(Boolean);
  if (!words.length) throw new RangeError('--select: expected lr=V1,V2,... lambda=V1,V2,... and/or beta=V1,V2,...');
  for (const w of words) {
    const m = /^([a-z]+)=(.+)$/.exec(w);
    if (!m || (m[1] !== 'lr' && m[1] !== 'lambda' && m[1] !== 'beta')) throw new RangeError(`--select: expected lr=V1,V2,..., lambda=V1,V2,... or beta=V1,V2,..., got ${JSON.stringify(w)}`);
    const key = m[1] as keyof SelectionGrid;
    if (seen.has(key)) throw new RangeError(`--select: ${key} is given twice`);
    seen.add(key);
    const values = m[2].split(',').map((x) => {
      const v = Number(x);
      if (x.trim() === '' || !Number.isFinite(v)) throw new RangeError(`--select: ${key}: ${JSON.stringify(x)} is not a number`);
      if (key === 'lr' && !(v > 0)) throw new RangeError(`--select: lr must be positive, got ${x}`);
      if (key === 'lambda' && !(v >= 0 && v <= 1)) throw new RangeError(`--select: lambda must be in [0, 1], got ${x}`);
      if (key === 'beta' && !(v >= 0)) throw new RangeError(`--select: beta must be >= 0, got ${x}`);
      return v;
    });
    if (new Set(values).size !== values.length) throw new RangeError(`--select: ${key} lists a value twice`);
    grid[key] = values;
  }
  return grid;
}

/** The points an arm is trained at: its searched settings over the grid, the others at `fixed`. */
export function armPoints(arm: TunedArm, grid: SelectionGrid, fixed: ArmSetting): ArmSetting[] {
  const searches = ARM_SEARCHES[arm];
  const lrs = searches.includes('lr') ? grid.lr : [fixed.lr];
  const lambdas = searches.includes('lambda') ? grid.lambda : [fixed.lambda];
  const betas = searches.includes('beta') && grid.beta ? grid.beta : [undefined];
  return lrs.flatMap((lr) => lambdas.flatMap((lambda) => betas.map((beta) => (beta === undefined ? { lr, lambda } : { lr, lambda, beta }))));
}

/** What one (arm, setting) scored on the validation split, one entry per seed (fractions). */
export interface ValidationScores {
  arm: TunedArm;
  setting: ArmSetting;
  seeds: number[];
  /** The arm's own target: claim accuracy for NAST's recipe, MCQ accuracy for NegBench's. */
  objective: number[];
  claim: number[];
  mcq: number[];
  affirmativeR5: number[];
  /** Affirmative minus negated claim accuracy (NAST Table 3); absent in files written before it was recorded. */
  claimGap?: number[];
}

/** The objective each arm is selected on (a validation column name of the eval report). */
export const ARM_OBJECTIVE: Readonly<Record<TunedArm, 'Claim acc' | 'MCQ acc'>> = {
  NegBench: 'MCQ acc',
  uniform: 'Claim acc',
  NAST: 'Claim acc',
};

/** How far below base an arm's validation affirmative R@5 may fall and still be chosen (NAST Table 2: alignment kept). */
export const R5_GUARD = 0.05;

/**
 * The guard holds at a one-sided 95 % lower bound of a point's mean R@5, not at the mean itself.
 * Why: the selection keeps the best objective among the points that pass, and the objective
 * rises as R@5 falls, so a mean-only guard keeps the point whose few seeds happened to land just
 * above the line, and a point whose true mean sits at the line passes on about half of all seed
 * draws (measured once: NAST's previous point, 96.9 over the selection's seeds, 94.1 over five others).
 */
export const R5_GUARD_Z = 1.645;

export interface ArmChoice {
  arm: TunedArm;
  setting: ArmSetting;
  objective: number;
  affirmativeR5: number;
  /** Whether the chosen point kept affirmative R@5 within the guard; false where no point did. */
  guardMet: boolean;
  /** What the guard took off the chosen point's mean R@5: R5_GUARD_Z x the arm's pooled seed spread / sqrt(seeds). */
  r5Margin: number;
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * The seeds' standard deviation of affirmative R@5, pooled over `points` (each point's variance
 * about its own mean, weighted by its degrees of freedom); 0 where no point has two seeds. Pooled
 * because three seeds' own spread is itself a guess: a point whose seeds agreed by luck would
 * otherwise pass on that luck.
 */
export function pooledR5Sd(points: readonly ValidationScores[]): number {
  let ss = 0;
  let df = 0;
  for (const p of points) {
    if (p.affirmativeR5.length < 2) continue;
    const m = mean(p.affirmativeR5);
    ss += p.affirmativeR5.reduce((s, x) => s + (x - m) ** 2, 0);
    df += p.affirmativeR5.length - 1;
  }
  return df ? Math.sqrt(ss / df) : 0;
}

/**
 * The guard over one arm's points: a point keeps alignment where its mean affirmative R@5 minus
 * z x s / sqrt(its seeds) is at least base's minus `guard`, s the seed spread pooled over the
 * arm's points whose mean alone passes (the spread near the line, not that of runs that
 * collapsed far below it).
 */
export function r5Guard(points: readonly ValidationScores[], baseAffirmativeR5: number, guard = R5_GUARD, z = R5_GUARD_Z): (p: ValidationScores) => { margin: number; kept: boolean } {
  const line = baseAffirmativeR5 - guard - 1e-12;
  const sd = pooledR5Sd(points.filter((p) => mean(p.affirmativeR5) >= line));
  return (p) => {
    const margin = (z * sd) / Math.sqrt(p.affirmativeR5.length);
    return { margin, kept: mean(p.affirmativeR5) - margin >= line };
  };
}

/**
 * The point each arm trains at: the highest mean validation objective among its points that keep
 * alignment by r5Guard (a one-sided 95 % lower bound of mean R@5 within R5_GUARD of base); where
 * none does, the point with the highest mean affirmative R@5 (then objective), marked guardMet:
 * false. Ties go to the lower rate, then the higher lambda (more CLIP term). Only validation
 * scores exist here: test scores never reach the choice.
 */
export function pickArmSettings(scores: readonly ValidationScores[], baseAffirmativeR5: number, guard = R5_GUARD, z = R5_GUARD_Z): ArmChoice[] {
  return TUNED_ARMS.filter((arm) => scores.some((s) => s.arm === arm)).map((arm) => {
    const points = scores.filter((s) => s.arm === arm);
    const check = r5Guard(points, baseAffirmativeR5, guard, z);
    const mine = points.map((s) => ({ s, objective: mean(s.objective), r5: mean(s.affirmativeR5), ...check(s) }));
    for (const m of mine) {
      if (!Number.isFinite(m.objective)) throw new RangeError(`selection: ${arm} at ${settingLabel(m.s.setting)} has no finite validation objective`);
    }
    const kept = mine.filter((m) => m.kept);
    const byObjective = (a: typeof mine[number], b: typeof mine[number]) => b.objective - a.objective || a.s.setting.lr - b.s.setting.lr || b.s.setting.lambda - a.s.setting.lambda
      || (a.s.setting.beta ?? 0) - (b.s.setting.beta ?? 0);
    // Where no point keeps alignment, the one that keeps it best: every arm is held to the same
    // rule, so an arm that cannot meet the guard does not win on the objective the guard trades.
    const best = kept.length ? kept.sort(byObjective)[0] : mine.sort((a, b) => b.r5 - a.r5 || byObjective(a, b))[0];
    return { arm, setting: best.s.setting, objective: best.objective, affirmativeR5: best.r5, guardMet: kept.length > 0, r5Margin: best.margin };
  });
}

/** selection.json: what a `--select` run found, and what the default run reads. */
export interface SelectionFile {
  format: 'negclip-arm-selection';
  version: 1;
  command: string;
  model: string;
  steps: number;
  seeds: number[];
  grid: SelectionGrid;
  split: 'validation';
  r5_guard: number;
  /** The lower bound's z (absent in files written before the guard had a margin: 0). */
  r5_guard_z?: number;
  base_affirmative_r5: number;
  points: ValidationScores[];
  chosen: Record<TunedArm, ArmSetting & { objective: number; affirmative_r5: number; guard_met: boolean; r5_margin?: number }>;
}

export function selectionFile(o: Omit<SelectionFile, 'format' | 'version' | 'split' | 'chosen' | 'r5_guard' | 'r5_guard_z'>, choices: readonly ArmChoice[]): SelectionFile {
  const chosen = {} as SelectionFile['chosen'];
  for (const c of choices) chosen[c.arm] = { ...c.setting, objective: c.objective, affirmative_r5: c.affirmativeR5, guard_met: c.guardMet, r5_margin: c.r5Margin };
  return { format: 'negclip-arm-selection', version: 1, ...o, split: 'validation', r5_guard: R5_GUARD, r5_guard_z: R5_GUARD_Z, chosen };
}

/**
 * The chosen settings of a selection.json's text; errors name `file` and the key. Arms the file
 * does not cover are absent from the result.
 */
export function readArmSettings(text: string, file: string): Partial<Record<TunedArm, ArmSetting>> {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new RangeError(`${file}: not JSON (${(e as Error).message})`);
  }
  const o = j as Partial<SelectionFile>;
  if (!o || typeof o !== 'object' || o.format !== 'negclip-arm-selection') throw new RangeError(`${file}: format must be "negclip-arm-selection"`);
  if (o.version !== 1) throw new RangeError(`${file}: version ${JSON.stringify(o.version)} is not supported (expected 1)`);
  if (!o.chosen || typeof o.chosen !== 'object') throw new RangeError(`${file}: chosen must be an object of arms`);
  const out: Partial<Record<TunedArm, ArmSetting>> = {};
  for (const [arm, v] of Object.entries(o.chosen)) {
    if (!(TUNED_ARMS as readonly string[]).includes(arm)) throw new RangeError(`${file}: chosen.${arm}: not an arm (one of ${TUNED_ARMS.join(', ')})`);
    const s = v as Partial<ArmSetting>;
    if (typeof s.lr !== 'number' || !(s.lr > 0) || !Number.isFinite(s.lr)) throw new RangeError(`${file}: chosen.${arm}.lr must be a positive number`);
    if (typeof s.lambda !== 'number' || !(s.lambda >= 0 && s.lambda <= 1)) throw new RangeError(`${file}: chosen.${arm}.lambda must be a number in [0, 1]`);
    if (s.beta !== undefined && (typeof s.beta !== 'number' || !(s.beta >= 0) || !Number.isFinite(s.beta))) throw new RangeError(`${file}: chosen.${arm}.beta must be a number >= 0`);
    if (s.beta !== undefined && !ARM_SEARCHES[arm as TunedArm].includes('beta')) throw new RangeError(`${file}: chosen.${arm}.beta: ${arm} has no layer scales to sharpen`);
    out[arm as TunedArm] = s.beta === undefined ? { lr: s.lr, lambda: s.lambda } : { lr: s.lr, lambda: s.lambda, beta: s.beta };
  }
  return out;
}

/**
 * The steps per run a selection.json's choice was made at (its `steps`), or null where the file
 * does not say: settings chosen at one length of training need not suit another.
 */
export function selectionSteps(text: string): number | null {
  try {
    const steps = (JSON.parse(text) as Partial<SelectionFile>).steps;
    return typeof steps === 'number' && Number.isInteger(steps) && steps > 0 ? steps : null;
  } catch {
    return null;
  }
}

const pct = (x: number) => formatNumber(100 * x, 1);
const pm = (xs: readonly number[]) => {
  const m = mean(xs);
  if (xs.length < 2) return pct(m);
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
  return `${pct(m)} ± ${pct(sd)}`;
};

/** selection.md: every point's validation scores, the chosen ones marked. */
export function selectionMarkdown(f: SelectionFile): string {
  const betas = f.points.some((p) => p.setting.beta !== undefined);
  const gaps = f.points.some((p) => p.claimGap?.length);
  const z = f.r5_guard_z ?? 0;
  const guards = new Map(TUNED_ARMS.map((arm) => [arm, r5Guard(f.points.filter((p) => p.arm === arm), f.base_affirmative_r5, f.r5_guard, z)]));
  const rows = f.points.map((p) => {
    const c = f.chosen[p.arm];
    const chosen = c && sameSetting(c, p.setting);
    const g = guards.get(p.arm)!(p);
    return [
      p.arm, String(p.setting.lr), String(p.setting.lambda), ...(betas ? [p.setting.beta === undefined ? '-' : String(p.setting.beta)] : []),
      ARM_OBJECTIVE[p.arm], pm(p.objective), pm(p.claim), ...(gaps ? [p.claimGap?.length ? pm(p.claimGap) : '-'] : []), pm(p.mcq), pm(p.affirmativeR5),
      ...(z ? [pct(mean(p.affirmativeR5) - g.margin)] : []), g.kept ? 'yes' : 'no', chosen ? '**chosen**' : '',
    ];
  });
  const headers = ['Arm', 'lr', 'lambda', ...(betas ? ['beta'] : []), 'Objective', 'Objective (val)', 'Claim acc (val)', ...(gaps ? ['Claim gap (val)'] : []),
    'MCQ acc (val)', 'R@5 affirmative (val)', ...(z ? ['R@5 lower bound'] : []), 'R@5 kept', ''];
  return `# Per-arm settings chosen on the validation split\n\n` +
    `${f.seeds.length} seed(s) (${f.seeds.join(', ')}), ${f.steps} steps per run, model ${f.model}. Each arm keeps the point with the highest mean validation objective ` +
    `among those whose affirmative R@5 stays within ${pct(f.r5_guard)} points of base (${pct(f.base_affirmative_r5)} on validation)${z ? ` at a one-sided lower bound (mean - ${z} x the arm's seed spread near the line, pooled, / sqrt(seeds))` : ''}; an arm with no such point keeps the one with the highest affirmative R@5. The test split is not read. ` +
    `Percentages, mean ± std over seeds.\n\n` +
    markdownTable(headers, rows) +
    `\nCommand: \`${f.command}\`\n`;
}

/** What a selection needs done: train an arm at a setting, and score a model on the validation split. */
export interface SelectionRunner {
  /**
   * Trains `arm` at `setting` with `seed`; resolves to something `validate` takes (an adapter
   * folder). `shared`: other runs go on beside this one (every run but the last, when jobs > 1).
   */
  train(arm: TunedArm, setting: ArmSetting, seed: number, shared: boolean): Promise<string>;
  /** Scores a trained run (or base, for null) on the validation split: fractions by eval column. */
  validate(trained: string | null, label: string, shared: boolean): Promise<Record<'Claim acc' | 'MCQ acc' | 'R@5 (affirmative)', number> & { 'Claim gap'?: number }>;
}

export interface SelectionPlan {
  arms: readonly TunedArm[];
  grid: SelectionGrid;
  /** The values of the settings an arm does not search. */
  fixed: ArmSetting;
  seeds: readonly number[];
  /** Trainings side by side (at least 1). */
  jobs: number;
}

/**
 * Trains every arm at each of its grid points for every seed, scores each on the validation
 * split and picks per arm (pickArmSettings). Returns the scores, base's affirmative R@5 and the choices.
 */
export async function selectSettings(plan: SelectionPlan, runner: SelectionRunner): Promise<{ points: ValidationScores[]; baseAffirmativeR5: number; choices: ArmChoice[] }> {
  if (!plan.seeds.length) throw new RangeError('selection: no seeds');
  const base = await runner.validate(null, 'base', false);
  const points: ValidationScores[] = plan.arms.flatMap((arm) => armPoints(arm, plan.grid, plan.fixed).map((setting) => ({
    arm, setting, seeds: [...plan.seeds], objective: [], claim: [], mcq: [], affirmativeR5: [], claimGap: [],
  })));
  const tasks = points.flatMap((p) => plan.seeds.map((seed, k) => ({ p, seed, k })));
  await pool(plan.jobs, tasks.map(({ p, seed, k }) => async (shared: boolean) => {
    const trained = await runner.train(p.arm, p.setting, seed, shared);
    const v = await runner.validate(trained, `${p.arm} ${settingLabel(p.setting)}, seed ${seed}`, shared);
    p.objective[k] = v[ARM_OBJECTIVE[p.arm]];
    p.claim[k] = v['Claim acc'];
    p.mcq[k] = v['MCQ acc'];
    p.affirmativeR5[k] = v['R@5 (affirmative)'];
    if (v['Claim gap'] !== undefined) p.claimGap![k] = v['Claim gap'];
  }));
  for (const p of points) if (p.claimGap!.length !== p.seeds.length) delete p.claimGap;
  const baseAffirmativeR5 = base['R@5 (affirmative)'];
  return { points, baseAffirmativeR5, choices: pickArmSettings(points, baseAffirmativeR5) };
}
