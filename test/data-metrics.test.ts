import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  claimAccuracy, hasNegationCue, isCorrect, mcqAccuracy, pairedAccuracy, polarityGap, recallAt, retrievalRecall,
  strictArgmax, subsetAccuracy, targetRanks, type ScoredMcq,
} from '../src/data/metrics.js';

const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} vs ${b}`);

function expectRange(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, RangeError, String(e));
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a RangeError matching ${pattern}`);
}

// 4 texts x 6 images, ranks worked out by hand (ties go against the model).
const SIM = [
  [0.9, 0.1, 0.2, 0.3, 0.0, 0.1], // target 0: best                    -> rank 1
  [0.5, 0.8, 0.4, 0.1, 0.6, 0.7], // target 2: 4 images higher          -> rank 5
  [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], // target 3: all tied                  -> rank 6
  [0.1, 0.9, 0.3, 0.2, 0.0, 0.3], // target 5: one higher, one tied (2)  -> rank 3
];
const TARGETS = [0, 2, 3, 5];

test('retrieval: ranks and Recall@k on a hand-made similarity matrix, ties against the model', () => {
  assert.equal(targetRanks(SIM, TARGETS), [1, 5, 6, 3]);
  const r = retrievalRecall(SIM, TARGETS);
  assert.is(r.n, 4);
  assert.equal(r.recall, { 1: 0.25, 5: 0.75 });
  const flat = retrievalRecall({ data: Float32Array.from(SIM.flat()), rows: 4, cols: 6 }, TARGETS, [1, 2, 3, 6]);
  assert.equal(flat.ranks, [1, 5, 6, 3], 'flat Float32Array with dims gives the same ranks');
  assert.equal(flat.recall, { 1: 0.25, 2: 0.25, 3: 0.5, 6: 1 });
  const sub = retrievalRecall(SIM, TARGETS, [1, 5], { rows: [0, 3] });
  assert.equal([sub.n, sub.recall[1], sub.recall[5]], [2, 0.5, 1], 'a query subset keeps every image as a candidate');
  assert.is(recallAt([1, 5, 6, 3], 5, [1, 2]), 0.5);
  assert.ok(Number.isNaN(recallAt([], 1)), 'no queries: NaN');
  assert.equal(targetRanks([[NaN, 0.1, 0.2]], [0]), [3], 'a NaN target score ranks last');
  assert.equal(targetRanks([[0.5, NaN, 0.2]], [0]), [2], 'a NaN competitor ranks ahead');
});

test('retrieval: cosine similarities of hand-made embeddings', () => {
  // Six images on the unit circle 60 degrees apart; each text sits near its image, except text 4,
  // which is rotated 40 degrees towards image 5 (so image 5 is nearer: rank 2).
  const deg = Math.PI / 180;
  const images = [0, 1, 2, 3, 4, 5].map((k) => [Math.cos(k * 60 * deg), Math.sin(k * 60 * deg)]);
  const offsets = [5, -10, 20, 0, 40, -25];
  const texts = offsets.map((o, k) => [2 * Math.cos((k * 60 + o) * deg), 2 * Math.sin((k * 60 + o) * deg)]);
  const cos = (a: number[], b: number[]) => (a[0]! * b[0]! + a[1]! * b[1]!) / (Math.hypot(a[0]!, a[1]!) * Math.hypot(b[0]!, b[1]!));
  const sim = texts.map((t) => images.map((i) => cos(t, i)));
  const r = retrievalRecall(sim, [0, 1, 2, 3, 4, 5], [1, 2]);
  assert.equal(r.ranks, [1, 1, 1, 1, 2, 1]);
  close(r.recall[1]!, 5 / 6);
  assert.is(r.recall[2], 1);
});

test('retrieval: shape errors name the argument', () => {
  expectRange(() => retrievalRecall(SIM, [0, 1]), /targets has 2 entries for 4 query rows/);
  expectRange(() => retrievalRecall(SIM, [0, 1, 2, 6]), /targets\[3\] = 6 is not a column index below 6/);
  expectRange(() => retrievalRecall({ data: new Float32Array(5), rows: 2, cols: 3 }, [0, 0]), /data has 5 values, expected 2 x 3/);
  expectRange(() => retrievalRecall([[1, 2], [3]], [0, 0]), /row 1 has 1 values, row 0 has 2/);
  expectRange(() => recallAt([1], 0), /k must be a positive integer/);
});

test('claims: argmax equals answer, options vary in count, ties and NaN are wrong', () => {
  const scores = [[0.3, 0.9, 0.1], [0.5, 0.5], [0.2, 0.1, 0.05, 0.15, 0.0, -1, 0.19], [NaN, 0.1], [0.4, NaN]];
  const r = claimAccuracy(scores, [1, 0, 0, 1, 0]);
  assert.equal(r.perSample, [true, false, true, false, false]);
  assert.equal([r.n, r.correct], [5, 2]);
  close(r.accuracy, 0.4);
  assert.is(strictArgmax([0.1, 0.7, 0.7]), -1);
  assert.is(strictArgmax([0.1, 0.7, 0.3]), 1);
  assert.is(strictArgmax([0.1, NaN]), -1);
  assert.is(isCorrect([1], 0), true, 'a single option is trivially right');
  expectRange(() => claimAccuracy([[1, 2]], [2]), /claimAccuracy sample 0: answer 2 is not an option index below 2/);
  expectRange(() => claimAccuracy([[1, 2]], []), /1 score lists for 0 answers/);
  assert.ok(Number.isNaN(claimAccuracy([], []).accuracy));
});

test('mcq: accuracy overall and per template type, and which option type gets picked', () => {
  const types = ['affirmation', 'false-negation', 'false-hybrid', 'negation'];
  const samples: ScoredMcq[] = [
    { type: 'affirmation', answer: 0, scores: [0.9, 0.1, 0.2, 0.3], optionTypes: types }, // right, picks affirmation
    { type: 'negation', answer: 3, scores: [0.9, 0.1, 0.2, 0.3], optionTypes: types },    // wrong, picks affirmation
    { type: 'negation', answer: 3, scores: [0.1, 0.2, 0.3, 0.4], optionTypes: types },    // right, picks negation
    { type: 'hybrid', answer: 2, scores: [0.1, 0.5, 0.5, 0.2], optionTypes: types },      // wrong, tie
    { type: 'hybrid', answer: 2, scores: [0.1, 0.2, 0.6] },                               // right, 3 options
  ];
  const r = mcqAccuracy(samples);
  assert.equal([r.overall.n, r.overall.correct], [5, 3]);
  close(r.overall.accuracy, 0.6);
  assert.equal(r.byType['affirmation'], { n: 1, correct: 1, accuracy: 1 });
  assert.equal(r.byType['negation'], { n: 2, correct: 1, accuracy: 0.5 });
  assert.equal(r.byType['hybrid'], { n: 2, correct: 1, accuracy: 0.5 });
  assert.equal(r.chosenTypes, { affirmation: 2, negation: 1, tie: 1 });
  const onlyAff = mcqAccuracy([samples[0]!]);
  assert.equal(Object.keys(onlyAff.byType), ['affirmation', 'negation', 'hybrid'], 'all three types are always reported');
  assert.is(onlyAff.byType['negation']!.n, 0);
  assert.ok(Number.isNaN(onlyAff.byType['negation']!.accuracy));
});

test('paired: negated vs affirmative twins, gap = affirmative - negated', () => {
  const right = { scores: [0.9, 0.1, 0.2, 0.3], answer: 0 };
  const wrong = { scores: [0.1, 0.9, 0.2, 0.3], answer: 0 };
  const tied = { scores: [0.5, 0.5, 0.2, 0.3], answer: 0 };
  const r = pairedAccuracy([
    { affirmative: right, negated: wrong },
    { affirmative: right, negated: right },
    { affirmative: right, negated: tied },
    { affirmative: wrong, negated: wrong },
    { affirmative: wrong, negated: right },
  ]);
  assert.equal(r.affirmative, { n: 5, correct: 3, accuracy: 0.6 });
  assert.equal(r.negated, { n: 5, correct: 2, accuracy: 0.4 });
  close(r.gap, 0.2, 'positive gap = affirmative bias');
  assert.equal([r.bothCorrect, r.onlyAffirmative, r.onlyNegated, r.neither], [1, 2, 1, 1]);
});

test('polarity gap and the affirmative-only subset', () => {
  const correct = [true, false, true, true, false];
  const negated = [false, true, false, true, true];
  const g = polarityGap(correct, negated);
  assert.equal(g.affirmative, { n: 2, correct: 2, accuracy: 1 });
  assert.equal([g.negated.n, g.negated.correct], [3, 1]);
  close(g.gap, 1 - 1 / 3);
  assert.equal(subsetAccuracy(correct, [0, 1]), { n: 2, correct: 1, accuracy: 0.5 });
  // Retrieval gap from ranks: R@1 on affirmative vs negated queries.
  const ranks = targetRanks(SIM, TARGETS);
  const r1 = polarityGap(ranks.map((x) => x <= 1), [false, true, true, false]);
  close(r1.gap, 0.5);
  expectRange(() => polarityGap([true], []), /1 results for 0 negation flags/);
});

test('negation cues', () => {
  for (const t of ['There is no pulmonary edema.', 'Edema absent.', 'free of atelectasis', "The image doesn't show a dog",
    'Lungs without consolidation', 'This image does not include a car', 'Negative for pneumothorax', 'neither A nor B']) {
    assert.ok(hasNegationCue(t), t);
  }
  for (const t of ['Normal heart size.', 'Sharp costophrenic angles', 'There is a small left pneumothorax.', 'Nodule noted',
    'known lesion in the right lobe', 'This image includes a cat', 'device-free chest', 'There is severe edema.']) {
    assert.not.ok(hasNegationCue(t), t);
  }
});

test.run();
