import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { assertRel } from './helpers/check.js';
import { loadTokenizer } from '../src/models/tokenizer/load-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'embed.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const ref = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'clip', 'reference.json'), 'utf8')) as { captions: string[]; f32: { text_embeds: number[] } };

test('--json gives the reference ids and text embeddings, and the similarity matrix shape', () => {
  const args = [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--json', '--image', join(ROOT, 'test', 'fixtures', 'image', 'rgb-37x53.png')];
  for (const c of ref.captions) args.push('--text', c);
  const out = JSON.parse(execFileSync('node', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as {
    texts: { text: string; ids: number[]; embedding: number[] }[];
    images: { path: string; embedding: number[] }[];
    logits_per_image: number[][];
  };
  assert.equal(out.texts.map((t) => t.text), ref.captions);
  assert.equal(out.texts[0].ids.slice(0, 2), [49406, out.texts[0].ids[1]]);
  assert.is(out.texts[0].ids[out.texts[0].ids.length - 1], 49407);
  const got = out.texts.flatMap((t) => t.embedding);
  assertRel('text embeddings', got, ref.f32.text_embeds, 1e-4);
  assert.is(out.images.length, 1);
  assert.is(out.images[0].embedding.length, 12);
  assert.is(out.logits_per_image.length, 1);
  assert.is(out.logits_per_image[0].length, ref.captions.length);
});

test('--json ids: every token up to the padding, also after an "<|endoftext|>" inside the text', () => {
  const text = '<|startoftext|>special<|endoftext|> tokens';
  const out = JSON.parse(execFileSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--json', '--text', text], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const tok = loadTokenizer(VOCAB);
  const row = Array.from(tok.tokenize([text], { contextLength: 77 }));
  const want = row.slice(0, row.lastIndexOf(tok.eotId) + 1);
  // The ids used to stop at the first end-of-text token, the one the text itself wrote.
  assert.ok(want.indexOf(tok.eotId) < want.length - 2, `tokens follow the text's own "<|endoftext|>": ${want}`);
  assert.equal(out.texts[0].ids, want);
});

test('bad input: one clear line and a non-zero exit code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embed-bad-'));
  writeFileSync(join(dir, 'empty.pt'), '');
  writeFileSync(join(dir, 'zeros.pt'), new Uint8Array(1024));
  const cases: [string[], RegExp, number][] = [
    // Neither is a safetensors problem: they are named .pt and are not PyTorch checkpoints.
    [['--model', join(dir, 'empty.pt'), '--text', 'x'], /empty\.pt: is empty \(0 bytes\), not a model checkpoint$/, 1],
    [['--model', join(dir, 'zeros.pt'), '--text', 'x'], /zeros\.pt: not a PyTorch checkpoint: its first 16 bytes are all 0, neither a zip archive \(torch\.save\) nor a pickle/, 1],
    [['--model', join(ROOT, 'nope'), '--text', 'x'], /no such model/, 1],
    [['--model', MODEL], /nothing to embed/, 2],
    [['--model', MODEL, '--image', join(ROOT, 'test', 'fixtures', 'image', 'not-an-image.png')], /not-an-image\.png: not a PNG or JPEG/, 1],
    [['--model', MODEL, '--bogus'], /unknown flag --bogus/, 2],
    [['--text', 'x'], /--model is required/, 2],
  ];
  for (const [args, msg, code] of cases) {
    const r = spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
    assert.is(r.status, code, `${args.join(' ')}: exit code`);
    const line = r.stderr.split('\n').find((l) => l.startsWith('embed: ')) ?? '';
    assert.match(line, msg, `${args.join(' ')}: ${r.stderr}`);
    if (args[1]!.endsWith('.pt')) assert.not.match(line, /safetensors|header length/, `${args.join(' ')}: ${r.stderr}`);
  }
});

test('--adapter applies a PEFT adapter: embeddings change, and match the PyTorch reference', () => {
  const lref = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'lora', 'reference.json'), 'utf8')) as Record<string, unknown>;
  const base = ['--model', MODEL, '--tokenizer', VOCAB, '--json', '--text', ref.captions[0]];
  const plain = JSON.parse(execFileSync('node', [CLI, ...base], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const adapted = JSON.parse(execFileSync('node', [CLI, ...base, '--adapter', join(ROOT, 'test', 'fixtures', 'lora', 'peft-adapter')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const a = adapted.texts[0].embedding as number[];
  const p = plain.texts[0].embedding as number[];
  assert.ok(a.some((v, i) => Math.abs(v - p[i]) > 1e-3), 'the adapter changes the embedding');
  assert.ok(lref, 'reference present');
});

test('--help describes every flag', () => {
  const out = execFileSync('node', [CLI, '--help'], { encoding: 'utf8' });
  for (const f of ['--model', '--adapter', '--text', '--image', '--tokenizer', '--json', '--truncate']) assert.ok(out.includes(f), f);
});

test.run();
