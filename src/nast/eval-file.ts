/**
 * The JSON report of an evaluation on a built data split (format negclip-eval, version 1): what
 * `eval.js --out` writes and `train.js --eval-split` writes beside the run it evaluated, so one
 * reader serves both.
 */
import type { EvalPlan, EvalReport } from './evaluate.js';

export const EVAL_FILE_FORMAT = 'negclip-eval';
export const EVAL_FILE_VERSION = 1;

/** One evaluated model: its label, where it came from and its report (null: benchmark files only). */
export interface EvalFileRow {
  name: string;
  model: string;
  adapter: string | null;
  seconds: number;
  report: EvalReport | null;
}

/** The data the rows were scored on. */
export interface EvalFileData {
  dir: string;
  split: string | null;
  records: number;
  kinds: EvalPlan['kinds'];
}

/** The report's common part; `extra` (probe, benchmark results) follows the rows. */
export function evalFileJson<R extends EvalFileRow>(data: EvalFileData | null, models: readonly R[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { format: EVAL_FILE_FORMAT, version: EVAL_FILE_VERSION, data, models, ...extra };
}

/** The Markdown report's heading for a data split (eval.js's default --title). */
export function evalTitle(dir: string, split: string | null | undefined): string {
  return `Evaluation on ${dir}${split ? ` (${split} split)` : ''}`;
}

/** Where the Markdown table goes beside a JSON report: FILE.json -> FILE.md, anything else + .md. */
export function evalMarkdownPath(jsonPath: string): string {
  // As node:path's extname: a bare ".json" file name has no extension.
  return /[^/\\]\.json$/i.test(jsonPath) ? jsonPath.slice(0, -5) + '.md' : `${jsonPath}.md`;
}
