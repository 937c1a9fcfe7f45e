/**
 * `node dist/train.js --select lr=1e-3,2e-3,4e-3 lambda=0.3,0.5,0.7`: the default run's arms
 * trained at every point of the grid, each scored on the validation split (never the test
 * split), one setting chosen per arm; writes selection.json and selection.md. Copied to the
 * model folder as selection.json, the choice becomes the default run's settings.
 */
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { makeFolderSync } from '../io/fs-errors-node.js';
import { COLUMNS } from './default-run-report.js';
import { Miniature, settingFlags, tinyWorldModelPath } from './default-run-node.js';
import { TUNED_ARMS, selectSettings, selectionFile, selectionMarkdown, type ArmSetting, type SelectionGrid, type SelectionFile } from './arm-selection.js';

export interface SelectRunOptions {
  out: string;
  model?: string;
  grid: SelectionGrid;
  fixed: ArmSetting;
  seeds: number[];
  steps: number;
  worldCount: number;
  tracePairs: number;
  /** Flags of every fine-tuning run (the default run's). */
  trainFlags: string[];
  nastFlags?: string[];
  jobs: number;
  /** The command line, recorded in selection.json. */
  command: string;
}

const column = (name: string) => COLUMNS.find(([k]) => k === name)![1];

export async function selectRun(o: SelectRunOptions): Promise<SelectionFile> {
  const t0 = Date.now();
  const model = o.model ?? tinyWorldModelPath();
  const out = resolve(o.out);
  makeFolderSync(out);
  const mini = new Miniature(model, out);
  process.stderr.write(`selection: tiny CLIP ${model}, lr ${o.grid.lr.join(',')}, lambda ${o.grid.lambda.join(',')}, seeds ${o.seeds.join(',')}, ${o.steps} steps per run -> ${out}\n`);
  await mini.build(o.worldCount);
  await mini.trace(o.tracePairs);
  const runDir = (arm: string, s: ArmSetting, seed: number) => join(out, `seed-${seed}`, `${arm}-lr${s.lr}-lambda${s.lambda}`);
  const quiet = o.jobs > 1 && !o.trainFlags.includes('--quiet') ? ['--quiet'] : [];
  const result = await selectSettings({ arms: TUNED_ARMS, grid: o.grid, fixed: o.fixed, seeds: o.seeds, jobs: o.jobs }, {
    train: async (arm, setting, seed) => {
      const dir = runDir(arm, setting, seed);
      const flags = [...o.trainFlags, ...settingFlags(setting, []), ...(arm === 'NAST' ? o.nastFlags ?? [] : []), ...quiet];
      await mini.train(arm, seed, dir, o.steps, flags, `${arm} lr ${setting.lr} lambda ${setting.lambda}`);
      return dir;
    },
    validate: async (dir, label) => {
      const file = dir ? join(dir, 'eval-validation.json') : join(out, 'eval-base-validation.json');
      const { report } = await mini.evaluate(dir && join(dir, 'adapter'), file, label, 'validation');
      return { 'Claim acc': column('Claim acc')(report), 'MCQ acc': column('MCQ acc')(report), 'R@5 (affirmative)': column('R@5 (affirmative)')(report) };
    },
  });
  const file = selectionFile({
    command: o.command, model, steps: o.steps, seeds: o.seeds, grid: o.grid,
    base_affirmative_r5: result.baseAffirmativeR5, points: result.points,
  }, result.choices);
  await writeFileAtomic(join(out, 'selection.json'), JSON.stringify(file, null, 1) + '\n');
  const md = selectionMarkdown(file);
  await writeFileAtomic(join(out, 'selection.md'), md);
  process.stderr.write('\n');
  console.log(md);
  console.log(`wrote ${join(out, 'selection.json')} and selection.md in ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
    `copy selection.json into the model folder (${join(model, 'selection.json')}) to make the choice the default run's settings`);
  return file;
}
