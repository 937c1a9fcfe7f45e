import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { runNode } from './helpers/cli-node.js';
import { openDatasetSplit, type DatasetManifest } from '../src/data/dataset-node.js';
import { ingestChexpertCsv, patientFromPath } from '../src/data/ingest-chexpert.js';
import { hasNegationCue } from '../src/data/templates.js';
import { generateWorld, renderScene } from '../src/data/world/index.js';
import type { EvalRecord } from '../src/data/records.js';
import type { SplitName } from '../src/data/splits.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'data.js');
const FIX = join(ROOT, 'test', 'fixtures', 'data-cli');
const IMAGES = join(FIX, 'images');
const TMP = mkdtempSync(join(tmpdir(), 'data-cli-'));

const run = (args: string[]) => runNode(CLI, args);

async function build(name: string, args: string[]): Promise<{ out: string; stdout: string; manifest: DatasetManifest & Record<string, any> }> {
  const out = join(TMP, name);
  const r = await run(['build', ...args, '--out', out]);
  assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return { out, stdout: r.stdout, manifest: JSON.parse(readFileSync(join(out, 'dataset.json'), 'utf8')) };
}

async function readSplits(out: string, manifest: DatasetManifest): Promise<Map<SplitName, EvalRecord[]>> {
  const got = new Map<SplitName, EvalRecord[]>();
  for (const split of Object.keys(manifest.splits) as SplitName[]) {
    const ds = await openDatasetSplit(out, split);
    const records = await ds.readRecords();
    const byKind: Record<string, number> = {};
    for (const r of records) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
    assert.equal(byKind, manifest.splits[split]!.byKind, `${split}: records read back match the summary's counts`);
    assert.is(records.length, manifest.splits[split]!.records);
    for (const r of records) assert.ok(existsSync(ds.resolveImage(r.image)), `${split}: ${r.image} resolves to a file`);
    // probe.jsonl: the trace CLI's input, image paths relative to its own folder.
    const probeFile = join(ds.dir, 'probe.jsonl');
    if (existsSync(probeFile)) {
      const lines = readFileSync(probeFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>);
      assert.is(lines.length, byKind['probe-pair'] ?? 0, `${split}: one probe.jsonl line per probe pair`);
      for (const l of lines) {
        assert.equal(Object.keys(l).sort(), ['caption', 'foil', 'image']);
        assert.ok(existsSync(resolve(dirname(probeFile), l.image)), l.image);
      }
    }
    got.set(split, records);
  }
  return got;
}

/**
 * Claim sets around present and absent facts: the summary's affirmative/negated counts are
 * those of the records, split as the evaluation splits them (a negation cue in the true claim).
 */
function assertClaimPolarity(manifest: Record<string, any>, records: EvalRecord[]): void {
  const sets = records.filter((r) => r.kind === 'claim-set');
  const negated = sets.filter((r) => hasNegationCue(r.claims[r.answer]!.text));
  for (const r of sets) assert.is(hasNegationCue(r.claims[r.answer]!.text), r.claims[r.answer]!.fact.existence === 'absent', r.claims[r.answer]!.text);
  assert.ok(negated.length > 0 && negated.length < sets.length, `${negated.length} of ${sets.length} claim sets negated`);
  assert.equal(manifest.summary.negationTypes.claimSets, { affirmative: sets.length - negated.length, negated: negated.length });
}

test('CheXpert CSV: splits per patient, records read back, summary counts and skipped rows with their row numbers', async () => {
  const { out, stdout, manifest } = await build('chexpert', ['--from', join(FIX, 'chexpert.csv'), '--images', IMAGES, '--seed', '3']);
  // Rows 6 (bad label), 8 (no path) and 14 (short row) are skipped; patient00010's image does not exist.
  assert.equal(manifest.skipped.rows.map((s: { row: number }) => s.row), [6, 8, 14]);
  assert.match(stdout, /row 6: column "Edema": label "2" is not 1, 0, -1 or blank/);
  assert.match(stdout, /row 8: missing path/);
  assert.match(stdout, /row 14: expected 19 fields, found 3/);
  assert.is(manifest.skipped.missingImages.length, 1);
  assert.match(stdout, /patient00010\/study1\/view1_frontal\.png: image not found/);
  assert.is(manifest.studies, 10);
  assert.is(manifest.patients, 9);

  const splits = await readSplits(out, manifest);
  assert.equal([...splits.keys()], ['train', 'validation', 'test']);
  // No patient in two splits.
  const owner = new Map<string, string>();
  for (const [split, records] of splits) {
    for (const r of records) {
      const p = patientFromPath(r.studyId)!;
      assert.ok(p, r.studyId);
      assert.ok(!owner.has(p) || owner.get(p) === split, `${p} is in ${owner.get(p)} and ${split}`);
      owner.set(p, split);
    }
  }
  // Condition counts: the present/absent facts of the kept studies, counted independently.
  const ingest = ingestChexpertCsv(readFileSync(join(FIX, 'chexpert.csv'), 'utf8'));
  const expected: Record<string, { present: number; absent: number }> = {};
  for (const s of ingest.studies) {
    if (!existsSync(join(IMAGES, s.image))) continue;
    for (const f of s.facts) {
      const e = expected[f.condition] ??= { present: 0, absent: 0 };
      e[f.existence]++;
    }
  }
  const conditions = manifest.summary.conditions as Record<string, { present: number; absent: number; claimSets: number; probePairs: number }>;
  assert.equal(Object.fromEntries(Object.entries(conditions).map(([c, v]) => [c, { present: v.present, absent: v.absent }])), expected);
  const all = [...splits.values()].flat();
  assert.is(Object.values(conditions).reduce((a, v) => a + v.claimSets, 0), all.filter((r) => r.kind === 'claim-set').length);
  assert.is(Object.values(conditions).reduce((a, v) => a + v.probePairs, 0), all.filter((r) => r.kind === 'probe-pair').length);
  assertClaimPolarity(manifest, all);
  for (const r of all) {
    if (r.kind !== 'claim-set') continue;
    assert.is(r.claims.length, 5);
    assert.is(r.claims.filter((c) => c.origin === 'true').length, 1);
    assert.is(r.claims[r.answer]!.origin, 'true');
  }
  // The printed table carries the same per-split counts.
  const trainRow = stdout.split('\n').find((l) => l.startsWith('| train |'))!;
  assert.ok(trainRow.includes(`| ${manifest.splits.train!.records} |`), trainRow);
});

test('CAD-Chest JSON: chosen kinds only, claim-set size, severe-only affirmative probes, skipped records', async () => {
  const { out, manifest, stdout } = await build('cad', ['--from', join(FIX, 'cad.json'), '--images', IMAGES, '--kind', 'claims,probe', '--k', '4']);
  assert.equal(manifest.kinds, ['claims', 'probe']);
  assert.equal(manifest.skipped.rows.map((s: { row: number }) => s.row), [4, 5]);
  assert.match(stdout, /row 4: record "s4": entity "atelectasis": probability_score "high"/);
  assert.match(stdout, /row 5: record "s5": no image/);
  const records = [...(await readSplits(out, manifest)).values()].flat();
  assert.ok(records.length > 0);
  assert.ok(records.every((r) => r.kind === 'claim-set' || r.kind === 'probe-pair'));
  const severe = new Set(['edema', 'consolidation', 'pneumonia']); // the fixture's present findings with level "severe"
  for (const r of records) {
    if (r.kind === 'claim-set') assert.is(r.claims.length, 4);
    if (r.kind === 'probe-pair' && r.polarity === 'affirmative') assert.ok(severe.has(r.condition), r.condition);
  }
  assert.ok(records.some((r) => r.kind === 'probe-pair' && r.polarity === 'affirmative'));
});

test('JSONL: one split only, Retrieval-Neg captions, paired MCQs reported as skipped without alternatives', async () => {
  const { out, manifest, stdout } = await build('jsonl', ['--from', join(FIX, 'pairs.jsonl'), '--images', IMAGES, '--split', 'test', '--fractions', '0.5,0,0.5']);
  assert.equal(Object.keys(manifest.splits), ['test']);
  assert.not.ok(existsSync(join(out, 'train')));
  assert.equal(manifest.skipped.rows.map((s: { row: number }) => s.row), [5, 6]);
  assert.match(stdout, /row 5: not valid JSON/);
  assert.match(stdout, /paired MCQ option patterns: skipped: no affirmative alternatives/);
  const records = (await readSplits(out, manifest)).get('test')!;
  assert.ok(records.some((r) => r.kind === 'retrieval-neg-caption'));
  for (const r of records) if (r.kind === 'caption') assert.not.ok(hasNegationCue(r.caption), r.caption);
  assert.is(records.filter((r) => r.kind === 'paired-mcq').length, 0);
});

test('world: rendered PNGs match the world, every builder runs, same seed = same folder', async () => {
  const args = ['--from', 'world', '--world-count', '24', '--world-size', '32', '--seed', '5'];
  const [a, b] = await Promise.all([build('world-a', args), build('world-b', args)]);
  // Everything but the build id, which tells builds apart.
  assert.is.not(a.manifest.buildId, b.manifest.buildId);
  assert.equal({ ...a.manifest, buildId: '' }, { ...b.manifest, buildId: '' }, 'deterministic summary');
  for (const split of ['train', 'validation', 'test']) {
    const ia = JSON.parse(readFileSync(join(a.out, split, 'index.json'), 'utf8'));
    const ib = JSON.parse(readFileSync(join(b.out, split, 'index.json'), 'utf8'));
    assert.equal(ia.shards, ib.shards, `${split}: identical shards`);
  }
  const world = generateWorld({ seed: 5, count: 24, size: 32, render: false });
  assert.is(readdirSync(join(a.out, 'images')).length, 24);
  for (const k of [0, 11, 23]) {
    const png = PNG.sync.read(readFileSync(join(a.out, 'images', `${world[k]!.id}.png`)));
    const want = renderScene(world[k]!.scene);
    const rgb = new Uint8Array(32 * 32 * 3);
    for (let p = 0; p < 32 * 32; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = png.data[4 * p + c]!;
    assert.equal(rgb, want.data, `image ${k} is the world's render`);
  }
  const records = [...(await readSplits(a.out, a.manifest)).values()].flat();
  const kinds = new Set(records.map((r) => r.kind));
  for (const k of ['caption', 'negated-caption', 'retrieval-neg-caption', 'claim-set', 'negbench-mcq', 'paired-mcq', 'probe-pair']) assert.ok(kinds.has(k as never), k);
  for (const r of records) {
    if (r.kind !== 'paired-mcq') continue;
    assert.is(r.negated.answer, r.affirmative.answer);
    for (const o of r.affirmative.options) assert.not.ok(hasNegationCue(o), o);
  }
  assertClaimPolarity(a.manifest, records);
  const conditions = a.manifest.summary.conditions as Record<string, { present: number; absent: number }>;
  const present = world.flatMap((r) => r.facts.filter((f) => f.existence === 'present'));
  assert.is(Object.values(conditions).reduce((s, v) => s + v.present, 0), present.length, 'present facts of all 24 images');
  for (const f of present) assert.ok(conditions[f.condition]!.present > 0, f.condition);
});

test('bad input: one clear line and the exit code (2 usage, 1 data)', async () => {
  const badCsv = join(TMP, 'bad.csv');
  writeFileSync(badCsv, 'Path,Cardiomegaly\npatient00001/study1/view1_frontal.png,1\n');
  const allBad = join(TMP, 'all-bad.jsonl');
  writeFileSync(allBad, '{nope\n{"captions": ["x"]}\n');
  // Image paths that leave the images folder are rejected (not opened later by eval.js).
  const outside = join(TMP, 'outside.jsonl');
  writeFileSync(outside, `${JSON.stringify({ image: '../../../../etc/hostname', caption: 'A dog.' })}\n${JSON.stringify({ image: '/etc/hostname', caption: 'A cat.' })}\n`);
  const mostly = join(TMP, 'mostly-missing.jsonl');
  writeFileSync(mostly, `{nope\n${JSON.stringify({ image: 'a/missing1.png', caption: 'A dog.' })}\n${JSON.stringify({ image: 'b/missing2.png', caption: 'A cat.' })}\n`);
  const out = join(TMP, 'never');
  const cases: [string[], RegExp, number][] = [
    [['build', '--from', mostly, '--images', IMAGES, '--out', out], /no usable studies \(3 skipped; first: row 1: not valid JSON.*; most often \(2x\): \S+: image not found: \S+missing1\.png\)/, 1],
    [['build', '--from', outside, '--images', IMAGES, '--out', out], /outside\.jsonl: no usable studies \(2 skipped; first: \S+: image path "\.\.\/\.\.\/\.\.\/\.\.\/etc\/hostname" lies outside .*--allow-outside accepts it/, 1],
    [[], /--from is required/, 2],
    [['frobnicate'], /unknown command "frobnicate"/, 2],
    [['build', '--from', 'world'], /--out is required/, 2],
    [['build', '--from', 'world', '--out', out, '--kind', 'bogus'], /--kind: unknown kind "bogus"/, 2],
    [['build', '--from', 'world', '--out', out, '--split', 'dev'], /--split: unknown split "dev"/, 2],
    [['build', '--from', 'world', '--out', out, '--fractions', '0.5,0.5'], /--fractions/, 2],
    // An empty part is a typo, not 0 (Number('') is 0).
    [['build', '--from', 'world', '--out', out, '--fractions', '0.5,,0.5'], /--fractions: expected three non-negative numbers summing to 1 .*got "0\.5,,0\.5"/, 2],
    [['build', '--from', 'world', '--out', out, '--images', FIX], /--images does not apply/, 2],
    [['build', '--from', 'world', '--out', out, '--world-size', '33'], /--world-size 33\): .*size must be an even integer/, 2],
    [['build', '--from', join(FIX, 'notes.txt'), '--out', out], /cannot tell the format/, 2],
    [['build', '--from', join(TMP, 'missing.csv'), '--out', out], /missing\.csv: no such file/, 1],
    [['build', '--from', badCsv, '--out', out], /bad\.csv: missing column "Enlarged Cardiomediastinum"/, 1],
    [['build', '--from', allBad, '--out', out], /all-bad\.jsonl: no usable studies \(2 skipped; first: row 1: not valid JSON/, 1],
  ];
  // Side by side, so each into its own folder: one build of a folder at a time is the rule.
  const outs = cases.map((_, k) => `${out}-${k}`);
  const results = await Promise.all(cases.map(([args], k) => run(args.map((a) => (a === out ? outs[k] : a)))));
  for (const [k, [args, msg, code]] of cases.entries()) {
    const r = results[k]!;
    assert.is(r.status, code, `${args.join(' ')}: exit code (${r.stderr})`);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.is(lines.length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
    assert.match(lines[0]!, /^data: /);
    assert.match(lines[0]!, msg, `${args.join(' ')}: ${r.stderr}`);
  }
  for (const o of outs) assert.not.ok(existsSync(o), `nothing written on bad input: ${o}`);
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
