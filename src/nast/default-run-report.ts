/**
 * The default run's outputs built from its numbers: results.json's object, results.md and
 * results.svg. Pure and browser-safe, so the reports are tested without training anything;
 * default-run-node.ts gathers the numbers and writes the files.
 */
import { barChartSvg, formatNumber, lineChartSvg, markdownTable, PALETTE } from '../io/report.js';
import type { ArmSetting, TunedArm } from './arm-selection.js';
import type { EvalReport } from './evaluate.js';
import { probeFamilyTable, type ProbeReport } from '../world/linear-probe.js';
import { pairedStats } from './paired-stats.js';

/** One table row: an arm (or a sweep value) and its per-seed values by column. */
export interface Summary {
  name: string;
  values: Record<string, number[]>;
}

/** The parts of trace/cte.json the report shows. */
export interface CteSummary {
  cte_layer: number[];
  cte_embeddings: number;
  alpha: number[];
  positions: string;
  pairs: unknown[];
  cte_layer_ci95?: [number, number][];
}

/** Eval-report columns, in table order (percentages). */
export const COLUMNS: [string, (r: EvalReport) => number][] = [
  ['R@1', (r) => r.retrieval.r1],
  ['R@5', (r) => r.retrieval.r5],
  ['R@5 (affirmative)', (r) => r.retrieval.affirmative.r5],
  ['Claim acc', (r) => r.claims.accuracy],
  ['Claim acc (negated)', (r) => r.claims.negated.accuracy],
  ['Claim acc (affirmative)', (r) => r.claims.affirmative.accuracy],
  // NAST's Table 3 reads the affirmative/negated split as one gap per model.
  ['Claim gap (affirmative - negated)', (r) => r.claims.affirmative.accuracy - r.claims.negated.accuracy],
  ['MCQ acc', (r) => r.mcq.overall.accuracy],
  ['MCQ Affirmation', (r) => r.mcq.byType['affirmation']?.accuracy ?? NaN],
  ['MCQ Negation', (r) => r.mcq.byType['negation']?.accuracy ?? NaN],
  ['MCQ Hybrid', (r) => r.mcq.byType['hybrid']?.accuracy ?? NaN],
  ['Paired negated', (r) => r.paired.negated.accuracy],
  ['Paired affirmative', (r) => r.paired.affirmative.accuracy],
  ['Paired gap', (r) => r.paired.gap],
];
/** From each run's report.json and the shares of its update held by the top-CTE layers. */
export const RUN_COLUMNS = ['Train claim acc', 'Top-1 share', 'Top-3 share', 'Top-5 share'] as const;
export const PROBE_COLUMN = 'Probe ceiling';
/** Every column of results.md's tables after 'Model', in order. */
export const TABLE_COLUMNS: readonly string[] = [...COLUMNS.map(([k]) => k), ...RUN_COLUMNS, PROBE_COLUMN];

/** Which results.md columns (or other outputs) correspond to which table or figure of the two papers. */
export interface PaperCounterpart {
  source: string;
  measures: string;
  columns: readonly string[];
  /** Where the counterpart is not a column, or which rows to read. */
  note?: string;
}

export const PAPER_COUNTERPARTS: readonly PaperCounterpart[] = [
  { source: 'NAST Table 1', measures: 'claim accuracy', columns: ['Claim acc'], note: 'rows base, NegBench, NAST; uniform is this run\'s ablation of NAST\'s CTE scales' },
  { source: 'NAST Table 2', measures: 'affirmative alignment kept', columns: ['R@5 (affirmative)'] },
  { source: 'NAST Table 3', measures: 'negated vs affirmative claims', columns: ['Claim acc (negated)', 'Claim acc (affirmative)', 'Claim gap (affirmative - negated)'] },
  { source: 'NAST Table 4', measures: 'share of the update in the top-CTE layers', columns: ['Top-1 share', 'Top-3 share', 'Top-5 share'] },
  { source: 'NAST Figure 5', measures: 'CTE_l profile over layers', columns: [], note: 'the CTE_l line of this file and trace/cte_heatmap.svg' },
  { source: 'NegBench Table 1', measures: 'MCQ accuracy by question type, and retrieval', columns: ['MCQ acc', 'MCQ Affirmation', 'MCQ Negation', 'MCQ Hybrid', 'R@5'] },
];

/** results.md's "What each column reproduces": the counterparts, then the columns no paper table has. */
export function paperColumnsSection(columns: readonly string[] = TABLE_COLUMNS): string {
  for (const p of PAPER_COUNTERPARTS) {
    for (const c of p.columns) if (!columns.includes(c)) throw new Error(`paperColumnsSection: ${p.source} names column "${c}", which the table lacks`);
  }
  const mapped = new Set(PAPER_COUNTERPARTS.flatMap((p) => p.columns));
  const own = columns.filter((c) => !mapped.has(c));
  const table = markdownTable(['Paper', 'Measures', 'Columns'], PAPER_COUNTERPARTS.map((p) => [
    p.source, p.measures, [p.columns.join(', '), p.note ? `(${p.note})` : ''].filter(Boolean).join(' '),
  ]));
  return `## What each column reproduces\n\n${table}\n` +
    (own.length ? `No paper table has a counterpart for: ${own.join(', ')} (this project's own checks).\n` : '');
}

/** Mean and population std (divisor n) of the finite values. */
export function meanStd(xs: number[]): { mean: number; std: number } {
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

/** NAST minus uniform claim accuracy per seed, and how many seeds NAST won, tied, lost. */
export function pairedDifference(nast: readonly number[], uniform: readonly number[]): { diffs: number[]; mean: number; std: number; wins: number; ties: number; losses: number } {
  if (nast.length !== uniform.length) throw new Error(`pairedDifference: ${nast.length} NAST and ${uniform.length} uniform values`);
  const diffs = nast.map((v, i) => v - uniform[i]);
  const { mean, std } = meanStd(diffs);
  return { diffs, mean, std, wins: diffs.filter((d) => d > 1e-12).length, ties: diffs.filter((d) => Math.abs(d) <= 1e-12).length, losses: diffs.filter((d) => d < -1e-12).length };
}

/**
 * NAST against uniform on one column, paired by seed: pairedDifference's fields (std is the
 * population std, kept as it was) and pairedStats' interval and sign counts (sd divides by n - 1).
 */
export function armComparison(column: string, nast: readonly number[], uniform: readonly number[]) {
  const paired = pairedDifference(nast, uniform);
  const { diffs: _d, mean: _m, ...stats } = pairedStats(paired.diffs);
  return { column, ...paired, ...stats };
}
export type ArmComparison = ReturnType<typeof armComparison>;

/** results.json's nast_vs_uniform: claim accuracy at the top level (as before), negated claims beside it. */
export function nastVsUniform(rep: DefaultRunReport): ArmComparison & { negated: ArmComparison } {
  const of = (column: string) => armComparison(column, rowOf(rep, 'NAST').values[column] ?? [], rowOf(rep, 'uniform').values[column] ?? []);
  return { ...of('Claim acc'), negated: of('Claim acc (negated)') };
}

/** One sentence of results.md for a comparison: per-seed differences, mean, interval, signs. */
function comparisonLine(what: string, c: ArmComparison): string {
  const pct = (x: number) => formatNumber(100 * x, 1);
  // formatNumber never prints "-0.0", so a tie reads "+0.0" whatever its round-off sign.
  const signed = (x: number) => (pct(x).startsWith('-') ? pct(x) : `+${pct(x)}`);
  const interval = c.ci95
    ? `95 % CI [${signed(c.ci95[0])}, ${signed(c.ci95[1])}] (Student t, ${c.n - 1} df)${c.ci95_note ? `: ${c.ci95_note}` : ''}`
    : `no 95 % interval (${c.ci95_note})`;
  return `NAST - uniform ${what} per seed: ${c.diffs.map(signed).join(', ')} ` +
    `(mean ${signed(c.mean)} ± ${pct(c.std)}; ${interval}; NAST higher in ${c.higher} of ${c.n} seeds, lower in ${c.lower}, tied in ${c.tied}).`;
}

/** Everything the default run measured, as the report builders take it. */
export interface DefaultRunReport {
  model: string;
  worldCount: number;
  seeds: number[];
  steps: number;
  trainFlags: string[];
  nastFlags: string[];
  seconds: number;
  /** The lr and lambda each fine-tuned arm ran at (null: the fine-tuning default). */
  armSettings?: Partial<Record<TunedArm, { [K in keyof ArmSetting]: number | null }>>;
  /** The selection.json they came from, or null where the run had none. */
  armSettingsSource?: string | null;
  /** Each fine-tuned arm's L_CLIP captions (train.js --clip-captions) and the pairs per L_CLIP batch. */
  clipTerm?: { captions: Partial<Record<TunedArm, string>>; batch: number | null };
  /** Each arm's validation claim accuracy over training, mean over its seeds. */
  validationCurves?: Partial<Record<TunedArm, { runs: number; mean: [number, number][] }>>;
  cte: CteSummary;
  /** The four arms, in table order. */
  rows: Summary[];
  sweep?: { param: string; values: number[]; rows: Summary[] };
  probe: ProbeReport | null;
}

function rowOf(rep: DefaultRunReport, name: string): Summary {
  const r = rep.rows.find((x) => x.name === name);
  if (!r) throw new Error(`default run report: no row "${name}"`);
  return r;
}

function tableOf(list: Summary[]): string {
  const headers = ['Model', ...TABLE_COLUMNS];
  return markdownTable(headers, list.map((r) => [r.name, ...TABLE_COLUMNS.map((h) => cell(r.values[h]))]));
}

function armSettingsLine(rep: DefaultRunReport): string {
  const a = rep.armSettings;
  if (!a || !Object.keys(a).length) return '';
  const list = Object.entries(a).map(([arm, v]) => `${arm} lr ${v.lr ?? 'default'}, lambda ${v.lambda ?? 'default'}${v.beta != null ? `, beta ${v.beta}` : ''}`).join('; ');
  return `Per-arm settings: ${list}${rep.armSettingsSource ? ` (chosen on the validation split: ${rep.armSettingsSource})` : ''}.\n\n`;
}

/** validation.svg: each arm's validation claim accuracy over its steps (mean over seeds); null without checks. */
export function validationCurveSvg(rep: DefaultRunReport): string | null {
  const curves = Object.entries(rep.validationCurves ?? {}).filter(([, c]) => c.mean.length > 0);
  if (!curves.length) return null;
  // Each arm keeps its colour of results.svg, where base is the first series.
  const colourOf = (arm: string) => PALETTE[Math.max(0, rep.rows.findIndex((r) => r.name === arm)) % PALETTE.length];
  return lineChartSvg({
    title: `Validation claim accuracy while training (mean of ${rep.seeds.length} seed(s))`,
    series: curves.map(([arm, c]) => ({ name: arm, points: c.mean.map(([x, y]) => [x, 100 * y] as [number, number]), colour: colourOf(arm) })),
    xLabel: 'step', yLabel: 'claim accuracy on validation claim sets (%)',
  });
}

const CAPTION_WORDS: Record<string, string> = {
  negated: 'negated captions',
  'retrieval-neg': 'NegCap-style captions (the image\'s caption + "There is no X in the image.")',
  affirmative: 'affirmative captions',
  all: 'each of an image\'s captions in turn',
};

/** What an arm's L_CLIP term paired images with, in words. */
function captionWords(rep: DefaultRunReport, arm: TunedArm): string {
  const kind = rep.clipTerm?.captions[arm];
  return kind ? `L_CLIP on ${CAPTION_WORDS[kind] ?? kind}` : 'negated captions';
}

/** results.md. */
export function defaultRunMarkdown(rep: DefaultRunReport): string {
  const vs = nastVsUniform(rep);
  const cte = rep.cte;
  const ci = cte.cte_layer_ci95;
  const probeTable = rep.probe ? `\n${probeFamilyTable(rep.probe.families)}` : '';
  return `# Negation fine-tuning on the miniature world: base vs NegBench vs uniform vs NAST\n\n` +
    `Tiny affirmation-only CLIP (${rep.model}), ${rep.worldCount} world images (held-out test split), ` +
    `${rep.seeds.length} seed(s) (${rep.seeds.join(', ')}), ${rep.steps} steps per arm; mean ± std over seeds, percentages. ` +
    `NegBench: its recipe (NegBench MCQs + ${captionWords(rep, 'NegBench')}), LoRA; uniform and NAST: NAST's recipe (claim sets + ${captionWords(rep, 'NAST')}), LoRA at uniform or CTE-scaled rates` +
    `${rep.clipTerm?.batch ? `; L_CLIP over ${rep.clipTerm.batch} image-caption pairs a step` : ''}. ` +
    `Claim gap = Claim acc (affirmative) - Claim acc (negated), per seed; Paired gap = affirmative - negated (smaller is better). Train claim acc: a fixed sample of training claim sets at the last step. ` +
    `Top-k share: fraction of the total update norm in the k layers with the highest CTE. ` +
    `Probe ceiling: mean held-out balanced accuracy of linear probes of the frozen image embeddings over every tested attribute (chance 50).\n\n${tableOf(rep.rows)}\n` +
    armSettingsLine(rep) +
    `${comparisonLine('claim accuracy', vs)}\n` +
    `${comparisonLine('claim accuracy on negated claims', vs.negated)}\n\n` +
    `CTE_l over layers 1..${cte.cte_layer.length} (positions "${cte.positions}", ${cte.pairs.length} probe pairs): ` +
    `${cte.cte_layer.map((x, l) => `${x.toFixed(3)}${ci ? ` [${ci[l][0].toFixed(3)}, ${ci[l][1].toFixed(3)}]` : ''}`).join(', ')}; ` +
    `embeddings ${cte.cte_embeddings.toFixed(3)} (not a layer); alpha: ${cte.alpha.map((x) => x.toFixed(3)).join(', ')}.\n` +
    (rep.probe ? `\nLinear probes of the frozen image embeddings (train split -> test split):\n${probeTable}` : '') +
    `\n${paperColumnsSection()}` +
    (rep.sweep?.rows.length ? `\n## NAST sweep over ${rep.sweep.param}\n\n${tableOf(rep.sweep.rows)}` : '') +
    `\nWall time ${rep.seconds.toFixed(0)} s.\n`;
}

function summaryRow(r: Summary) {
  return { name: r.name, values: r.values, mean: Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, meanStd(v)])) };
}

/** results.json's object. */
export function defaultRunSummary(rep: DefaultRunReport) {
  const cte = rep.cte;
  return {
    format: 'negclip-default-run', version: 2, model: rep.model, world_count: rep.worldCount, seeds: rep.seeds, steps: rep.steps,
    train_flags: rep.trainFlags, nast_flags: rep.nastFlags, seconds: rep.seconds,
    arm_settings: rep.armSettings ?? null, arm_settings_source: rep.armSettingsSource ?? null,
    clip_term: rep.clipTerm ?? null,
    validation_curves: rep.validationCurves ?? null,
    cte_positions: cte.positions, cte_layer: cte.cte_layer, cte_embeddings: cte.cte_embeddings, alpha: cte.alpha,
    rows: rep.rows.map(summaryRow),
    nast_vs_uniform: nastVsUniform(rep),
    probe: rep.probe ? { families: rep.probe.families, attributes: rep.probe.attributes } : null,
    ...(rep.sweep?.rows.length ? { sweep: { param: rep.sweep.param, values: rep.sweep.values, rows: rep.sweep.rows.map(summaryRow) } } : {}),
  };
}

/** results.svg: the arms side by side on the columns that carry the papers' story. */
export function defaultRunSvg(rep: DefaultRunReport): string {
  const chartCols = ['R@5 (affirmative)', 'Claim acc (negated)', 'Claim acc (affirmative)', 'MCQ Negation', 'MCQ Hybrid', 'Paired negated', 'Paired affirmative'];
  return barChartSvg({
    labels: chartCols,
    series: rep.rows.map((r) => ({ name: r.name, values: chartCols.map((c) => 100 * meanStd(r.values[c] ?? []).mean) })),
    title: `base vs NegBench vs uniform vs NAST (mean of ${rep.seeds.length} seed(s))`, yLabel: '%', yMin: 0, yMax: 100, digits: 1,
  });
}
