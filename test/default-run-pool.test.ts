import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ARM_CLIP_CAPTIONS, armTrainFlags, clipTermOf, lavapipeThreadsEnv, meanCurve, pairedDifference, settingFlags, threadsPerJob, validationCurve } from '../src/nast/default-run-node.js';
import { pool } from '../src/nast/task-pool.js';
import { DEFAULT_RUN_TRAIN } from '../src/cli/train-flags.js';
import { lineChartSvg } from '../src/io/report.js';

test('pool: results in task order, at most n running at once', async () => {
  let running = 0;
  let most = 0;
  const tasks = [30, 5, 20, 1, 10].map((ms, i) => async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
    return i;
  });
  assert.equal(await pool(2, tasks), [0, 1, 2, 3, 4]);
  assert.is(most, 2);
  assert.equal(await pool(8, tasks.slice(0, 2)), [0, 1]);
  assert.equal(await pool(1, []), []);
});

test('pool: every task but the last is told others run beside it; with one at a time, none is', async () => {
  const told = (n: number, count: number) => pool(n, Array.from({ length: count }, () => async (shared: boolean) => shared));
  assert.equal(await told(2, 4), [true, true, true, false]);
  assert.equal(await told(1, 3), [false, false, false]);
  assert.equal(await told(3, 1), [false]);
  let threw = '';
  try {
    await pool(0, []);
  } catch (e) {
    threw = (e as Error).message;
  }
  assert.match(threw, /n must be a positive integer, got 0/);
});

test('lavapipe threads: a share of the cores per side-by-side run, at least one; a user\'s LP_NUM_THREADS kept; none set for a run alone', () => {
  assert.is(threadsPerJob(2, 2), 1);
  assert.is(threadsPerJob(2, 8), 4);
  assert.is(threadsPerJob(3, 8), 2);
  assert.is(threadsPerJob(4, 2), 1);
  const env = { PATH: '/bin' };
  assert.equal(lavapipeThreadsEnv(1, env), { PATH: '/bin', LP_NUM_THREADS: '1' });
  assert.is(lavapipeThreadsEnv(undefined, env), env);
  assert.equal(lavapipeThreadsEnv(1, { LP_NUM_THREADS: '6' }), { LP_NUM_THREADS: '6' });
});

test('pairedDifference: per-seed NAST - uniform, wins, ties and losses', () => {
  const r = pairedDifference([0.5, 0.4, 0.3], [0.4, 0.4, 0.35]);
  assert.ok(Math.abs(r.diffs[0] - 0.1) < 1e-12 && r.diffs[1] === 0 && Math.abs(r.diffs[2] + 0.05) < 1e-12);
  assert.equal([r.wins, r.ties, r.losses], [1, 1, 1]);
  assert.ok(Math.abs(r.mean - 0.05 / 3) < 1e-12);
  assert.throws(() => pairedDifference([1], [1, 2]), /1 NAST and 2 uniform values/);
});

test('validationCurve reads the validation checks of metrics.jsonl; meanCurve averages runs at the steps all of them checked', () => {
  const text = ['{"step":10,"loss":1,"lr":0.1,"samples_per_s":5}', '{"step":10,"val_claim_accuracy":0.5,"train_claim_accuracy":0.6}', '',
    '{"step":20,"val_claim_accuracy":0.7,"train_claim_accuracy":0.8}', '{"step":30,"val_claim_accuracy":null}'].join('\n');
  assert.equal(validationCurve(text), [[10, 0.5], [20, 0.7]]);
  assert.equal(meanCurve([[[10, 0.5], [20, 0.7]], [[10, 0.3], [20, 0.9], [30, 1]]]), [[10, 0.4], [20, 0.8]]);
  assert.equal(meanCurve([]), []);
});

test('settingFlags: an arm\'s lr and lambda unless the run\'s flags already set them', () => {
  assert.equal(settingFlags({ lr: 1e-3, lambda: 0.3 }, ['--batch-size', '16']), ['--lr', '0.001', '--lambda', '0.3']);
  assert.equal(settingFlags({ lr: 1e-3, lambda: 0.3 }, ['--lr', '5e-4']), ['--lambda', '0.3']);
  assert.equal(settingFlags(undefined, []), []);
});

test('armTrainFlags: NegBench keeps its NegCap-style CLIP captions, NAST\'s recipe trains on affirmative ones, a user\'s --clip-captions wins', () => {
  assert.equal(armTrainFlags('NegBench', ['--lr', '0.001']), ['--lr', '0.001', '--clip-captions', 'retrieval-neg']);
  assert.equal(armTrainFlags('uniform', []), ['--clip-captions', 'affirmative']);
  assert.equal(armTrainFlags('NAST', []), ['--clip-captions', 'affirmative']);
  assert.equal(armTrainFlags('NAST', ['--clip-captions', 'negated']), ['--clip-captions', 'negated']);
  assert.equal(ARM_CLIP_CAPTIONS.uniform, ARM_CLIP_CAPTIONS.NAST, 'the two NAST-recipe arms differ only in their layer scales');
  assert.ok(!DEFAULT_RUN_TRAIN.some(([k]) => k === 'clip-captions'), 'the run-wide defaults leave the captions to each arm');
  assert.equal(DEFAULT_RUN_TRAIN.find(([k]) => k === 'clip-batch'), ['clip-batch', '32']);
});

test('clipTermOf: each arm\'s L_CLIP captions and the CLIP batch (else the batch size) for the report', () => {
  const t = clipTermOf(['--batch-size', '8', '--clip-batch', '32'], (arm) => armTrainFlags(arm, []));
  assert.equal(t, { captions: { NegBench: 'retrieval-neg', uniform: 'affirmative', NAST: 'affirmative' }, batch: 32 });
  assert.equal(clipTermOf(['--batch-size', '16'], () => ['--clip-captions', 'all']).batch, 16);
  assert.equal(clipTermOf([], () => []), { captions: { NegBench: 'negated', uniform: 'negated', NAST: 'negated' }, batch: null });
});

test('lineChartSvg: a polyline per series, broken at missing values, markers titled with values', () => {
  const svg = lineChartSvg({ title: 'curves', series: [{ name: 'NAST', points: [[0, 10], [50, 20], [100, NaN], [150, 40]] }, { name: 'uniform', points: [[0, 5], [150, 35]] }], xLabel: 'step', yLabel: '%' });
  assert.is((svg.match(/<polyline class="line"/g) ?? []).length, 3);
  assert.is((svg.match(/<circle /g) ?? []).length, 5);
  assert.match(svg, /<title>NAST, 150: 40<\/title>/);
  assert.throws(() => lineChartSvg({ series: [] }), /no series/);
  assert.throws(() => lineChartSvg({ series: [{ name: 'a', points: [[0, NaN]] }] }), /no finite points/);
});

test.run();
