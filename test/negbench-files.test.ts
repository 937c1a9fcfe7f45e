import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNastMcqJson, parseNegBenchMcqCsv, parseNegBenchRetrievalCsv, parsePyStringList } from '../src/data/negbench-files.js';
import { negBenchMcqCsv, negBenchRetrievalCsv, pyStringList } from '../src/data/export-negbench.js';
import type { NegBenchMcq } from '../src/data/mcq.js';
import { readBenchmarkFiles } from '../src/nast/benchmark-files-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = (name: string) => join(ROOT, 'build', 'src', `${name}.js`);
const MODEL = join(ROOT, 'models', 'tiny-world');

test('parsePyStringList: quotes and escapes as Python writes them; anything else refused, never evaluated', () => {
  assert.equal(parsePyStringList("['a dog', \"it's\", 'say \\'hi\\'', 'back\\\\slash', 'tab\\tnew\\nline', 'caf\\xe9']"), ['a dog', "it's", "say 'hi'", 'back\\slash', 'tab\tnew\nline', 'café']);
  assert.equal(parsePyStringList('[]'), []);
  assert.equal(parsePyStringList(" [ 'x' , 'y', ] "), ['x', 'y']);
  for (const bad of ["__import__('os').system('touch /tmp/x')", "['a', b]", "['a'", "['a'] + ['b']", '[1, 2]', "('a',)"]) {
    assert.throws(() => parsePyStringList(bad), /expected|not closed|after the list/, bad);
  }
  const items = ['plain', "o'clock", 'a "quote"', 'both \' and "', 'back\\slash', 'new\nline'];
  assert.equal(parsePyStringList(pyStringList(items)), items, 'our writer and reader round-trip');
});

test('NegBench MCQ CSV: four options with templates, the binary variant, rows with problems kept with their line', () => {
  const csv = [
    'image_path,correct_answer,caption_0,caption_1,caption_2,caption_3,correct_answer_template',
    'a.jpg,2,A dog.,"A dog, but not a cat.",No cat.,A cat.,negative',
    'b.jpg,7,x,y,z,w,positive',
    'c.jpg,0,x,,z,w,hybrid',
    'd.jpg,1,x,y,z,w,sideways',
    ',1,x,y,z,w,positive',
    'e.jpg,3,x,y,z,w,Hybrid',
  ].join('\n');
  const r = parseNegBenchMcqCsv(csv, 'coco_mcq.csv');
  assert.equal(r.rows.map((x) => [x.line, x.image, x.answer, x.template]), [[2, 'a.jpg', 2, 'negative'], [7, 'e.jpg', 3, 'hybrid']]);
  assert.equal(r.rows[0].options, ['A dog.', 'A dog, but not a cat.', 'No cat.', 'A cat.']);
  assert.equal(r.problems.map((p) => p.line), [3, 4, 5, 6]);
  assert.match(r.problems[0].reason, /correct_answer "7" is not an option index 0..3/);
  assert.match(r.problems[1].reason, /caption_1 is empty/);
  assert.match(r.problems[2].reason, /correct_answer_template "sideways"/);
  assert.match(r.problems[3].reason, /image_path is empty/);
  const bin = parseNegBenchMcqCsv('image_path,correct_answer,caption_0,caption_1\na.jpg,1,A cat.,No cat.\n', 'bin.csv');
  assert.equal(bin.rows.map((x) => [x.options.length, x.answer, x.template]), [[2, 1, null]]);
  assert.throws(() => parseNegBenchMcqCsv('image,answer\n', 'x.csv'), /x\.csv: no "correct_answer" column/);
});

test('NegBench MCQ CSV: an empty or blank correct_answer is skipped with its line, not scored as option 0; --strict refuses it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'negbench-blank-'));
  try {
    writeFileSync(join(dir, 'a.jpg'), '');
    const csv = [
      'image_path,correct_answer,caption_0,caption_1,caption_2,caption_3,correct_answer_template',
      'a.jpg,,x,y,z,w,negative',
      'a.jpg,   ,x,y,z,w,negative',
      'a.jpg,1,x,y,z,w,positive',
    ].join('\n');
    const r = parseNegBenchMcqCsv(csv, 'blank.csv');
    assert.equal(r.rows.map((x) => [x.line, x.answer]), [[4, 1]]);
    assert.equal(r.problems, [{ line: 2, reason: 'correct_answer is empty' }, { line: 3, reason: 'correct_answer is empty' }]);
    const file = join(dir, 'blank_mcq.csv');
    writeFileSync(file, csv);
    const lenient = readBenchmarkFiles({ negbenchMcq: file }, false);
    assert.is(lenient.mcq!.length, 1);
    assert.equal(lenient.skipped.map((x) => `${x.line}: ${x.reason}`), ['2: correct_answer is empty', '3: correct_answer is empty']);
    assert.throws(() => readBenchmarkFiles({ negbenchMcq: file }, true), /--strict: 2 row\(s\) cannot be used: \S+blank_mcq\.csv:2: correct_answer is empty/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NegBench retrieval CSV and NAST MCQ JSON (array and JSON lines)', () => {
  const ret = parseNegBenchRetrievalCsv(`filepath,captions\nimg/a.jpg,"['A dog on grass.', ""It's sunny.""]"\nimg/b.jpg,"__import__('os')"\n`, 'r.csv');
  assert.equal(ret.rows, [{ line: 2, image: 'img/a.jpg', captions: ['A dog on grass.', "It's sunny."] }]);
  assert.equal(ret.problems.map((p) => p.line), [3]);
  assert.match(ret.problems[0].reason, /captions: expected a list/);
  const q = (i: number, answer: unknown) => ({
    image: `x${i}.png`, correct_answer: answer,
    ...Object.fromEntries([1, 2, 3, 4].flatMap((k) => [[`negation_mcq_choice_${k}`, `no ${k}`], [`affirmative_mcq_choice_${k}`, `only ${k}`]])),
  });
  const arr = parseNastMcqJson(JSON.stringify([q(0, 2), q(1, 'choice_4'), q(2, 'only 1'), q(3, 9), { image: 'y.png' }]), 'nast.json');
  assert.equal(arr.rows.map((r) => [r.line, r.negated.answer, r.affirmative.answer]), [[1, 1, 1], [2, 3, 3], [3, 0, 0]]);
  assert.equal(arr.problems.map((p) => p.line), [4, 5]);
  const lines = parseNastMcqJson(`${JSON.stringify(q(0, 1))}\n{oops\n`, 'nast.jsonl');
  assert.equal([lines.rows.length, lines.problems[0].line], [1, 2]);
  assert.match(lines.problems[0].reason, /invalid JSON/);
});

test('export -> read round trip: our MCQs and captions through NegBench\'s formats', () => {
  const mcq: NegBenchMcq = {
    kind: 'negbench-mcq', studyId: 's', image: 'i.png', answer: 3, answerType: 'hybrid', positives: ['a dog'], negative: 'a cat',
    options: ['This image features a cat.', 'This image does not feature a dog.', 'This image features a cat, but not a dog.', 'This image features a dog, but not a cat.'],
    optionTypes: ['false-affirmation', 'false-negation', 'false-hybrid', 'hybrid'],
  };
  const back = parseNegBenchMcqCsv(negBenchMcqCsv([mcq], (p) => `/abs/${p}`), 'mcq.csv');
  assert.equal(back.problems, []);
  assert.equal(back.rows[0], { line: 2, image: '/abs/i.png', options: mcq.options, answer: 3, template: 'hybrid' });
  const caps = [{ image: 'a.png', caption: "It's a dog." }, { image: 'a.png', caption: 'No "cat", here.' }, { image: 'b.png', caption: 'x' }];
  const r = parseNegBenchRetrievalCsv(negBenchRetrievalCsv(caps, (p) => p), 'r.csv');
  assert.equal(r.rows.map((x) => [x.image, x.captions]), [['a.png', ["It's a dog.", 'No "cat", here.']], ['b.png', ['x']]]);
});

test('eval.js on exported NegBench files equals eval.js on the built split; missing images reported by line; --strict fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'negbench-cli-'));
  try {
    const data = join(dir, 'data');
    execFileSync('node', [CLI('data'), 'build', '--from', 'world', '--world-count', '80', '--out', data], { stdio: 'ignore' });
    execFileSync('node', [CLI('data'), 'export', '--data', data, '--split', 'test', '--out', join(dir, 'nb')], { stdio: 'ignore' });
    const mcqCsv = join(dir, 'nb', 'mcq.csv');
    // One row pointing at an image that is not there.
    const lines = readFileSync(mcqCsv, 'utf8').trimEnd().split('\n');
    lines.push(lines[1].replace(/^[^,]+/, join(dir, 'missing.png')));
    writeFileSync(mcqCsv, `${lines.join('\n')}\n`);
    const report = join(dir, 'out', 'report.json');
    execFileSync('node', [CLI('eval'), '--model', MODEL, '--negbench-mcq', mcqCsv, '--negbench-retrieval', join(dir, 'nb', 'retrieval.csv'), '--benchmark-name', 'world', '--out', report], { stdio: 'ignore' });
    execFileSync('node', [CLI('eval'), '--model', MODEL, '--data', data, '--split', 'test', '--out', join(dir, 'data-report.json')], { stdio: 'ignore' });
    const bench = JSON.parse(readFileSync(report, 'utf8'));
    const ours = JSON.parse(readFileSync(join(dir, 'data-report.json'), 'utf8')).models[0].report;
    assert.is(bench.negbench.mcq.n, lines.length - 2, 'every exported MCQ, not the broken row');
    assert.is(bench.negbench.mcq.accuracy, ours.mcq.overall.accuracy);
    assert.is(bench.negbench.mcq.by_template.negative.accuracy, ours.mcq.byType.negation.accuracy);
    assert.is(bench.negbench.retrieval.text_to_image_r1, ours.retrieval.affirmative.r1, 'affirmative captions: the same R@1');
    assert.equal(bench.skipped_rows.map((s: { line: number }) => s.line), [lines.length]);
    assert.match(bench.skipped_rows[0].reason, /image not found/);
    assert.is(bench.negbench.mcq.predictions.length, bench.negbench.mcq.n);
    const jsonl = JSON.parse(readFileSync(join(dir, 'out', 'results.jsonl'), 'utf8').trim());
    for (const k of ['world-mcq-total_accuracy', 'world-mcq-negative_accuracy', 'world-image_retrieval_recall@5', 'world-text_retrieval_recall@1']) assert.ok(k in jsonl, k);
    // A second evaluation into the folder appends its line, as NegBench does, and says so.
    const again = spawnSync('node', [CLI('eval'), '--model', MODEL, '--negbench-mcq', mcqCsv, '--benchmark-name', 'again', '--out', join(dir, 'out', 'again.json')], { encoding: 'utf8' });
    assert.is(again.status, 0, again.stderr);
    assert.match(again.stderr, /appended to \S+results\.jsonl, which already held results/);
    const both = readFileSync(join(dir, 'out', 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.is(both.length, 2);
    assert.ok('world-mcq-total_accuracy' in both[0] && 'again-mcq-total_accuracy' in both[1]);
    const strict = spawnSync('node', [CLI('eval'), '--model', MODEL, '--negbench-mcq', mcqCsv, '--strict'], { encoding: 'utf8' });
    assert.is(strict.status, 1);
    assert.match(strict.stderr, new RegExp(`--strict: 1 row\\(s\\) cannot be used: .*mcq\\.csv:${lines.length}: image not found`));
    assert.ok(existsSync(report));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eval.js --nast-mcq scores paired questions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nast-mcq-'));
  try {
    copyFileSync(join(ROOT, 'test', 'fixtures', 'image', 'rgb-37x53.png'), join(dir, 'a.png'));
    const q = { image: 'a.png', correct_answer: 1, ...Object.fromEntries([1, 2, 3, 4].flatMap((k) => [[`negation_mcq_choice_${k}`, k === 1 ? 'there is no red square.' : `there is a red square on the ${k % 2 ? 'left' : 'right'}.`], [`affirmative_mcq_choice_${k}`, `there is a blue circle on the ${k % 2 ? 'left' : 'right'}.`]])) };
    writeFileSync(join(dir, 'nast.json'), JSON.stringify([q, q]));
    const out = execFileSync('node', [CLI('eval'), '--model', MODEL, '--nast-mcq', join(dir, 'nast.json'), '--out', join(dir, 'r.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(out, /### NAST paired MCQ/);
    const r = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    assert.is(r.nast_mcq.n, 2);
    assert.ok(Math.abs(r.nast_mcq.gap - (r.nast_mcq.affirmative.accuracy - r.nast_mcq.negated.accuracy)) < 1e-12);
    assert.equal(r.nast_mcq.predictions.map((p: { line: number }) => p.line), [1, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
