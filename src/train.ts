#!/usr/bin/env node
/**
 * `node dist/train.js --model DIR --data DIR --cte cte.json`: NAST fine-tuning of LoRA adapters
 * on the text encoder (or `--uniform` for the baseline, or NegBench's recipe), with checkpoints,
 * exact resume and the per-layer update analysis. With neither --model nor --data: the embedded
 * default run. The flags are in cli/train-flags.ts, the run's set-up in nast/train-setup-node.ts,
 * the loop and report in nast/train-run-node.ts.
 */
import { runCli, UsageError, type ParsedFlags } from './cli/args.js';
import { DEFAULT_RUN_STEPS, DEFAULT_RUN_TRAIN, given, NAST_ONLY, PASS_THROUGH, passed, SWEEPABLE, TRAIN_FLAGS } from './cli/train-flags.js';
import { defaultRun, type SweepSpec } from './nast/default-run-node.js';
import { setUpTraining } from './nast/train-setup-node.js';
import { runTraining } from './nast/train-run-node.js';

/** `--sweep beta=0.5,1,2,4`: the NAST arm once per value. */
function parseSweep(raw: string): SweepSpec {
  const m = /^\s*([a-z-]+)\s*=\s*(.+)$/.exec(raw);
  if (!m) throw new UsageError(`--sweep: expected PARAM=V1,V2,... (PARAM one of ${SWEEPABLE.join(', ')}), got ${JSON.stringify(raw)}`);
  const param = m[1] as SweepSpec['param'];
  if (!(SWEEPABLE as readonly string[]).includes(param)) throw new UsageError(`--sweep: ${param} cannot be swept (one of ${SWEEPABLE.join(', ')})`);
  const values = m[2].split(',').map((x) => {
    const v = Number(x.trim());
    if (x.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--sweep: ${JSON.stringify(x)} is not a number`);
    return v;
  });
  return { param, values };
}

async function embeddedDefault(f: ParsedFlags): Promise<void> {
  const short = f.short as boolean;
  const seeds = (short && !given('seeds') ? '0' : (f.seeds as string)).split(',').map((x) => {
    const n = Number(x.trim());
    // Number('') is 0: an empty entry ("0,,1") is a typo, not seed 0.
    if (x.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--seeds: ${JSON.stringify(x)} is not an integer`);
    return n;
  });
  const trainFlags = passed(f, PASS_THROUGH);
  for (const [k, v] of DEFAULT_RUN_TRAIN) if (!given(k)) trainFlags.push(`--${k}`, v);
  await defaultRun({
    out: given('out') ? (f.out as string) : 'default-run',
    jobs: f.jobs as number,
    seeds,
    steps: given('steps') ? (f.steps as number) : short ? 6 : DEFAULT_RUN_STEPS,
    worldCount: given('world-count') ? (f['world-count'] as number) : short ? 200 : (f['world-count'] as number),
    tracePairs: given('trace-pairs') ? (f['trace-pairs'] as number) : short ? 16 : (f['trace-pairs'] as number),
    trainFlags,
    nastFlags: passed(f, NAST_ONLY),
    ...(f.sweep ? { sweep: parseSweep(f.sweep as string) } : {}),
  });
}

await runCli('train', 'usage: node dist/train.js --model DIR --data DIR [--recipe nast|negbench] [--cte cte.json | --uniform] [--beta 1] [--lambda 0.5] [--rank 8] [--alpha 16] [--full-text] [--init-adapter DIR] [--lr] [--batch-size] [--steps|--epochs] [--out DIR] [--resume]',
  'Fine-tuning of the CLIP text encoder on negation data, loss lambda * L_CLIP + (1 - lambda) * L_choice, AdamW.\n' +
  '--recipe nast (default): LoRA with per-layer CTE scales (or --uniform), choices = claim sets (L_claim). --recipe negbench: NegBench\'s recipe, every layer at the same rate, choices = NegBench MCQs (L_MCQ, lambda = NegBench\'s alpha); --full-text trains every text-encoder weight instead of LoRA.\n' +
  'With neither --model nor --data: the embedded default run (miniature world, tiny CLIP in models/tiny-world, trace, base / NegBench / uniform / NAST over --seeds, evaluation table in default-run/).', TRAIN_FLAGS, async (f) => {
    const modelPath = f.model as string | undefined;
    if (!modelPath && !f.data) return embeddedDefault(f);
    if (!modelPath) throw new UsageError('--model is required');
    if (!f.data) throw new UsageError('--data is required');
    await runTraining(await setUpTraining(f, given), f);
  });
