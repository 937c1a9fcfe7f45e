#!/usr/bin/env node
/**
 * `node dist/train.js --model DIR --data DIR --cte cte.json`: NAST fine-tuning of LoRA adapters
 * on the text encoder (or `--uniform` for the baseline, or NegBench's recipe), with checkpoints,
 * exact resume and the per-layer update analysis. With neither --model nor --data: the embedded
 * default run. The flags are in cli/train-flags.ts, the run's set-up in nast/train-setup-node.ts,
 * the loop and report in nast/train-run-node.ts.
 */
import { runCli, UsageError, type ParsedFlags } from './cli/args.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_ARM_SETTING, DEFAULT_RUN_STEPS, DEFAULT_RUN_TRAIN, DEFAULT_RUN_VAL_CHECKS, given, NAST_ONLY, PASS_THROUGH, passed, SWEEPABLE, TRAIN_FLAGS } from './cli/train-flags.js';
import { defaultRun, tinyWorldModelPath, type SweepSpec } from './nast/default-run-node.js';
import { selectRun } from './nast/select-run-node.js';
import { parseSelectionGrid, readArmSettings, selectionSteps, TUNED_ARMS, type ArmSetting, type TunedArm } from './nast/arm-selection.js';
import { MAX_CONFIG_BYTES, readRegularTextSync } from './io/read-file-node.js';
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

function seedList(raw: string): number[] {
  return raw.split(',').map((x) => {
    const n = Number(x.trim());
    // Number('') is 0: an empty entry ("0,,1") is a typo, not seed 0.
    if (x.trim() === '' || !Number.isInteger(n) || n < 0) throw new UsageError(`--seeds: ${JSON.stringify(x)} is not a non-negative integer`);
    return n;
  });
}

/** The model folder's selection.json (what `--select` chose), or null where it has none. */
function armSettingsOf(model: string): { settings: Record<TunedArm, ArmSetting>; source: string | null; steps: number | null } {
  const file = join(model, 'selection.json');
  const settings = Object.fromEntries(TUNED_ARMS.map((a) => [a, { ...DEFAULT_ARM_SETTING }])) as Record<TunedArm, ArmSetting>;
  if (!existsSync(file)) return { settings, source: null, steps: null };
  const text = readRegularTextSync(file, MAX_CONFIG_BYTES, 'a selection file');
  Object.assign(settings, readArmSettings(text, file));
  return { settings, source: file, steps: selectionSteps(text) };
}

async function embeddedDefault(f: ParsedFlags): Promise<void> {
  const short = f.short as boolean;
  const select = f.select as string | undefined;
  const seeds = seedList(short && !given('seeds') ? '0' : select && !given('seeds') ? '100,101' : (f.seeds as string));
  const steps = given('steps') ? (f.steps as number) : short ? 6 : DEFAULT_RUN_STEPS;
  const trainFlags = passed(f, PASS_THROUGH);
  for (const [k, v] of DEFAULT_RUN_TRAIN) {
    if (given(k)) continue;
    // The CLIP batch holds at least the step's own images: a larger --batch-size raises it.
    const value = k === 'clip-batch' && given('batch-size') ? String(Math.max(Number(v), f['batch-size'] as number)) : v;
    trainFlags.push(`--${k}`, value);
  }
  // The validation curves: a few checks over the run (the last step always checks).
  // A selection scores each run once, on the whole validation split, after it.
  if (!given('val-every')) trainFlags.push('--val-every', select ? '0' : String(Math.max(1, Math.ceil(steps / (short ? 2 : DEFAULT_RUN_VAL_CHECKS)))));
  const common = {
    jobs: f.jobs as number,
    seeds,
    steps,
    worldCount: given('world-count') ? (f['world-count'] as number) : short ? 200 : (f['world-count'] as number),
    tracePairs: given('trace-pairs') ? (f['trace-pairs'] as number) : short ? 16 : (f['trace-pairs'] as number),
    trainFlags,
    nastFlags: passed(f, NAST_ONLY),
  };
  if (select) {
    if (f.sweep) throw new UsageError('--select and --sweep: give one of them');
    let grid;
    try {
      grid = parseSelectionGrid(select, DEFAULT_ARM_SETTING);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    for (const k of ['lr', 'lambda']) if (given(k)) throw new UsageError(`--${k}: --select chooses it per arm; list its values in --select instead`);
    if (grid.beta && given('beta')) throw new UsageError('--beta: --select beta=... chooses NAST\'s beta; give one of them');
    await selectRun({ ...common, out: given('out') ? (f.out as string) : 'select-run', grid, fixed: { ...DEFAULT_ARM_SETTING }, command: `node dist/train.js ${process.argv.slice(2).join(' ')}` });
    return;
  }
  const { settings, source, steps: chosenAt } = armSettingsOf(tinyWorldModelPath());
  if (source && !short && chosenAt !== null && chosenAt !== steps) {
    process.stderr.write(`note: ${source} chose each arm's lr and lambda for ${chosenAt} steps a run; this run trains ${steps} (rerun --select with --steps ${steps} to choose for it)\n`);
  }
  await defaultRun({
    ...common,
    out: given('out') ? (f.out as string) : 'default-run',
    armSettings: settings,
    armSettingsSource: source,
    ...(f.sweep ? { sweep: parseSweep(f.sweep as string) } : {}),
  });
}

await runCli('train', 'usage: node dist/train.js --model DIR --data DIR [--recipe nast|negbench] [--cte cte.json | --uniform] [--beta 1] [--lambda 0.5] [--rank 8] [--alpha 16] [--full-text] [--init-adapter DIR] [--lr] [--batch-size] [--steps|--epochs] [--out DIR] [--resume]',
  'Fine-tuning of the CLIP text encoder on negation data, loss lambda * L_CLIP + (1 - lambda) * L_choice, AdamW.\n' +
  '--recipe nast (default): LoRA with per-layer CTE scales (or --uniform), choices = claim sets (L_claim). --recipe negbench: NegBench\'s recipe, every layer at the same rate, choices = NegBench MCQs (L_MCQ, lambda = NegBench\'s alpha); --full-text trains every text-encoder weight instead of LoRA.\n' +
  'With neither --model nor --data: the embedded default run (miniature world, tiny CLIP in models/tiny-world, trace, base / NegBench / uniform / NAST over --seeds, each arm at the lr and lambda of models/tiny-world/selection.json, evaluation table in default-run/); with --select: the selection that chose those settings.', TRAIN_FLAGS, async (f) => {
    const modelPath = f.model as string | undefined;
    if (!modelPath && !f.data) return embeddedDefault(f);
    if (!modelPath) throw new UsageError('--model is required');
    if (!f.data) throw new UsageError('--data is required');
    await runTraining(await setUpTraining(f, given), f);
  });
