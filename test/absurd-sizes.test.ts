import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers/gpu.js';
import { loadClip } from '../src/models/load-node.js';
import { ClipTokenizer } from '../src/models/tokenizer/index.js';
import { parseHfConfig } from '../src/models/clip-config.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');

test('a config asking for 1e9 layers fails at once, naming the fields and what the file holds', async () => {
  const ctx = await gpu();
  const cfg = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'));
  cfg.text_config.num_hidden_layers = 1e9;
  const file = join(mkdtempSync(join(tmpdir(), 'absurd-')), 'config.json');
  writeFileSync(file, JSON.stringify(cfg));
  let msg = '';
  try {
    await loadClip(ctx, MODEL, { configPath: file });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.match(msg, /model\.safetensors: config: text_config\.num_hidden_layers 1000000000 \+ vision_config\.num_hidden_layers \d+ need at least \d+ tensors; the file holds \d+/);
});

test('BPE refuses a 100k-letter word instead of spending quadratic time on it', () => {
  const tok = ClipTokenizer.fromOpenAIGzip(new Uint8Array(readFileSync(join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz'))));
  assert.throws(() => tok.encode(`a ${'x'.repeat(100_000)} b`), /tokenize: a word of 100000 bytes \(over 2000\) starting "xxxx/);
  assert.equal(tok.encode('a cat'), [320, 2368]);
});

test('layer_norm_eps must be positive, named with its file and key', () => {
  const cfg = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'));
  cfg.vision_config.layer_norm_eps = -1;
  assert.throws(() => parseHfConfig(cfg, 'my/config.json'), /my\/config\.json: vision_config\.layer_norm_eps: expected a positive number, got -1/);
});

test.run();
