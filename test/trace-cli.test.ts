import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseCteReport } from '../src/nast/cte-report-parse.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'trace.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');

function workdir(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'trace-cli-'));
  copyFileSync(join(ROOT, 'test', 'fixtures', 'image', 'rgb-37x53.png'), join(dir, 'a.png'));
  writeFileSync(join(dir, 'pairs.jsonl'), lines.join('\n') + '\n');
  return dir;
}

test('writes cte.json (the issue\'s schema) and the heat map; unequal lengths are skipped with the reason', () => {
  const dir = workdir([
    JSON.stringify({ image: 'a.png', caption: 'There is severe edema.', foil: 'There is no edema.' }),
    JSON.stringify({ image: 'a.png', caption: 'There is no cardiomegaly.', foil: 'There is severe cardiomegaly.' }),
    JSON.stringify({ image: 'a.png', caption: 'There is no cardiomegaly.', foil: 'There is edema.' }),
  ]);
  execFileSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--pairs', join(dir, 'pairs.jsonl'), '--out', join(dir, 'out'), '--beta', '2'], { stdio: 'ignore' });
  const raw = JSON.parse(readFileSync(join(dir, 'out', 'cte.json'), 'utf8'));
  const rep = parseCteReport(raw, 'cte.json');
  assert.is(raw.version, 2);
  assert.is(rep.layers, 2);
  assert.is(rep.positions, 'differ');
  assert.is(rep.beta, 2);
  assert.is(rep.pairs.length, 2);
  for (const p of rep.pairs) {
    for (const k of ['image', 'caption', 'foil', 'ids', 's_corr', 's_foil', 'd', 'cte']) assert.ok(k in p, k);
    assert.is(p.image, 'a.png');
    assert.is(p.cte.length, 3);
    assert.is(p.cte[0].length, p.ids.length);
    // Patching the embedding output at every differing token turns the caption into the foil.
    assert.ok(Math.abs(p.d - (p.s_corr - p.s_foil)) < 1e-9);
  }
  assert.is(rep.pairs[0].polarity, 'foil');
  assert.is(rep.pairs[1].polarity, 'caption');
  assert.is(rep.skipped.length, 1);
  assert.match(rep.skipped[0].reason, /different token lengths/);
  assert.is(rep.cte_layer.length, 2, 'layers 1..L');
  assert.is(rep.alpha.length, 2);
  assert.ok(Number.isFinite(rep.cte_embeddings));
  // differ: the one position where "severe" and "no" sit; patching the embeddings there turns the caption into the foil.
  for (const p of rep.pairs) {
    assert.is(p.positions.length, 1);
    assert.ok(Math.abs(p.cte[0][p.positions[0]] - 1) < 1e-4, `CTE at the embeddings of the differing token: ${p.cte[0][p.positions[0]]}`);
  }
  assert.is(rep.cte_layer_ci95!.length, 2);
  const svg = readFileSync(join(dir, 'out', 'cte_heatmap.svg'), 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>'));
});

test('a malformed pairs line is named with its line number', () => {
  const dir = workdir([JSON.stringify({ image: 'a.png', caption: 'x', foil: 'y' }), '{"image": "a.png", "caption": 3}']);
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--pairs', join(dir, 'pairs.jsonl')], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, /pairs\.jsonl:2: "caption" must be a non-empty string/);
});

test('bad pairs are skipped with file:line and the reason; the rest is traced; the run fails only when nothing is left', () => {
  const long = `There is ${'very '.repeat(80)}severe edema.`;
  const dir = workdir([
    JSON.stringify({ image: 'a.png', caption: 'There is severe edema.', foil: 'There is no edema.' }),
    JSON.stringify({ image: 'a.png', caption: 'There is no edema.', foil: 'There is no edema.' }),
    JSON.stringify({ image: 'a.png', caption: long, foil: long.replace('severe', 'no') }),
    JSON.stringify({ image: 'gone.png', caption: 'There is severe edema.', foil: 'There is no edema.' }),
    JSON.stringify({ image: 'a.png', caption: 'There is no cardiomegaly.', foil: 'There is severe cardiomegaly.' }),
  ]);
  const pairs = join(dir, 'pairs.jsonl');
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--pairs', pairs, '--out', join(dir, 'out'), '--bootstrap', '10'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /pairs\.jsonl:2: skipped: caption "There is no edema\." and foil "There is no edema\." tokenise identically; there is no negation to trace/);
  assert.match(r.stderr, /pairs\.jsonl:3: skipped: caption "There is very very .*" is 8\d tokens, longer than the model's context length 77; trace\.js cannot cut it .*: shorten it in --pairs/);
  assert.match(r.stderr, /pairs\.jsonl:4: skipped: .*gone\.png/);
  assert.not.match(r.stderr, /negationPositions:|tokenize:|embed\.js/);
  const rep = parseCteReport(readFileSync(join(dir, 'out', 'cte.json'), 'utf8'), 'cte.json');
  assert.equal(rep.pairs.map((p) => p.caption), ['There is severe edema.', 'There is no cardiomegaly.']);
  assert.equal(rep.skipped.map((s) => s.source), [2, 3, 4].map((n) => `${pairs}:${n}`));

  // Nothing usable: one line naming the file, the count and the first reason.
  const bad = workdir([JSON.stringify({ image: 'a.png', caption: 'There is no edema.', foil: 'There is no edema.' })]);
  const x = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--pairs', join(bad, 'pairs.jsonl'), '--out', join(bad, 'out')], { encoding: 'utf8' });
  assert.is(x.status, 1);
  assert.match(x.stderr.trim().split('\n').at(-1)!, /^trace: \S+pairs\.jsonl: no pair can be traced \(1 skipped; first: \S+pairs\.jsonl:1: caption .* tokenise identically/);
});

test('--limit 0 and a --bootstrap the heap cannot hold are refused when parsed, before any tracing', () => {
  const dir = workdir([JSON.stringify({ image: 'a.png', caption: 'There is severe edema.', foil: 'There is no edema.' })]);
  for (const [args, msg] of [
    [['--limit', '0'], /^trace: --limit: must be at least 1, got 0$/],
    [['--bootstrap', '100000000'], /^trace: --bootstrap: must be at most 1000000, got 100000000$/],
  ] as const) {
    const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--pairs', join(dir, 'pairs.jsonl'), '--out', join(dir, 'out'), ...args], { encoding: 'utf8' });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr.trim(), msg);
  }
});

test.run();
