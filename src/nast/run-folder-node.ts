/**
 * A training run's output folder: what a fresh run may replace, and the metrics a resumed run
 * keeps. Node-only.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../cli/args.js';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { metricsUpTo } from './resume-check.js';

/** What train.js writes into --out (eval.json and eval.md with --eval-split: a stale one would pass for the new run's). */
const RUN_OUTPUTS = ['metrics.jsonl', 'report.json', 'adapter', 'checkpoint', 'model', 'eval.json', 'eval.md'];

/**
 * A fresh run into a folder holding a run: refused (its adapter, checkpoint and metrics would be
 * overwritten or appended to), unless `overwrite`. Returns what the run will replace: remove it
 * with `removeRunOutputs` once the new run is set up, so a set-up that fails loses nothing.
 */
export function checkRunFolder(out: string, overwrite: boolean): string[] {
  const present = RUN_OUTPUTS.filter((name) => existsSync(join(out, name)));
  if (present.length > 0 && !overwrite) {
    throw new UsageError(`--out ${out} already holds a run (${present.join(', ')}): continue it with --resume, replace it with --overwrite, or choose another --out`);
  }
  return present;
}

/** Removes the previous run's outputs (and only those) from `out`. */
export function removeRunOutputs(out: string, names: readonly string[]): void {
  for (const name of names) rmSync(join(out, name), { recursive: true, force: true });
}

/** Cuts metrics.jsonl back to the checkpoint's step, so the steps run again are not logged twice. */
export async function keepMetricsUpTo(file: string, step: number): Promise<void> {
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const kept = metricsUpTo(text, step);
  if (kept !== text) await writeFileAtomic(file, kept);
}
