import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { gpu } from './helpers/gpu.js';
import { loadClip, loadClipTokenizer } from '../src/models/load-node.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'clip');

test('a missing model folder is a clear error', async () => {
  const ctx = await gpu();
  try {
    await loadClip(ctx, join(FIX, 'nope'));
    assert.unreachable('loaded a missing folder');
  } catch (e) {
    assert.match((e as Error).message, /nope: \(path\): no such model file or folder/);
  }
});

test('a model folder without tokenizer files gets the shipped CLIP vocabulary; a broken tokenizer file is still an error', () => {
  const tok = loadClipTokenizer(join(FIX, 'tiny-hf'));
  assert.is(tok.vocabSize, 49408);
  assert.equal(tok.encode('There is no pneumothorax.'), [997, 533, 871, 28714, 617, 4130, 9203, 269]);
  assert.throws(() => loadClipTokenizer(join(FIX, 'tiny-hf'), join(FIX, 'tiny-hf', 'config.json')), /merges\.txt/);
});

test('a model folder with word_tokenizer.json gets the word tokenizer (models/tiny-world)', () => {
  const tok = loadClipTokenizer(join(FIX, '..', '..', '..', 'models', 'tiny-world'));
  assert.is(tok.constructor.name, 'WordTokenizer');
  assert.is(tok.eotId, tok.vocabSize - 1);
});

test.run();
