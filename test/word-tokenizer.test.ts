import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipTokenizer, SOT_TOKEN, EOT_TOKEN, type Tokenizer } from '../src/models/tokenizer/index.js';
import { byteTables } from '../src/models/tokenizer/byte-encoder.js';
import {
  DEFAULT_WORD_CONTEXT, WORD_TOKENIZER_FORMAT, WordTokenizer, WordTokenizerError, splitWords,
} from '../src/models/tokenizer/word.js';
import { generateWorld, worldVocabulary } from '../src/data/world/index.js';

const WORDS = ['there', 'is', 'a', 'no', 'red', 'square', 'on', 'the', 'left', '.', ',', "doesn't", 'well-aerated'];
const tok = new WordTokenizer(WORDS);
const id = (w: string) => WORDS.indexOf(w) + 2;

test('id layout: pad 0, unknown 1, words in order, start then end last', () => {
  assert.is(tok.padId, 0);
  assert.is(tok.unkId, 1);
  assert.is(tok.wordId('there'), 2);
  assert.is(tok.wordId('well-aerated'), WORDS.length + 1);
  assert.is(tok.sotId, WORDS.length + 2);
  assert.is(tok.eotId, WORDS.length + 3);
  assert.is(tok.vocabSize, WORDS.length + 4);
  assert.is(tok.eotId, tok.vocabSize - 1);
  const t: Tokenizer = tok;
  assert.is(t.eotId, tok.eotId);
});

test('splitting: lower case, punctuation apart, inner apostrophes and hyphens kept', () => {
  assert.equal(splitWords("There's NO red-square, on the LEFT."), ["there's", 'no', 'red-square', ',', 'on', 'the', 'left', '.']);
  assert.equal(splitWords('  a\tb\n'), ['a', 'b']);
  assert.equal(splitWords('doesn\u2019t'), ["doesn't"]);
  assert.equal(splitWords('(a)?!'), ['(', 'a', ')', '?', '!']);
  assert.equal(splitWords(''), []);
});

test('encode and decode round trip', () => {
  const text = 'There is no red square, on the left.';
  const ids = tok.encode(text);
  assert.equal(ids, ['there', 'is', 'no', 'red', 'square', ',', 'on', 'the', 'left', '.'].map(id));
  assert.is(tok.decode(ids), 'there is no red square, on the left.');
  assert.equal(tok.encode(tok.decode(ids)), ids);
  assert.is(tok.decode(tok.encode("It doesn't, WELL-AERATED.")), "[unk] doesn't, well-aerated.");
});

test('unknown words map to the unknown id and are listed', () => {
  assert.equal(tok.encode('a blue square'), [id('a'), 1, id('square')]);
  assert.equal(tok.unknownWords('a blue square, a blue circle'), ['blue', 'circle']);
  assert.equal(tok.unknownWords('there is a red square.'), []);
});

test('tokenize: start, ids, end, then zero padding; the end id is each row\'s arg-max', () => {
  const texts = ['there is a red square.', '', 'no'];
  const rows = tok.tokenize(texts, { contextLength: 10 });
  assert.is(rows.length, 30);
  assert.equal(Array.from(rows.subarray(0, 10)), [tok.sotId, ...tok.encode(texts[0]), tok.eotId, 0, 0]);
  assert.equal(Array.from(rows.subarray(10, 20)), [tok.sotId, tok.eotId, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(rows.subarray(20, 30)), [tok.sotId, id('no'), tok.eotId, 0, 0, 0, 0, 0, 0, 0]);
  for (let r = 0; r < 3; r++) {
    const row = Array.from(rows.subarray(r * 10, r * 10 + 10));
    const argmax = row.indexOf(Math.max(...row));
    assert.is(argmax, row.indexOf(tok.eotId), `row ${r}`);
  }
  assert.is(tok.decode(rows.subarray(0, 10), true), 'there is a red square.');
  assert.is(tok.decode(rows.subarray(0, 4)), '[sot] there is a');
});

test('context length: default, constructor option, per-call option', () => {
  assert.is(tok.contextLength, DEFAULT_WORD_CONTEXT);
  assert.is(tok.tokenize(['a']).length, DEFAULT_WORD_CONTEXT);
  const t16 = new WordTokenizer(WORDS, { contextLength: 16 });
  assert.is(t16.tokenize(['a', 'no']).length, 32);
  assert.is(t16.tokenize(['a'], { contextLength: 5 }).length, 5);
  assert.throws(() => tok.tokenize(['a'], { contextLength: 1 }), /contextLength must be an integer >= 2/);
  assert.throws(() => new WordTokenizer(WORDS, { contextLength: 2.5 }), /contextLength must be an integer >= 2/);
});

test('truncation: too long throws unless truncate, which keeps the first ids and ends with the end id', () => {
  const text = 'there is a red square on the left .';
  const ids = tok.encode(text);
  assert.is(ids.length, 9);
  // 9 words + start + end fit exactly in 11.
  assert.equal(Array.from(tok.tokenize([text], { contextLength: 11 })), [tok.sotId, ...ids, tok.eotId]);
  assert.throws(() => tok.tokenize([text], { contextLength: 10 }), /is 11 tokens with \[sot\] and \[eot\], longer than the context length 10 \(embed\.js --truncate, or \{ truncate: true \} in code, cuts it\)/);
  assert.equal(Array.from(tok.tokenize([text], { contextLength: 6, truncate: true })), [tok.sotId, ...ids.slice(0, 4), tok.eotId]);
  assert.equal(Array.from(tok.tokenize(['a'], { contextLength: 2, truncate: true })), [tok.sotId, tok.eotId]);
});

/** A byte-level BPE without merges: each one-letter word is one token, as in the word tokenizer. */
function byteClip(): ClipTokenizer {
  const encoder = new Map<string, number>();
  const { encoder: be } = byteTables();
  for (const c of be) encoder.set(c, encoder.size);
  for (const c of be) encoder.set(c + '</w>', encoder.size);
  encoder.set(SOT_TOKEN, encoder.size);
  encoder.set(EOT_TOKEN, encoder.size);
  return new ClipTokenizer({ encoder, merges: [] });
}

test('row layout and truncation match ClipTokenizer token for token', () => {
  const clip = byteClip();
  const letters = 'abcdefghij'.split('');
  const wt = new WordTokenizer(letters);
  for (let n = 0; n <= 10; n++) {
    const text = letters.slice(0, n).join(' ');
    for (const contextLength of [2, 5, 12]) {
      for (const truncate of [false, true]) {
        const run = (t: Tokenizer) => {
          try {
            return Array.from(t.tokenize([text, 'a'], { contextLength, truncate })).map((v) => (v === t.sotId ? 'S' : v === t.eotId ? 'E' : v === 0 ? 0 : 'w'));
          } catch {
            return 'throws';
          }
        };
        assert.equal(run(wt), run(clip), `n ${n}, context ${contextLength}, truncate ${truncate}`);
      }
    }
  }
});

test('bad word lists and ids give clear errors', () => {
  assert.throws(() => new WordTokenizer(['a', 'b', 'a']), (e: Error) => e instanceof WordTokenizerError && /word 2 "a" is a duplicate of word 0/.test(e.message));
  assert.throws(() => new WordTokenizer(['Red']), /word 0 "Red" is not a single lower-case token/);
  assert.throws(() => new WordTokenizer(['red square']), /splits into \["red","square"\]/);
  assert.throws(() => new WordTokenizer(['[eot]']), /reserved special token/);
  assert.throws(() => new WordTokenizer(['']), /not a single lower-case token/);
  assert.throws(() => tok.decode([tok.vocabSize]), /id 17 is not in the vocabulary \(size 17\)/);
  assert.throws(() => tok.decode([-1]), /not in the vocabulary/);
});

test('JSON round trip and checked loading', () => {
  const t = new WordTokenizer(WORDS, { contextLength: 20 });
  const json = JSON.stringify(t);
  const back = WordTokenizer.fromJSON(json, 'tok.json');
  assert.equal(back.toJSON(), t.toJSON());
  assert.is(back.contextLength, 20);
  assert.equal(Array.from(back.tokenize(['there is a red square.'])), Array.from(t.tokenize(['there is a red square.'])));
  assert.is(t.toJSON().format, WORD_TOKENIZER_FORMAT);
  assert.throws(() => WordTokenizer.fromJSON('{', 'tok.json'), /tok\.json: not valid JSON/);
  assert.throws(() => WordTokenizer.fromJSON({ ...t.toJSON(), format: 'bpe' }, 'tok.json'), /tok\.json: format: expected "word-tokenizer"/);
  assert.throws(() => WordTokenizer.fromJSON({ ...t.toJSON(), version: 2 }, 'tok.json'), /version: expected 1/);
  assert.throws(() => WordTokenizer.fromJSON({ ...t.toJSON(), words: 'a b' }, 'tok.json'), /words: expected an array/);
  assert.throws(() => WordTokenizer.fromJSON({ ...t.toJSON(), contextLength: 1 }, 'tok.json'), /tok\.json: contextLength/);
  assert.throws(() => WordTokenizer.fromJSON({ ...t.toJSON(), words: ['a', 3] }, 'tok.json'), /tok\.json: word 1 is not a string/);
});

test('the world vocabulary makes a valid tokenizer whose captions fit the default context', () => {
  const wt = new WordTokenizer(worldVocabulary());
  assert.ok(wt.vocabSize < 300, `vocabulary size ${wt.vocabSize}`);
  const long = 'there is a small red square on the left, a large blue circle on the right and a small green cross on the left.';
  assert.equal(wt.unknownWords(long), []);
  // Every caption of up to three objects fits the default context, quadrant places included.
  let longest = 0;
  for (const r of generateWorld({ seed: 6, count: 300, spec: { quadrants: true }, minObjects: 3 })) {
    for (const c of r.captions) longest = Math.max(longest, wt.encode(c).length + 2);
    wt.tokenize(r.captions);
  }
  assert.is(longest, DEFAULT_WORD_CONTEXT);
});

test.run();
