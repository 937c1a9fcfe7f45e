import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers/gpu.js';
import { runNode as run } from './helpers/cli-node.js';
import { WordTokenizer } from '../src/models/tokenizer/index.js';
import { worldVocabulary } from '../src/data/world/index.js';
import { loadClip, loadClipTokenizer } from '../src/models/load-node.js';
import { imageConfigFor, loadPixels } from '../src/cli/images-node.js';
import { openDatasetSplit } from '../src/data/dataset-node.js';
import { writeShards } from '../src/data/shards-node.js';
import { l2Normalize, noGrad, scope, type Tensor } from '../src/engine/index.js';
import {
  EvalInputError, byTokenCount, evaluateClip, planEvaluation, tokenCounts, reportFromScores, reportMarkdown, scoresFromEmbeddings,
  type EvalReport,
} from '../src/nast/evaluate.js';
import type { EvalRecord } from '../src/data/records.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATA_CLI = join(ROOT, 'build', 'src', 'data.js');
const EVAL_CLI = join(ROOT, 'build', 'src', 'eval.js');
const TRAIN_CLI = join(ROOT, 'build', 'src', 'train.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const ADAPTER = join(ROOT, 'test', 'fixtures', 'lora', 'peft-adapter');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const TMP = mkdtempSync(join(tmpdir(), 'evaluate-'));

// ---------------------------------------------------------------------------------------------
// Hand-made records and embeddings with answers worked out by hand

const fact = { condition: 'red square', existence: 'present' as const };
const RECORDS: EvalRecord[] = [
  { kind: 'caption', studyId: 'A', image: 'a.png', caption: 'a red square', source: 'original' },
  { kind: 'negated-caption', studyId: 'B', image: 'b.png', caption: 'There is no red square.', facts: [], templates: [] },
  { kind: 'retrieval-neg-caption', studyId: 'C', image: 'c.png', caption: 'A blue circle. There is no cat in the image.', original: 'A blue circle', negative: 'cat', position: 'after' },
  {
    kind: 'claim-set', studyId: 'A', image: 'a.png', factIndex: 0, answer: 1, templates: { presence: 'x', absence: 'y' },
    claims: [
      { text: 'claim wrong', fact, negation: 'existence', origin: 'contextual' },
      { text: 'claim right', fact, negation: null, origin: 'true' },
      { text: 'claim half', fact, negation: 'location', origin: 'contextual' },
    ],
  },
  {
    kind: 'negbench-mcq', studyId: 'B', image: 'b.png', answer: 2, answerType: 'negation', positives: ['x'], negative: 'y',
    options: ['claim wrong', 'mcq other', 'mcq right', 'mcq tied'],
    optionTypes: ['false-affirmation', 'false-hybrid', 'negation', 'false-negation'],
  },
  {
    kind: 'paired-mcq', studyId: 'C', image: 'c.png', question: 'q', conditions: [], configurations: [], phrasings: [],
    negated: { options: ['neg right', 'neg wrong'], answer: 0 },
    affirmative: { options: ['aff right', 'aff wrong'], answer: 0 },
  },
  { kind: 'probe-pair', studyId: 'A', image: 'a.png', condition: 'red square', polarity: 'affirmative', caption: 'There is severe red square.', foil: 'There is no red square.' },
];

// Images are the axes; every text's embedding is chosen to give a known outcome.
const IMAGE_EMB: Record<string, number[]> = { 'a.png': [1, 0, 0], 'b.png': [0, 1, 0], 'c.png': [0, 0, 1] };
const TEXT_EMB: Record<string, number[]> = {
  'a red square': [1, 0.1, 0], // image a first: rank 1
  'There is no red square.': [0.9, 0.5, 0], // target b, but a scores higher: rank 2
  'A blue circle. There is no cat in the image.': [0, 0, 2], // rank 1
  'claim wrong': [0, 1, 0], // against a: 0
  'claim right': [1, 0, 0], // against a: 1 -> correct
  'claim half': [1, 1, 0], // against a: 0.707
  'mcq other': [1, 0, 0], // against b: 0
  'mcq right': [0, 1, 0], // against b: 1
  'mcq tied': [0, 3, 0], // against b: 1 too -> a tie, counted wrong
  'neg right': [1, 0, 1], // against c: 0.707
  'neg wrong': [0, 0, 1], // against c: 1 -> the negated twin is missed
  'aff right': [0, 0, 1], // against c: 1 -> the affirmative twin is right
  'aff wrong': [0, 1, 1], // 0.707
};

test('plan: distinct images and texts, questions by index, probe pairs ignored', () => {
  const plan = planEvaluation(RECORDS);
  assert.equal(plan.images, ['a.png', 'b.png', 'c.png']);
  assert.is(plan.texts.length, 10, '"claim wrong" appears twice but is embedded once');
  assert.equal(plan.queries.map((q) => [q.image, q.negated, q.kind]), [[0, false, 'caption'], [1, true, 'negated-caption'], [2, true, 'retrieval-neg-caption']]);
  assert.equal(plan.claims[0]!.options.map((t) => plan.texts[t]), ['claim wrong', 'claim right', 'claim half']);
  assert.is(plan.mcqs[0]!.options[0], plan.claims[0]!.options[0]);
  assert.equal(plan.ignored, { 'probe-pair': 1 });
  assert.is(plan.kinds['claim-set'], 1);
});

test('report from hand-made embeddings: every number as worked out', () => {
  const plan = planEvaluation(RECORDS);
  const scores = scoresFromEmbeddings(plan, {
    queries: plan.queries.map((q) => TEXT_EMB[q.text]!),
    texts: plan.texts.map((t) => TEXT_EMB[t]!),
    images: plan.images.map((i) => IMAGE_EMB[i]!),
  });
  assert.equal(scores.ranks, [1, 2, 1]);
  const r = reportFromScores(plan, scores);
  assert.equal([r.retrieval.n, r.retrieval.images, r.retrieval.r1, r.retrieval.r5], [3, 3, 2 / 3, 1]);
  assert.equal(r.retrieval.affirmative, { n: 1, r1: 1, r5: 1 });
  assert.equal(r.retrieval.negated, { n: 2, r1: 0.5, r5: 1 });
  assert.equal(r.retrieval.gap, { r1: 0.5, r5: 0 });
  assert.equal(r.retrieval.byKind['negated-caption'], { n: 1, r1: 0, r5: 1 });
  assert.equal([r.claims.n, r.claims.correct, r.claims.accuracy], [1, 1, 1]);
  assert.equal(r.claims.affirmative, { n: 1, correct: 1, accuracy: 1 }, 'the true claim has no negation cue');
  assert.is(r.claims.negated.n, 0);
  assert.ok(Number.isNaN(r.claims.gap), 'no negated claim sets: no gap');
  assert.equal([r.mcq.overall.n, r.mcq.overall.correct], [1, 0], 'a tie counts against the model');
  assert.equal(r.mcq.byType['negation'], { n: 1, correct: 0, accuracy: 0 });
  assert.is(r.mcq.byType['affirmation']!.n, 0);
  assert.equal(r.mcq.chosenTypes, { tie: 1 });
  assert.equal([r.paired.n, r.paired.negated.accuracy, r.paired.affirmative.accuracy, r.paired.gap, r.paired.onlyAffirmative], [1, 0, 1, 1, 1]);
  assert.equal([r.counts.images, r.counts.texts, r.counts.queries, r.counts.claimSets, r.counts.mcqs, r.counts.pairedMcqs], [3, 10, 3, 1, 1, 1]);

  const md = reportMarkdown([{ name: 'hand-made', report: r }, { name: 'again', report: r }]);
  const rows = md.split('\n').filter((l) => l.startsWith('| hand-made |'));
  assert.is(rows.length, 2, 'a row in each table');
  assert.equal(rows[0]!.split('|').slice(1, -1).map((c) => c.trim()), ['hand-made', '66.7', '100.0', '100.0', '0.0', '', '0.0', '', '0.0', '100.0', '100.0']);
  assert.match(md, /\| R@1 \| R@5 \| Claim acc \| MCQ acc \| Affirmation \| Negation \| Hybrid \| Paired negated \| Paired affirmative \| Paired gap \|/);
});

test('plan: malformed records are refused, naming the record', () => {
  const bad = (r: unknown, msg: RegExp) => assert.throws(() => planEvaluation([RECORDS[0]!, r as EvalRecord]), (e: Error) => e instanceof EvalInputError && msg.test(e.message));
  bad({ ...RECORDS[4], answer: 4 }, /record 1 \(negbench-mcq B\): answer 4 is not an index below 4/);
  bad({ ...RECORDS[0], caption: '' }, /record 1 \(caption A\): caption must be a non-empty string/);
  bad({ ...RECORDS[3], image: 7 }, /record 1 \(claim-set A\): image must be a non-empty string/);
  bad({ studyId: 'x' }, /record 1: no "kind"/);
  assert.throws(() => reportFromScores(planEvaluation(RECORDS), { ranks: [1], score: () => 0 }), /1 retrieval ranks for 3 queries/);
});

// ---------------------------------------------------------------------------------------------
// End to end on the tiny fixture CLIP

const DATA = join(TMP, 'world');
let inProcess: EvalReport | undefined;

test('tokenCounts and byTokenCount: counts with start and end tokens; shortest texts first, ties in their order', () => {
  const tok = loadClipTokenizer(MODEL, VOCAB);
  const counts = tokenCounts(tok, ['a red square on the left', 'a cat', 'no', 'a dog', 'there is no red square here']);
  assert.equal(counts, [8, 4, 3, 4, 8]);
  assert.equal(byTokenCount(counts), [2, 1, 3, 0, 4]);
  assert.equal(byTokenCount([]), []);
});

test('evaluateClip on a built world split agrees with a direct, unbatched computation', async () => {
  const b = await run(DATA_CLI, ['build', '--from', 'world', '--world-count', '24', '--seed', '2', '--fractions', '0.5,0.1,0.4', '--out', DATA]);
  assert.is(b.status, 0, b.stderr);
  const ctx = await gpu();
  const clip = await loadClip(ctx, MODEL);
  try {
    const tok = loadClipTokenizer(MODEL, VOCAB);
    const ds = await openDatasetSplit(DATA, 'test');
    const records = await ds.readRecords();
    const cfg = clip.config;
    const imageConfig = imageConfigFor(MODEL, cfg);
    const pixels = (refs: readonly string[]) => loadPixels(refs.map(ds.resolveImage), imageConfig, cfg.vision.imageSize);
    // Small batches: several batches per phase, each cut at its own longest text.
    const live = ctx.pool.liveBytes;
    const res = await evaluateClip(clip, records, { tokenizer: tok, batchSize: 7, loadPixels: pixels });
    assert.is(ctx.pool.liveBytes, live, 'evaluation frees every tensor it makes');
    const { plan, report } = res;
    assert.ok(plan.images.length >= 8, `${plan.images.length} test images`);
    assert.ok(plan.claims.length > 0 && plan.mcqs.length > 0 && plan.paired.length > 0 && plan.queries.length > 0);

    // Direct: every text at the full context length in one pass, every image in one pass.
    const embed = async (fn: () => Tensor, rows: number): Promise<number[][]> => {
      const t = noGrad(() => scope(ctx, () => l2Normalize(fn(), -1)));
      const data = await t.toArray();
      t.dispose();
      const d = data.length / rows;
      return Array.from({ length: rows }, (_, i) => Array.from(data.subarray(i * d, (i + 1) * d)));
    };
    const allTexts = [...plan.queries.map((q) => q.text), ...plan.texts];
    const textEmb = await embed(() => clip.encodeText(tok.tokenize(allTexts, { contextLength: 77 }), allTexts.length).embeds, allTexts.length);
    const px = await pixels(plan.images);
    const images = await embed(() => clip.encodeImage(px, plan.images.length).embeds, plan.images.length);
    const direct = scoresFromEmbeddings(plan, { queries: textEmb.slice(0, plan.queries.length), texts: textEmb.slice(plan.queries.length), images });

    assert.equal(res.scores.ranks, direct.ranks, 'retrieval ranks');
    let worst = 0;
    plan.texts.forEach((_, t) => plan.images.forEach((_, i) => { worst = Math.max(worst, Math.abs(res.scores.score(t, i) - direct.score(t, i))); }));
    assert.ok(worst < 1e-4, `option scores differ by ${worst}`);
    assert.equal(report, reportFromScores(plan, direct), 'the same report from the direct scores');

    const rates = [report.retrieval.r1, report.retrieval.r5, report.claims.accuracy, report.mcq.overall.accuracy, report.paired.negated.accuracy, report.paired.affirmative.accuracy];
    for (const v of rates) assert.ok(v >= 0 && v <= 1, `rate ${v}`);
    assert.ok(report.retrieval.r1 <= report.retrieval.r5);
    assert.is(report.counts.truncatedTexts, 0);
    inProcess = report;
    // Non-finite embeddings fail rather than reading as zero scores.
    const broken = res.imageEmbeds.slice();
    broken[3] = Number.NaN;
    let msg = '';
    try {
      await evaluateClip(clip, records, { tokenizer: tok, batchSize: 7, imageEmbeds: broken });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, /non-finite (caption similarities \d+\.\.\d+|image embeddings) \(NaN at element \d+\)/);

    // Texts past the context length are cut and counted: one caption, one claim (77 positions here).
    const long = `There is ${'a very red square and '.repeat(20)}a cat.`;
    const img = records.find((r) => r.kind === 'claim-set')!.image;
    const cut = (await evaluateClip(clip, [
      { kind: 'caption', studyId: 'x', image: img, caption: long, source: 'original' },
      { kind: 'caption', studyId: 'y', image: img, caption: 'a cat', source: 'original' },
      { kind: 'claim-set', studyId: 'x', image: img, factIndex: 0, answer: 0, templates: { presence: 'p', absence: 'a' },
        claims: [{ text: 'a dog', fact, negation: null, origin: 'true' }, { text: long.replace('cat', 'dog'), fact, negation: 'existence', origin: 'contextual' }] },
    ] as EvalRecord[], { tokenizer: tok, batchSize: 7, loadPixels: pixels })).report;
    assert.is(cut.counts.truncatedTexts, 2);
  } finally {
    clip.dispose();
  }
});

test('eval CLI: base and base + adapter side by side, JSON and Markdown written, same numbers as in-process', async () => {
  assert.ok(inProcess, 'runs after the in-process test');
  const out = join(TMP, 'report.json');
  // The world's word tokenizer through --tokenizer (its ids fit the fixture's vocabulary), on the train split folder.
  const wordTok = join(TMP, 'word-tokenizer.json');
  writeFileSync(wordTok, JSON.stringify(new WordTokenizer(worldVocabulary()).toJSON()));
  const [r, w] = await Promise.all([
    run(EVAL_CLI, ['--model', MODEL, '--tokenizer', VOCAB, '--data', DATA, '--compare-adapter', ADAPTER, '--batch-size', '16', '--out', out]),
    run(EVAL_CLI, ['--model', MODEL, '--tokenizer', wordTok, '--data', join(DATA, 'validation'), '--out', join(TMP, 'word.json')]),
  ]);
  assert.is(r.status, 0, r.stderr);
  assert.is(w.status, 0, w.stderr);
  const word = JSON.parse(readFileSync(join(TMP, 'word.json'), 'utf8'));
  assert.is(word.data.split, 'validation');
  assert.is(word.models[0].report.counts.truncatedTexts, 0);
  assert.ok(word.models[0].report.retrieval.n > 0);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.is(json.format, 'negclip-eval');
  assert.is(json.data.split, 'test');
  assert.equal(json.models.map((m: { name: string }) => m.name), ['tiny-hf', 'tiny-hf + peft-adapter']);
  assert.is(json.models[1].adapter, ADAPTER);
  // JSON writes NaN as null.
  assert.equal(json.models[0].report, JSON.parse(JSON.stringify(inProcess)), 'batch size does not change the numbers');
  const adapted = json.models[1].report as EvalReport;
  assert.is(adapted.retrieval.n, inProcess!.retrieval.n);
  for (const v of [adapted.retrieval.r1, adapted.claims.accuracy, adapted.mcq.overall.accuracy, adapted.paired.gap]) assert.ok(typeof v === 'number' && v >= -1 && v <= 1, String(v));
  const md = readFileSync(join(TMP, 'report.md'), 'utf8');
  assert.ok(r.stdout.includes(md.trim().split('\n')[0]!), 'the printed table is the written one');
  assert.match(md, /\| tiny-hf \| /);
  assert.match(md, /\| tiny-hf \+ peft-adapter \| /);
  assert.match(r.stderr, /eval: tiny-hf: options \d+\/\d+/, 'progress on stderr');
});

test('train.js --eval-split writes the report eval.js writes for the saved adapter; bad splits are refused before training', async () => {
  const run1 = join(TMP, 'run-eval');
  const t = await run(TRAIN_CLI, ['--model', MODEL, '--tokenizer', VOCAB, '--data', DATA, '--uniform', '--steps', '3', '--batch-size', '3', '--lr', '5e-2', '--quiet', '--val-every', '0', '--eval-split', 'test', '--out', run1]);
  assert.is(t.status, 0, t.stderr);
  const inTrain = JSON.parse(readFileSync(join(run1, 'eval.json'), 'utf8'));
  const e = await run(EVAL_CLI, ['--model', MODEL, '--tokenizer', VOCAB, '--data', DATA, '--split', 'test', '--adapter', join(run1, 'adapter'), '--out', join(TMP, 'eval-of-run.json')]);
  assert.is(e.status, 0, e.stderr);
  const separate = JSON.parse(readFileSync(join(TMP, 'eval-of-run.json'), 'utf8'));
  assert.is(inTrain.format, 'negclip-eval');
  assert.equal(inTrain.data, separate.data);
  assert.equal(inTrain.models.map((m: { name: string; model: string; adapter: string }) => [m.name, m.model, m.adapter]), [['tiny-hf + adapter', MODEL, join(run1, 'adapter')]]);
  assert.equal(inTrain.models[0].report, separate.models[0].report, 'the same numbers as eval.js on the saved adapter');
  assert.not.equal(inTrain.models[0].report, JSON.parse(JSON.stringify(inProcess)), 'the adapter moved the scores off the base model\'s');
  assert.ok(readFileSync(join(run1, 'eval.md'), 'utf8').includes('| tiny-hf + adapter |'));
  assert.ok(t.stdout.includes('| tiny-hf + adapter |'), 'the table is printed');

  // A stale eval.json is one of the run's outputs: --overwrite replaces it, a fresh run without it is refused.
  const again = await run(TRAIN_CLI, ['--model', MODEL, '--tokenizer', VOCAB, '--data', DATA, '--uniform', '--steps', '1', '--batch-size', '3', '--quiet', '--val-every', '0', '--out', run1]);
  assert.is(again.status, 2, again.stderr);
  assert.match(again.stderr, /already holds a run \(.*eval\.json, eval\.md\)/);

  const bare = join(TMP, 'bare-shards');
  const ds = await openDatasetSplit(DATA, 'train');
  await writeShards(bare, await ds.readRecords(), { recordsPerShard: 50 });
  const m = ['--model', MODEL, '--tokenizer', VOCAB, '--uniform', '--steps', '1', '--batch-size', '3', '--quiet'];
  const cases: [string[], RegExp][] = [
    [['--data', DATA, '--eval-split', 'dev'], /--eval-split: unknown split "dev"/],
    [['--data', bare, '--eval-split', 'test'], /--eval-split needs a data folder built by node dist\/data\.js build \(with dataset\.json\)/],
  ];
  for (const [k, [args, msg]] of cases.entries()) {
    const out = join(TMP, `refused-${k}`);
    const r = await run(TRAIN_CLI, [...m, ...args, '--out', out]);
    assert.is.not(r.status, 0, args.join(' '));
    assert.match(r.stderr, msg);
    assert.not.ok(existsSync(join(out, 'adapter')), 'refused before training');
  }
});

test('eval CLI: clear one-line errors and exit codes', async () => {
  const onlyTrain = join(TMP, 'only-train');
  const empty = join(TMP, 'empty');
  const probesOnly = join(TMP, 'probes');
  const broken = join(TMP, 'broken');
  const base = ['build', '--from', 'world', '--world-count', '8', '--seed', '4'];
  const built = await Promise.all([
    run(DATA_CLI, [...base, '--split', 'train', '--out', onlyTrain]),
    run(DATA_CLI, [...base, '--split', 'test', '--fractions', '1,0,0', '--out', empty]),
    run(DATA_CLI, [...base, '--kind', 'probe', '--out', probesOnly]),
    run(DATA_CLI, [...base, '--fractions', '0.5,0,0.5', '--out', broken]),
  ]);
  for (const b of built) assert.is(b.status, 0, b.stderr);
  const ds = await openDatasetSplit(broken, 'test');
  const gone = (await ds.readRecords())[0]!.image;
  unlinkSync(ds.resolveImage(gone));

  const m = ['--model', MODEL, '--tokenizer', VOCAB];
  const cases: [string[], RegExp, number][] = [
    [['--data', DATA], /--model is required/, 2],
    [[...m], /--data is required/, 2],
    [[...m, '--data', DATA, '--split', 'dev'], /--split: unknown split "dev"/, 2],
    [[...m, '--data', DATA, '--bogus'], /unknown flag --bogus/, 2],
    [[...m, '--data', DATA, '--compare', MODEL], /same model and adapter/, 2],
    [['--model', join(TMP, 'no-model'), '--data', DATA], /no-model: no such model/, 1],
    [[...m, '--data', join(TMP, 'nowhere')], /nowhere: no such data folder/, 1],
    [[...m, '--data', MODEL], /not a data folder/, 1],
    [[...m, '--data', onlyTrain], /has no "test" split \(built: train\)/, 1],
    [[...m, '--data', join(onlyTrain, 'train'), '--split', 'test'], /is the "train" split folder, but --split test was asked for/, 1],
    [[...m, '--data', empty], /the test split is empty \(0 records\)/, 1],
    [[...m, '--data', probesOnly], /nothing to evaluate: no captions, claim sets or MCQs \(records: probe-pair \d+\)/, 1],
    [[...m, '--data', broken], new RegExp(`1 of \\d+ images are missing .*${gone.replace(/[.]/g, '\\.')}`), 1],
  ];
  const results = await Promise.all(cases.map(([args]) => run(EVAL_CLI, args)));
  for (const [k, [args, msg, code]] of cases.entries()) {
    const r = results[k]!;
    assert.is(r.status, code, `${args.join(' ')}: exit code (${r.stderr})`);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('eval: '));
    assert.is(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0]!, msg, `${args.join(' ')}: ${r.stderr}`);
  }
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
