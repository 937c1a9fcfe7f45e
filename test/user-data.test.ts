import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { guessSourceFormat, sourceFormatOf } from '../src/data/ingest-text.js';
import { ingestCadJson } from '../src/data/ingest-cad.js';
import { ingestChexpertCsv } from '../src/data/ingest-chexpert.js';
import { ingestJsonl } from '../src/data/ingest-jsonl.js';
import { matchImages, readUserData, templateLines } from '../src/data/user-data.js';
import type { Study } from '../src/data/facts.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixture = (name: string) => readFileSync(join(ROOT, 'test', 'fixtures', 'data', name), 'utf8');

function throwsMatching(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`no error matching ${re}`);
}

test('formats: by the file name as data.js, by the content when typed', () => {
  assert.is(sourceFormatOf('labels.CSV'), 'chexpert');
  assert.is(sourceFormatOf('dir.v2/cad.json'), 'cad');
  assert.is(sourceFormatOf('a.jsonl'), 'jsonl');
  assert.is(sourceFormatOf('a.ndjson'), 'jsonl');
  assert.is(sourceFormatOf('notes.txt'), null);
  assert.is(sourceFormatOf('folder.csv/file'), null);
  assert.is(guessSourceFormat('\n  {"image": "a.png", "caption": "x"}\n{"image": "b.png"}'), 'jsonl');
  assert.is(guessSourceFormat('\uFEFFPath,No Finding\n'), 'chexpert');
  assert.is(guessSourceFormat('[{"id": 1}]'), 'cad');
  assert.is(guessSourceFormat('{\n  "studies": []\n}'), 'cad');
});

test('readUserData: each format gives what data.js ingests from it, and the builders\' settings of that source', () => {
  const jsonl = fixture('captions.jsonl');
  for (const [text, name] of [[jsonl, 'photos.jsonl'], [jsonl, null]] as const) {
    const got = readUserData(text, name);
    assert.is(got.format, 'jsonl');
    assert.is(got.name, name ?? 'typed JSONL');
    assert.equal(got.studies, ingestJsonl(jsonl).studies);
    assert.ok(got.domain.article, 'everyday captions take articles');
  }
  const csv = fixture('chexpert-small.csv');
  for (const name of ['labels.csv', null]) {
    const got = readUserData(csv, name);
    assert.is(got.format, 'chexpert');
    assert.equal(got.studies, ingestChexpertCsv(csv, { file: got.name }).studies);
    assert.not.ok(got.domain.article, 'radiology sentences take none');
  }
  const cad = readUserData(fixture('cad-small.json'), 'cad.json');
  assert.is(cad.format, 'cad');
  assert.equal(cad.studies, ingestCadJson(fixture('cad-small.json'), { file: 'cad.json' }).studies);
  assert.ok(cad.studies.length > 0);
  throwsMatching(() => readUserData(jsonl, 'notes.txt'), /notes\.txt: cannot tell the format from its name/);
  throwsMatching(() => readUserData('  \n', null), /the text box is empty/);
  throwsMatching(() => readUserData('{"image": "a.png", "caption": ""}', null), /typed JSONL: no usable line \(line 1: "caption"\[0\] must be a non-empty string\)/);
});

const study = (image: string): Study => ({ id: image, patient: image, image, facts: [{ condition: 'cat', existence: 'present' }] });
const pick = (...paths: string[]) => paths.map((path) => ({ path, file: path }));

test('matchImages: by path tails, so a folder pick tells same-named images apart; ties, doubles and misses are named', () => {
  // Picked alone, a file matches by its name.
  assert.equal(matchImages([study('imgs/cat.png'), study('dog.png')], pick('cat.png', 'dog.png'), 'd'), ['cat.png', 'dog.png']);
  // CheXpert's view1_frontal.jpg in every study folder: the folder pick's paths decide.
  const studies = ['CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg', 'CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg'].map(study);
  const folder = pick('train/patient00002/study1/view1_frontal.jpg', 'train/patient00001/study1/view1_frontal.jpg');
  assert.equal(matchImages(studies, folder, 'd'), [folder[1].file, folder[0].file]);
  // The same picked alone: one file would stand for two images.
  throwsMatching(() => matchImages(studies, pick('view1_frontal.jpg'), 'labels.csv'), /labels\.csv: .*patient00001.* and .*patient00002.*both match the picked image view1_frontal\.jpg/);
  // Two picked files equally good for one image.
  throwsMatching(() => matchImages([study('cat.png')], pick('a/cat.png', 'b/cat.png'), 'd'), /d: cat\.png matches 2 picked images \(a\/cat\.png, b\/cat\.png\)/);
  // a/x.png is not b/x.png; backslashes and ./ are paths too.
  throwsMatching(() => matchImages([study('a/x.png'), study('y.png')], pick('b/x.png', 'y.png'), 'd'), /d: 1 image not among the picked images: a\/x\.png/);
  assert.equal(matchImages([study('.\\sub\\x.png')], pick('photos/sub/x.png'), 'd'), ['photos/sub/x.png']);
});

test('templateLines: a line per picked image not yet named, refused until it is filled in', () => {
  const typed = '{"image": "photos/a.png", "caption": "A cat."}';
  const out = templateLines(typed, pick('photos/a.png', 'photos/b.png'));
  assert.equal(out.split('\n').map((l) => JSON.parse(l).image), ['photos/b.png']);
  assert.is(templateLines(`${typed}\n${out}`, pick('photos/a.png', 'photos/b.png')), '');
  // An unfilled line trains on nothing: the ingester skips it, saying why.
  const { studies, skipped } = ingestJsonl(out);
  assert.is(studies.length, 0);
  assert.match(skipped[0].reason, /caption/);
});

test.run();
