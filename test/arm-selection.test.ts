import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  armPoints, parseSelectionGrid, pickArmSettings, pooledR5Sd, readArmSettings, selectSettings, selectionFile, selectionMarkdown, selectionSteps,
  type ArmSetting, type TunedArm, type ValidationScores,
} from '../src/nast/arm-selection.js';
import { parseFlags } from '../src/cli/args.js';

const FIXED: ArmSetting = { lr: 2e-3, lambda: 0.5 };

test('parseSelectionGrid: lr, lambda and beta lists; a setting left out keeps the fixed value; bad words are named', () => {
  assert.equal(parseSelectionGrid('lr=1e-3,2e-3,4e-3 lambda=0.3,0.5,0.7', FIXED), { lr: [1e-3, 2e-3, 4e-3], lambda: [0.3, 0.5, 0.7] });
  assert.equal(parseSelectionGrid('lambda=0.2;lr=5e-4', FIXED), { lr: [5e-4], lambda: [0.2] });
  assert.equal(parseSelectionGrid('lr=1e-3', FIXED), { lr: [1e-3], lambda: [0.5] });
  assert.equal(parseSelectionGrid('lr=1e-3 beta=1,4', FIXED), { lr: [1e-3], lambda: [0.5], beta: [1, 4] });
  assert.throws(() => parseSelectionGrid('gamma=1,2', FIXED), /expected lr=.*beta=.*got "gamma=1,2"/);
  assert.throws(() => parseSelectionGrid('beta=-1', FIXED), /beta must be >= 0/);
  assert.throws(() => parseSelectionGrid('lr=1e-3,,2e-3', FIXED), /lr: "" is not a number/);
  assert.throws(() => parseSelectionGrid('lr=0', FIXED), /lr must be positive/);
  assert.throws(() => parseSelectionGrid('lambda=1.5', FIXED), /lambda must be in \[0, 1\]/);
  assert.throws(() => parseSelectionGrid('lr=1e-3 lr=2e-3', FIXED), /lr is given twice/);
  assert.throws(() => parseSelectionGrid('lr=1e-3,1e-3', FIXED), /lists a value twice/);
  assert.throws(() => parseSelectionGrid('  ', FIXED), /expected lr=/);
});

test('--select takes the words after it up to the next flag', () => {
  const f = parseFlags(['--select', 'lr=1e-3,2e-3', 'lambda=0.3', '--steps', '5'], { select: { kind: 'string', words: true, help: '' }, steps: { kind: 'int', help: '' } });
  assert.is(f.select, 'lr=1e-3,2e-3 lambda=0.3');
  assert.is(f.steps, 5);
  assert.throws(() => parseFlags(['--steps', '5', 'lambda=0.3'], { steps: { kind: 'int', help: '' } }), /unexpected argument/);
});

test('armPoints: NegBench searches its rate only, the NAST-recipe arms rate x lambda, NAST also beta where the grid has it', () => {
  const grid = { lr: [1e-3, 4e-3], lambda: [0.3, 0.7] };
  assert.equal(armPoints('NegBench', grid, FIXED), [{ lr: 1e-3, lambda: 0.5 }, { lr: 4e-3, lambda: 0.5 }]);
  assert.is(armPoints('NAST', grid, FIXED).length, 4);
  assert.equal(armPoints('uniform', grid, FIXED)[3], { lr: 4e-3, lambda: 0.7 });
  const withBeta = { ...grid, beta: [1, 8] };
  assert.equal(armPoints('NAST', withBeta, FIXED).slice(0, 3), [{ lr: 1e-3, lambda: 0.3, beta: 1 }, { lr: 1e-3, lambda: 0.3, beta: 8 }, { lr: 1e-3, lambda: 0.7, beta: 1 }]);
  assert.is(armPoints('NAST', withBeta, FIXED).length, 8);
  assert.equal(armPoints('uniform', withBeta, FIXED), armPoints('uniform', grid, FIXED), 'uniform has no layer scales to sharpen');
  assert.equal(armPoints('NegBench', withBeta, FIXED), armPoints('NegBench', grid, FIXED));
});

const scores = (arm: TunedArm, lr: number, lambda: number, objective: number[], r5: number[]): ValidationScores =>
  ({ arm, setting: { lr, lambda }, seeds: objective.map((_, i) => i), objective, claim: objective, mcq: objective, affirmativeR5: r5 });

test('pickArmSettings: best mean objective among points that keep affirmative R@5 within the guard of base', () => {
  const picked = pickArmSettings([
    scores('NAST', 1e-3, 0.5, [0.50, 0.52], [0.99, 1.0]),
    // Higher objective but R@5 falls 10 points below base: not chosen.
    scores('NAST', 4e-3, 0.5, [0.70, 0.72], [0.90, 0.90]),
    scores('NAST', 2e-3, 0.5, [0.60, 0.60], [0.96, 0.97]),
    scores('uniform', 1e-3, 0.5, [0.40], [0.5]),
    scores('uniform', 2e-3, 0.5, [0.45], [0.6]),
  ], 1.0);
  assert.equal(picked.map((p) => [p.arm, p.setting.lr, p.guardMet]), [['uniform', 2e-3, false], ['NAST', 2e-3, true]]);
  // No point keeps alignment: the one that keeps it best, not the best objective (the same rule for every arm).
  const none = pickArmSettings([scores('uniform', 4e-3, 0.3, [0.9], [0.7]), scores('uniform', 1e-3, 0.7, [0.5], [0.92]), scores('uniform', 2e-3, 0.7, [0.6], [0.92])], 1.0);
  assert.equal([none[0].setting, none[0].guardMet], [{ lr: 2e-3, lambda: 0.7 }, false]);
  assert.ok(Math.abs(picked[1].objective - 0.6) < 1e-12 && Math.abs(picked[1].affirmativeR5 - 0.965) < 1e-12);
  // Exactly at the guard counts as kept; ties go to the lower rate, then the higher lambda.
  const tie = pickArmSettings([scores('NAST', 2e-3, 0.3, [0.6], [0.95]), scores('NAST', 1e-3, 0.3, [0.6], [0.95]), scores('NAST', 1e-3, 0.7, [0.6], [0.95])], 1.0);
  assert.equal(tie[0].setting, { lr: 1e-3, lambda: 0.7 });
  assert.is(tie[0].guardMet, true);
  // Then the lower beta (the smoother scaling).
  const betaTie = pickArmSettings([
    { ...scores('NAST', 1e-3, 0.5, [0.6], [0.95]), setting: { lr: 1e-3, lambda: 0.5, beta: 8 } },
    { ...scores('NAST', 1e-3, 0.5, [0.6], [0.95]), setting: { lr: 1e-3, lambda: 0.5, beta: 2 } },
  ], 1.0);
  assert.equal(betaTie[0].setting, { lr: 1e-3, lambda: 0.5, beta: 2 });
  assert.throws(() => pickArmSettings([scores('NAST', 1e-3, 0.3, [NaN], [1])], 1), /no finite validation objective/);
});

test('selectionSteps: the steps a selection was made at, or null where the file does not say', () => {
  const file = selectionFile({ command: 'c', model: 'm', steps: 160, seeds: [1], grid: { lr: [1e-3], lambda: [0.5] }, base_affirmative_r5: 1, points: [] }, []);
  assert.is(selectionSteps(JSON.stringify(file)), 160);
  assert.is(selectionSteps(JSON.stringify({ ...file, steps: undefined })), null);
  assert.is(selectionSteps(JSON.stringify({ ...file, steps: 2.5 })), null);
  assert.is(selectionSteps('not json'), null);
});

test('pooledR5Sd: every point\'s variance about its own mean, weighted by its degrees of freedom; single-seed points add nothing', () => {
  // ss 0.005 (df 1) + 0.06 (df 2): sqrt(0.065 / 3).
  const sd = pooledR5Sd([scores('NAST', 1e-3, 0.5, [0, 0], [0.9, 1.0]), scores('NAST', 2e-3, 0.5, [0, 0, 0], [0.8, 0.8, 1.1]), scores('NAST', 4e-3, 0.5, [0], [0.2])]);
  assert.ok(Math.abs(sd - Math.sqrt(0.065 / 3)) < 1e-12, String(sd));
  assert.is(pooledR5Sd([scores('NAST', 1e-3, 0.5, [0], [0.9])]), 0);
});

test('pickArmSettings: the guard holds at a lower bound, so a point whose seeds agreed just above the line by luck is not kept', () => {
  // A: mean 0.96 with no spread of its own; B: mean 0.98. Pooled spread sqrt(0.0024 / 4), margin
  // 1.645 x 0.0245 / sqrt(3) = 0.023: A's bound 0.937 falls under 0.95, B's 0.957 stays.
  const a = scores('NAST', 2e-3, 0.5, [0.7, 0.7, 0.7], [0.96, 0.96, 0.96]);
  const b = scores('NAST', 1e-3, 0.5, [0.6, 0.6, 0.6], [1.0, 0.94, 1.0]);
  // A collapsed point far below the line does not widen the spread the guard uses.
  const collapsed = scores('NAST', 8e-3, 0.5, [0.9, 0.9, 0.9], [0.2, 0.9, 0.5]);
  const [pick] = pickArmSettings([a, b, collapsed], 1.0);
  assert.equal([pick.setting, pick.guardMet], [{ lr: 1e-3, lambda: 0.5 }, true]);
  assert.ok(Math.abs(pick.r5Margin - (1.645 * Math.sqrt(0.0024 / 4)) / Math.sqrt(3)) < 1e-12, String(pick.r5Margin));
  // At z 0 the guard is the mean's: A passes and wins on its objective.
  assert.equal(pickArmSettings([a, b, collapsed], 1.0, 0.05, 0)[0].setting, { lr: 2e-3, lambda: 0.5 });
  const file = selectionFile({ command: 'c', model: 'm', steps: 10, seeds: [1, 2, 3], grid: { lr: [1e-3, 2e-3, 8e-3], lambda: [0.5] }, base_affirmative_r5: 1, points: [a, b, collapsed] }, [pick]);
  assert.is(file.r5_guard_z, 1.645);
  const md = selectionMarkdown(file);
  assert.match(md, /R@5 lower bound/);
  assert.match(md, /\| NAST \| 0\.002 \| 0\.5 \|.*\| 96\.0 ± 0\.0 \| 93\.7 \| no \|  \|/);
  assert.match(md, /\| NAST \| 0\.001 \| 0\.5 \|.*\| 95\.7 \| yes \| \*\*chosen\*\* \|/);
});

test('selectSettings: chooses on validation scores when the test split would choose otherwise', async () => {
  // Validation prefers lr 1e-3 for every arm; the test split (which the runner can also score) prefers 4e-3.
  const val = (lr: number) => (lr === 1e-3 ? 0.7 : 0.5);
  const testScore = (lr: number) => (lr === 1e-3 ? 0.4 : 0.9);
  const trained: string[] = [];
  const sharedFlags: boolean[] = [];
  const splitsRead: string[] = [];
  const score = (split: 'validation' | 'test', run: string | null) => {
    splitsRead.push(split);
    const lr = run === null ? 0 : Number(run.split(':')[1]);
    const v = run === null ? 0.3 : split === 'validation' ? val(lr) : testScore(lr);
    return { 'Claim acc': v, 'MCQ acc': v, 'R@5 (affirmative)': 1 };
  };
  const res = await selectSettings({ arms: ['NegBench', 'uniform', 'NAST'], grid: { lr: [1e-3, 4e-3], lambda: [0.3, 0.7] }, fixed: FIXED, seeds: [7, 8], jobs: 3 }, {
    train: async (arm, s, seed, shared) => {
      await new Promise((r) => setTimeout(r, 0));
      const id = `${arm}:${s.lr}:${s.lambda}:${seed}`;
      trained.push(id);
      sharedFlags.push(shared);
      return id;
    },
    validate: async (run, _label, shared) => {
      if (run === null) assert.is(shared, false, 'base is scored before any run');
      return score('validation', run);
    },
  });
  // Every run but the last (which finishes alone) shares the machine.
  assert.equal(sharedFlags, [...new Array(19).fill(true), false]);
  // 2 NegBench points + 4 + 4, each for two seeds.
  assert.is(trained.length, 20);
  assert.is(new Set(trained).size, 20);
  assert.equal(res.choices.map((c) => [c.arm, c.setting.lr]), [['NegBench', 1e-3], ['uniform', 1e-3], ['NAST', 1e-3]]);
  // (testScore would have picked lr 4e-3: the case tells the two splits apart.)
  assert.ok(splitsRead.every((s) => s === 'validation'), 'the selection reads only the validation split');
  assert.is(res.baseAffirmativeR5, 1);
  assert.equal(res.points.find((p) => p.arm === 'NAST' && p.setting.lr === 1e-3 && p.setting.lambda === 0.3)!.objective, [0.7, 0.7]);
});

test('selection.json round trip and its errors name the file and key', () => {
  const picked = pickArmSettings([scores('NAST', 1e-3, 0.3, [0.6], [0.95]), scores('uniform', 4e-3, 0.7, [0.5], [0.99]), scores('NegBench', 2e-3, 0.5, [0.8], [1])], 1.0);
  const file = selectionFile({ command: 'node dist/train.js --select lr=1e-3', model: 'm', steps: 10, seeds: [1], grid: { lr: [1e-3], lambda: [0.3] }, base_affirmative_r5: 1,
    points: [scores('NAST', 1e-3, 0.3, [0.6], [0.95])] }, picked);
  assert.equal(readArmSettings(JSON.stringify(file), 'sel.json'), { NegBench: { lr: 2e-3, lambda: 0.5 }, uniform: { lr: 4e-3, lambda: 0.7 }, NAST: { lr: 1e-3, lambda: 0.3 } });
  assert.match(selectionMarkdown(file), /\| NAST \| 0\.001 \| 0\.3 \| Claim acc \| 60\.0 \|.*\*\*chosen\*\*/);
  assert.throws(() => readArmSettings('{', 'sel.json'), /sel\.json: not JSON/);
  assert.throws(() => readArmSettings('{"format":"x"}', 'sel.json'), /sel\.json: format/);
  const bad = (chosen: unknown) => JSON.stringify({ ...file, chosen });
  assert.throws(() => readArmSettings(bad({ NAST: { lr: -1, lambda: 0.5 } }), 'sel.json'), /sel\.json: chosen\.NAST\.lr must be a positive number/);
  assert.throws(() => readArmSettings(bad({ NAST: { lr: 1, lambda: 2 } }), 'sel.json'), /chosen\.NAST\.lambda must be a number in \[0, 1\]/);
  assert.throws(() => readArmSettings(bad({ CLIP: { lr: 1, lambda: 0.5 } }), 'sel.json'), /chosen\.CLIP: not an arm/);
  assert.throws(() => readArmSettings(bad({ NAST: { lr: 1, lambda: 0.5, beta: -2 } }), 'sel.json'), /chosen\.NAST\.beta must be a number >= 0/);
  assert.throws(() => readArmSettings(bad({ uniform: { lr: 1, lambda: 0.5, beta: 2 } }), 'sel.json'), /chosen\.uniform\.beta: uniform has no layer scales/);
});

test('selection with NAST\'s beta: chosen.NAST carries it, selection.md gains beta and claim-gap columns', () => {
  const nast = (beta: number, objective: number, gap: number): ValidationScores =>
    ({ ...scores('NAST', 1e-3, 0.5, [objective], [0.99]), setting: { lr: 1e-3, lambda: 0.5, beta }, claimGap: [gap] });
  const points = [nast(1, 0.5, 0.3), nast(4, 0.6, 0.1), { ...scores('uniform', 1e-3, 0.5, [0.55], [0.99]), claimGap: [0.2] }];
  const picked = pickArmSettings(points, 1.0);
  const file = selectionFile({ command: 'c', model: 'm', steps: 10, seeds: [1], grid: { lr: [1e-3], lambda: [0.5], beta: [1, 4] }, base_affirmative_r5: 1, points }, picked);
  assert.equal(file.chosen.NAST.beta, 4);
  assert.equal(readArmSettings(JSON.stringify(file), 'sel.json'), { uniform: { lr: 1e-3, lambda: 0.5 }, NAST: { lr: 1e-3, lambda: 0.5, beta: 4 } });
  const md = selectionMarkdown(file);
  assert.match(md, /\| Arm \| lr \| lambda \| beta \| Objective \| Objective \(val\) \| Claim acc \(val\) \| Claim gap \(val\) \|/);
  assert.match(md, /\| NAST \| 0\.001 \| 0\.5 \| 4 \| Claim acc \| 60\.0 \| 60\.0 \| 10\.0 \|.*\*\*chosen\*\*/);
  assert.match(md, /\| NAST \| 0\.001 \| 0\.5 \| 1 \| Claim acc \| 50\.0 \| 50\.0 \| 30\.0 \|.*\|\s*\|$/m);
  assert.match(md, /\| uniform \| 0\.001 \| 0\.5 \| - \| Claim acc \| 55\.0 \| 55\.0 \| 20\.0 \|/);
});

test.run();
