/**
 * `node dist/train.js --select lr=1e-3,2e-3,4e-3 lambda=0.3,0.5,0.7`: the default run's arms
 * trained at every point of the grid, each scored on the validation split (never the test
 * split), one setting chosen per arm; writes selection.json and selection.md. Copied to the
 * model folder as selection.json, the choice becomes the default run's settings.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_CONFIG_BYTES, readRegularTextSync } from '../io/read-file-node.js';
import type { EvalReport } from './evaluate.js';
import { writeFileAtomic } from '../io/atomic-write-node.js';
import { makeFolderSync } from '../io/fs-errors-node.js';
import { COLUMNS } from './default-run-report.js';
import { armTrainFlags, Miniature, settingFlags, threadsPerJob, tinyWorldModelPath, type MiniatureRunOptions } from './default-run-node.js';
import { TUNED_ARMS, selectSettings, settingLabel, selectionFile, selectionMarkdown, type ArmSetting, type SelectionGrid, type SelectionFile } from './arm-selection.js';

export interface SelectRunOptions extends MiniatureRunOptions {
  grid: SelectionGrid;
  /** The values of the settings an arm does not search. */
  fixed: ArmSetting;
  /** The command line, recorded in selection.json. */
  command: string;
}

/** What a finished selection run was trained with; its eval beside it. */
const RUN_RECORD = 'select-run.json';
const PENDING_RECORD = 'select-run.pending.json';
const EVAL_FILE = 'eval-validation.json';
const readJson = (file: string) => readRegularTextSync(file, MAX_CONFIG_BYTES, 'a selection record');
const readEvalFile = (file: string) => ({ report: (JSON.parse(readJson(file)) as { models: { report: EvalReport }[] }).models[0].report });

const column = (name: string) => COLUMNS.find(([k]) => k === name)![1];

export async function selectRun(o: SelectRunOptions): Promise<SelectionFile> {
  const t0 = Date.now();
  const model = o.model ?? tinyWorldModelPath();
  const out = resolve(o.out);
  makeFolderSync(out);
  const mini = new Miniature(model, out);
  process.stderr.write(`selection: tiny CLIP ${model}, lr ${o.grid.lr.join(',')}, lambda ${o.grid.lambda.join(',')}${o.grid.beta ? `, NAST beta ${o.grid.beta.join(',')}` : ''}, seeds ${o.seeds.join(',')}, ${o.steps} steps per run -> ${out}\n`);
  await mini.build(o.worldCount);
  await mini.trace(o.tracePairs);
  const runDir = (arm: string, s: ArmSetting, seed: number) => join(out, `seed-${seed}`, `${arm}-lr${s.lr}-lambda${s.lambda}${s.beta !== undefined ? `-beta${s.beta}` : ''}`);
  const jobs = o.jobs ?? 2;
  const quiet = jobs > 1 && !o.trainFlags.includes('--quiet') ? ['--quiet'] : [];
  const result = await selectSettings({ arms: TUNED_ARMS, grid: o.grid, fixed: o.fixed, seeds: o.seeds, jobs }, {
    // Each side-by-side run's lavapipe gets its share of the cores (see lavapipeThreadsEnv).
    train: async (arm, setting, seed, shared) => {
      const dir = runDir(arm, setting, seed);
      const flags = [...o.trainFlags, ...settingFlags(setting, []), ...(arm === 'NAST' ? o.nastFlags ?? [] : []), ...quiet];
      const label = `${arm} ${settingLabel(setting)}`;
      // The same command run again (after an interruption, or with a grid grown by a value)
      // reuses every run it finished with exactly these settings.
      const record = join(dir, RUN_RECORD);
      const identity = JSON.stringify({ model, steps: o.steps, seed, arm, flags: armTrainFlags(arm, flags.filter((x) => x !== '--quiet')) });
      if (existsSync(record) && existsSync(join(dir, EVAL_FILE)) && readJson(record) === identity) {
        process.stderr.write(`\n== reused: ${label}, seed ${seed} (${dir})\n`);
        return dir;
      }
      rmSync(record, { force: true });
      await mini.train(arm, seed, dir, o.steps, flags, label, shared ? threadsPerJob(jobs) : undefined);
      await writeFileAtomic(join(dir, PENDING_RECORD), identity);
      return dir;
    },
    validate: async (dir, label, shared) => {
      const file = dir ? join(dir, EVAL_FILE) : join(out, 'eval-base-validation.json');
      // A reused run (no pending record) keeps its score; a fresh one (and base) is scored now.
      const fresh = dir === null || existsSync(join(dir, PENDING_RECORD));
      const { report } = fresh ? await mini.evaluate(dir && join(dir, 'adapter'), file, label, 'validation', false, shared ? threadsPerJob(jobs) : undefined) : readEvalFile(file);
      // Trained and scored: the run may be reused from now on.
      if (dir && fresh) renameSync(join(dir, PENDING_RECORD), join(dir, RUN_RECORD));
      return {
        'Claim acc': column('Claim acc')(report), 'MCQ acc': column('MCQ acc')(report), 'R@5 (affirmative)': column('R@5 (affirmative)')(report),
        'Claim gap': column('Claim gap (affirmative - negated)')(report),
      };
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
