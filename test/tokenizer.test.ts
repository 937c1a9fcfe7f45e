import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer, htmlUnescape, parseOpenAIVocab, TokenizerFileError } from '../src/models/tokenizer/index.js';
import { loadTokenizer } from '../src/models/tokenizer/load-node.js';

// Compiled to build/test/, so the repository root is two levels up.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VOCAB_GZ = resolve(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const FIX = join(ROOT, 'test', 'fixtures', 'tokenizer');

interface Case { text: string; ids: number[]; decoded: string; truncated?: number[]; hf_small_ids?: number[] }
interface Fixture {
  hf_small: { merges: number; sot: number; eot: number; vocab_size: number };
  unescape: [string, string, string][];
  decode_bytes: { ids: number[]; decoded: string }[];
  cases: Case[];
}
const fixture: Fixture = JSON.parse(readFileSync(join(FIX, 'cases.json'), 'utf8'));

let gzBytes: Uint8Array | undefined;
function vocabBytes(): Uint8Array {
  if (!existsSync(VOCAB_GZ)) {
    // Not a skip: the repository ships the file, so a missing one is a broken checkout.
    throw new Error(`CLIP vocabulary not found at ${VOCAB_GZ}: the repository ships it in models/openai-bpe/`);
  }
  gzBytes ??= new Uint8Array(readFileSync(VOCAB_GZ));
  return gzBytes;
}
let openai: ClipTokenizer | undefined;
const tok = (): ClipTokenizer => (openai ??= ClipTokenizer.fromOpenAIGzip(vocabBytes(), VOCAB_GZ));

const show = (s: string) => JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);

/** Compares every case and reports the first few mismatches with their texts. */
function compareAll(label: string, cases: Case[], got: (c: Case) => unknown, want: (c: Case) => unknown): void {
  const bad: string[] = [];
  for (const c of cases) {
    const g = JSON.stringify(got(c));
    const w = JSON.stringify(want(c));
    if (g !== w) bad.push(`${show(c.text)}\n    got  ${g}\n    want ${w}`);
  }
  assert.is(bad.length, 0, `${label}: ${bad.length}/${cases.length} cases differ from the Python reference:\n  ${bad.slice(0, 5).join('\n  ')}`);
}

function row(ids: number[], sot: number, eot: number, n = 77): number[] {
  const r = [sot, ...ids, eot];
  while (r.length < n) r.push(0);
  return r;
}

test('known ids from OpenAI CLIP', () => {
  const t = tok();
  const known: [string, number[]][] = [
    ['a photo of a cat', [49406, 320, 1125, 539, 320, 2368, 49407]],
    ['There is no pneumothorax.', [49406, 997, 533, 871, 28714, 617, 4130, 9203, 269, 49407]],
    ['This image features a dog, but not a cat.', [49406, 589, 2867, 4643, 320, 1929, 267, 767, 783, 320, 2368, 269, 49407]],
    // Special-token markers in the text are the special tokens, as in OpenAI's and Hugging Face's tokenizers.
    ['<|startoftext|>special<|endoftext|> tokens in text', [49406, 49406, 1689, 49407, 23562, 530, 4160, 49407]],
  ];
  const out = t.tokenize(known.map(([s]) => s));
  assert.is(out.length, known.length * 77);
  known.forEach(([text, ids], i) => {
    const r = Array.from(out.subarray(i * 77, (i + 1) * 77));
    assert.equal(r, row(ids.slice(1, -1), 49406, 49407), text);
    assert.equal(t.encode(text), ids.slice(1, -1), text);
  });
});

test('OpenAI vocabulary layout', () => {
  const t = tok();
  assert.is(t.vocabSize, 49408);
  assert.is(t.sotId, 49406);
  assert.is(t.eotId, 49407);
  const v = parseOpenAIVocab(vocabBytes());
  assert.is(v.merges.length, 48894);
  // First 256 ids follow bytes_to_unicode's insertion order: printable bytes first.
  assert.is(v.encoder.get('!'), 0);
  assert.is(v.encoder.get('!</w>'), 256);
  assert.is(v.encoder.get('Ā'), 188); // byte 0x00, the first non-printable
  assert.is(v.encoder.get(v.merges[0][0] + v.merges[0][1]), 512);
});

test(`encode matches the Python reference on ${fixture.cases.length} cases`, () => {
  const t = tok();
  compareAll('encode', fixture.cases, (c) => t.encode(c.text), (c) => c.ids);
  // The generated set must actually exercise the hard parts.
  const texts = fixture.cases.map((c) => c.text);
  const needles = [/&amp;amp;/, /’/, /\u3000/, /\u200d/, /\t/, /\x85/, /\p{Script=Han}/u, /\p{Script=Hangul}/u,
    /\p{Extended_Pictographic}/u, /\p{Script=Devanagari}/u, /\p{Script=Arabic}/u, /[\u0300-\u036f]/, /\d/];
  for (const needle of needles) assert.ok(texts.some((s) => needle.test(s)), `cases include ${needle}`);
  assert.ok(fixture.cases.length >= 300);
  assert.ok(fixture.cases.some((c) => c.text === '' && c.ids.length === 0));
});

test('decode matches the Python reference', () => {
  const t = tok();
  compareAll('decode', fixture.cases, (c) => t.decode(c.ids), (c) => c.decoded);
  for (const { ids, decoded } of fixture.decode_bytes) assert.is(t.decode(ids), decoded, `decode ${ids}`);
  assert.is(t.decode([49406, 320, 2368, 49407]), '<|startoftext|>a cat <|endoftext|>');
  assert.throws(() => t.decode([49408]), /49408 is not in the vocabulary/);
  assert.throws(() => t.decode([-1]), /-1 is not in the vocabulary/);
});

test('rows: padding, too-long errors and truncation match clip.tokenize', () => {
  const t = tok();
  const short = fixture.cases.filter((c) => c.ids.length <= 75);
  const long = fixture.cases.filter((c) => c.ids.length > 75);
  assert.ok(long.length >= 10 && short.length >= 100);
  const batch = t.tokenize(short.map((c) => c.text));
  assert.is(batch.length, short.length * 77);
  compareAll('row', short, (c) => Array.from(batch.subarray(short.indexOf(c) * 77, (short.indexOf(c) + 1) * 77)), (c) => row(c.ids, 49406, 49407));
  const cut = t.tokenize(long.map((c) => c.text), { truncate: true });
  compareAll('truncated row', long, (c) => Array.from(cut.subarray(long.indexOf(c) * 77, (long.indexOf(c) + 1) * 77)), (c) => c.truncated);
  for (const c of long.slice(0, 20)) {
    const first60 = Array.from(c.text).slice(0, 60).join('');
    try {
      t.tokenize(['ok', c.text]);
      assert.unreachable(`no error for ${show(c.text)}`);
    } catch (e) {
      const msg = (e as Error).message;
      assert.ok(msg.includes(JSON.stringify(first60).slice(1, -1)), `message names the text: ${msg}`);
      assert.ok(msg.includes(`${c.ids.length + 2} tokens`), `message gives the count: ${msg}`);
      assert.ok(!msg.includes(JSON.stringify(Array.from(c.text).slice(0, 61).join('')).slice(1, -1)) || Array.from(c.text).length <= 60);
    }
  }
  // Exactly at the boundary: 75 tokens fit without truncation, 76 do not.
  const cats = (n: number) => Array(n).fill('cat').join(' ');
  assert.is(t.tokenize([cats(75)])[76], 49407);
  assert.throws(() => t.tokenize([cats(76)]), /77 tokens|78 tokens/);
});

test('contextLength option', () => {
  const t = tok();
  const ids = t.encode('a photo of a cat');
  assert.equal(Array.from(t.tokenize(['a photo of a cat'], { contextLength: 8 })), [49406, ...ids, 49407, 0]);
  assert.equal(Array.from(t.tokenize(['a photo of a cat'], { contextLength: 4, truncate: true })), [49406, ids[0], ids[1], 49407]);
  assert.equal(Array.from(t.tokenize(['a photo of a cat'], { contextLength: 2, truncate: true })), [49406, 49407]);
  assert.equal(Array.from(t.tokenize([], {})), []);
  assert.equal(Array.from(t.tokenize([''], { contextLength: 3 })), [49406, 49407, 0]);
  assert.throws(() => t.tokenize(['x'], { contextLength: 1 }), /contextLength/);
  assert.throws(() => t.tokenize(['x'], { contextLength: 7.5 }), /contextLength/);
  assert.throws(() => t.tokenize(['a photo of a cat'], { contextLength: 4 }), /7 tokens.*context length 4/);
});

test('HTML unescape matches Python html.unescape (once and twice)', () => {
  const bad: string[] = [];
  for (const [s, once, twice] of fixture.unescape) {
    const o = htmlUnescape(s);
    const tw = htmlUnescape(o);
    if (o !== once || tw !== twice) bad.push(`${JSON.stringify(s)}: got ${JSON.stringify([o, tw])} want ${JSON.stringify([once, twice])}`);
  }
  assert.is(bad.length, 0, bad.join('\n'));
  assert.is(htmlUnescape('&constructor; &__proto__; &toString'), '&constructor; &__proto__; &toString');
});

test('Hugging Face vocab.json + merges.txt (small fixture) match the reference', () => {
  const dir = join(FIX, 'hf-small');
  const t = ClipTokenizer.fromHF(readFileSync(join(dir, 'vocab.json'), 'utf8'), readFileSync(join(dir, 'merges.txt'), 'utf8'));
  assert.is(t.sotId, fixture.hf_small.sot);
  assert.is(t.eotId, fixture.hf_small.eot);
  assert.is(t.vocabSize, fixture.hf_small.vocab_size);
  const cases = fixture.cases.filter((c) => c.hf_small_ids);
  assert.ok(cases.length > 100);
  compareAll('hf-small encode', cases, (c) => t.encode(c.text), (c) => c.hf_small_ids);
  const viaLoader = loadTokenizer(dir);
  assert.equal(viaLoader.encode('a photo of a cat'), t.encode('a photo of a cat'));
});

/** The OpenAI vocabulary rewritten as Hugging Face files: the same ids must come out. */
function hfFilesFromOpenAI(): { vocabJson: string; mergesTxt: string; tokenizerJson: (pairs: boolean) => string } {
  const v = parseOpenAIVocab(vocabBytes());
  const vocab = Object.fromEntries(v.encoder);
  return {
    vocabJson: JSON.stringify(vocab),
    mergesTxt: '#version: 0.2\r\n' + v.merges.map(([a, b]) => `${a} ${b}\r\n`).join(''),
    tokenizerJson: (pairs) => JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab, merges: v.merges.map(([a, b]) => (pairs ? [a, b] : `${a} ${b}`)) } }),
  };
}

test('full vocabulary through the Hugging Face formats gives identical ids', () => {
  const files = hfFilesFromOpenAI();
  const fromHF = ClipTokenizer.fromHF(files.vocabJson, files.mergesTxt);
  assert.is(fromHF.vocabSize, 49408);
  compareAll('fromHF encode', fixture.cases, (c) => fromHF.encode(c.text), (c) => c.ids);
  for (const pairs of [false, true]) {
    const fromJson = ClipTokenizer.fromHFTokenizerJson(files.tokenizerJson(pairs));
    compareAll(`tokenizer.json (${pairs ? 'pair' : 'string'} merges) encode`, fixture.cases.slice(0, 200), (c) => fromJson.encode(c.text), (c) => c.ids);
  }
});

test('loadTokenizer finds files in folders and at paths, and says what it looked for', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tok-'));
  try {
    const cat = [49406, 320, 1125, 539, 320, 2368, 49407];
    const viaFile = loadTokenizer(VOCAB_GZ);
    assert.equal(Array.from(viaFile.tokenize(['a photo of a cat']).subarray(0, 7)), cat);
    // A model folder that carries the OpenAI file (linked, never copied into the repository).
    const openaiDir = join(tmp, 'openai');
    mkdirSync(openaiDir);
    symlinkSync(VOCAB_GZ, join(openaiDir, 'bpe_simple_vocab_16e6.txt.gz'));
    assert.equal(loadTokenizer(openaiDir).encode('a photo of a cat'), cat.slice(1, -1));
    // diffusers layout: tokenizer/ subfolder, and the files addressed one by one.
    const files = hfFilesFromOpenAI();
    const sub = join(tmp, 'pipe', 'tokenizer');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'vocab.json'), files.vocabJson);
    writeFileSync(join(sub, 'merges.txt'), files.mergesTxt);
    assert.equal(loadTokenizer(join(tmp, 'pipe')).encode('a photo of a cat'), cat.slice(1, -1));
    assert.equal(loadTokenizer(join(sub, 'vocab.json')).encode('a photo of a cat'), cat.slice(1, -1));
    assert.equal(loadTokenizer(join(sub, 'merges.txt')).encode('a photo of a cat'), cat.slice(1, -1));
    const tj = join(tmp, 'fast');
    mkdirSync(tj);
    writeFileSync(join(tj, 'tokenizer.json'), files.tokenizerJson(true));
    assert.equal(loadTokenizer(tj).encode('a photo of a cat'), cat.slice(1, -1));

    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    assert.throws(() => loadTokenizer(empty), (e: Error) =>
      e instanceof TokenizerFileError && e.message.includes('vocab.json + merges.txt') && e.message.includes('tokenizer.json') &&
      e.message.includes('bpe_simple_vocab_16e6.txt.gz') && e.message.includes(join(empty, 'tokenizer')));
    assert.throws(() => loadTokenizer(join(tmp, 'nope')), /no such file or folder/);
    const lonely = join(tmp, 'lonely');
    mkdirSync(lonely);
    copyFileSync(join(FIX, 'hf-small', 'vocab.json'), join(lonely, 'vocab.json'));
    assert.throws(() => loadTokenizer(join(lonely, 'vocab.json')), /needs merges\.txt beside it/);
    writeFileSync(join(lonely, 'weights.bin'), 'x');
    assert.throws(() => loadTokenizer(join(lonely, 'weights.bin')), /unrecognised tokenizer file/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('bad tokenizer files fail at load with the file named', () => {
  const dir = join(FIX, 'hf-small');
  const vocab = readFileSync(join(dir, 'vocab.json'), 'utf8');
  const merges = readFileSync(join(dir, 'merges.txt'), 'utf8');
  assert.throws(() => ClipTokenizer.fromHF('{', merges, 'm/'), /m\/ \(vocab\.json\): invalid JSON/);
  assert.throws(() => ClipTokenizer.fromHF('[1,2]', merges, 'm/'), /expected a JSON object/);
  assert.throws(() => ClipTokenizer.fromHF('{"a": "x"}', merges, 'm/'), /token "a" has id "x"/);
  assert.throws(() => ClipTokenizer.fromHF(vocab, merges + 'a b c\n', 'm/'), /merges\.txt\): line 3002 is not a merge/);
  const noEot = JSON.parse(vocab);
  delete noEot['<|endoftext|>'];
  assert.throws(() => ClipTokenizer.fromHF(JSON.stringify(noEot), merges, 'm/'), /m\/: vocabulary has no token "<\|endoftext\|>"/);
  const noMerge = JSON.parse(vocab);
  delete noMerge['in'];
  assert.throws(() => ClipTokenizer.fromHF(JSON.stringify(noMerge), merges, 'm/'), /vocabulary has no token "in"/);
  assert.throws(() => ClipTokenizer.fromOpenAIGzip(new Uint8Array([1, 2, 3]), 'x.gz'), /x\.gz: not a gzipped UTF-8 BPE merges file/);
  assert.throws(() => ClipTokenizer.fromHFTokenizerJson('{"model": {"type": "WordPiece", "vocab": {}, "merges": []}}', 't.json'), /t\.json: model\.type is "WordPiece"/);
});

test('cache and repeated use stay exact', () => {
  const t = ClipTokenizer.fromOpenAIGzip(vocabBytes());
  const texts = fixture.cases.slice(0, 100).map((c) => c.text);
  const first = texts.map((s) => t.encode(s));
  const second = texts.map((s) => t.encode(s));
  assert.equal(second, first);
  assert.equal(first, fixture.cases.slice(0, 100).map((c) => c.ids));
});

test.run();
