import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers/gpu.js';
import type { ClipModel } from '../src/models/clip.js';
import { loadClip, loadClipTokenizer } from '../src/models/load-node.js';
import {
  clipConfigFromBytes, imageConfigFromFiles, isModelFileName, loadClipFromBytes, loadClipFromFiles, modelFileMap, openWeightsFromFiles, tokenizerFromFiles,
  weightFilesToRead, weightsFileOf,
} from '../src/models/load-bytes.js';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../src/models/safetensors.js';
import { clipImageConfig } from '../src/models/image/preprocess.js';
import { ClipTokenizer } from '../src/models/tokenizer/bpe.js';
import { imageConfigFor } from '../src/cli/images-node.js';

// Compiled to build/test/, so the repository root is two levels up.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'clip');
const TINY_WORLD = join(ROOT, 'models', 'tiny-world');
const bytes = (p: string) => new Uint8Array(readFileSync(p));
const enc = new TextEncoder();

function folderFiles(dir: string, prefix = ''): Map<string, Uint8Array> {
  return new Map(readdirSync(dir).map((f) => [`${prefix}${f}`, bytes(join(dir, f))]));
}

/** Every parameter of `a` equals the same-named one of `b`, bit for bit. */
async function sameParams(a: ClipModel, b: ClipModel): Promise<void> {
  assert.equal([...a.params.keys()], [...b.params.keys()]);
  for (const [k, t] of a.params) {
    const u = b.param(k);
    assert.equal([...t.shape], [...u.shape], k);
    const [x, y] = [await t.toArray(), await u.toArray()];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.unreachable(`${k}[${i}]: ${x[i]} vs ${y[i]}`);
  }
}

test('HF folder from bytes equals the Node loader, parameter for parameter', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const dir = join(FIX, 'tiny-hf');
  const fromDisk = await loadClip(ctx, dir);
  const fromBytes = await loadClipFromBytes(ctx, { config: readFileSync(join(dir, 'config.json'), 'utf8'), weights: bytes(join(dir, 'model.safetensors')) });
  assert.equal(fromBytes.config, fromDisk.config);
  await sameParams(fromBytes, fromDisk);
  fromDisk.dispose();
  fromBytes.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test('OpenAI-layout f16 file: config inferred from the shapes, or given, as the Node loader does', async () => {
  const ctx = await gpu();
  const file = join(FIX, 'tiny-openai-f16.safetensors');
  const weights = bytes(file);
  const inferred = clipConfigFromBytes({ weights, weightsName: 'tiny-openai-f16.safetensors' });
  const hfConfig = readFileSync(join(FIX, 'tiny-hf', 'config.json'), 'utf8');
  assert.is(inferred.text.layers, JSON.parse(hfConfig).text_config.num_hidden_layers);
  const fromDisk = await loadClip(ctx, file, { configPath: join(FIX, 'tiny-hf', 'config.json') });
  const fromBytes = await loadClipFromBytes(ctx, { config: JSON.parse(hfConfig) as object, weights });
  await sameParams(fromBytes, fromDisk);
  fromDisk.dispose();
  fromBytes.dispose();
});

test('models/tiny-world as picked files: same model, tokenizer, preprocessing and logits as load-node', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  // As a browser's folder pick names them: the folder's own name first.
  const files = modelFileMap([...folderFiles(TINY_WORLD)].map(([k, v]) => [`tiny-world/${k}`, v] as const));
  assert.ok(files.has('config.json') && files.has('word_tokenizer.json'));
  const got = await loadClipFromFiles(ctx, files, { source: 'tiny-world' });
  assert.equal(got.used, { config: 'config.json', weights: 'model.safetensors', preprocessor: 'preprocessor_config.json', fallbackTokenizer: false });
  const model = await loadClip(ctx, TINY_WORLD);
  const tok = loadClipTokenizer(TINY_WORLD);
  await sameParams(got.model, model);
  assert.equal(got.imageConfig, imageConfigFor(TINY_WORLD, model.config));
  const captions = ['there is a red square.', 'there is no red square.', 'a blue circle on the left.'];
  const len = model.config.text.maxPositions;
  const ids = tok.tokenize(captions, { contextLength: len });
  assert.equal([...got.tokenizer.tokenize(captions, { contextLength: len })], [...ids]);
  const a = got.model.encodeText(ids, captions.length);
  const b = model.encodeText(ids, captions.length);
  assert.equal([...await a.embeds.toArray()], [...await b.embeds.toArray()]);
  for (const t of [a.pooled, a.embeds, b.pooled, b.embeds]) t.dispose();
  got.model.dispose();
  model.dispose();
  assert.is(ctx.pool.liveBytes, live);
});

test('modelFileMap: cuts the picked folder name, keeps tokenizer/, refuses repeats', () => {
  const b = new Uint8Array(1);
  assert.equal([...modelFileMap([['clip\\config.json', b], ['clip/tokenizer/vocab.json', b]]).keys()], ['config.json', 'tokenizer/vocab.json']);
  assert.equal([...modelFileMap([['config.json', b], ['tokenizer/vocab.json', b]]).keys()], ['config.json', 'tokenizer/vocab.json']);
  assert.equal([...modelFileMap([['tokenizer/vocab.json', b], ['tokenizer/merges.txt', b]]).keys()], ['tokenizer/vocab.json', 'tokenizer/merges.txt']);
  assert.throws(() => modelFileMap([['m/config.json', b], ['m\\config.json', b]]), /"config.json" is given twice/);
});

test('isModelFileName: what a page reads from a picked folder', () => {
  for (const p of ['config.json', 'model.safetensors', 'open_clip.safetensors', 'preprocessor_config.json', 'vocab.json', 'merges.txt',
    'tokenizer.json', 'bpe_simple_vocab_16e6.txt.gz', 'word_tokenizer.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'model.safetensors.index.json',
    'pytorch_model.bin', 'pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'epoch_5.pt', 'model.PTH', 'last.ckpt']) {
    assert.ok(isModelFileName(p), p);
  }
  for (const p of ['flax_model.msgpack', 'tf_model.h5', 'sub/pytorch_model.bin', 'README.md', 'tokenizer/config.json', 'sub/model.safetensors', 'special_tokens_map.json']) {
    assert.not.ok(isModelFileName(p), p);
  }
});

test('tokenizer search order and messages', () => {
  const world = bytes(join(TINY_WORLD, 'word_tokenizer.json'));
  // Ids: padding, unknown, the words, start and end.
  const ids = (JSON.parse(new TextDecoder().decode(world)) as { words: string[] }).words.length + 4;
  const vocab = enc.encode(JSON.stringify({ '<|startoftext|>': 0 }));
  // word_tokenizer.json wins over a vocab pair, as in load-node.
  const tok = tokenizerFromFiles(new Map([['word_tokenizer.json', world], ['tokenizer/vocab.json', vocab]]));
  assert.is(tok.vocabSize, ids);
  assert.is(tokenizerFromFiles(new Map([['tokenizer/word_tokenizer.json', world]])).vocabSize, ids);
  assert.throws(() => tokenizerFromFiles(new Map([['vocab.json', vocab]]), 'my-clip'), /my-clip\/vocab.json: a vocab.json needs merges.txt beside it/);
  assert.throws(() => tokenizerFromFiles(new Map([['tokenizer/merges.txt', vocab]]), 'my-clip'), /tokenizer\/merges.txt: a merges.txt needs vocab.json/);
  assert.throws(() => tokenizerFromFiles(new Map([['config.json', vocab]]), 'my-clip'),
    /my-clip: no tokenizer files among config.json; looked for word_tokenizer.json, vocab.json \+ merges.txt, tokenizer.json, bpe_simple_vocab_16e6.txt.gz, tokenizer\/word_tokenizer.json/);
  assert.throws(() => tokenizerFromFiles(new Map([['word_tokenizer.json', enc.encode('{"format":"x"}')]]), 'w'), /w\/word_tokenizer.json: format/);
});

test('bad folders fail naming the file and the problem, before any upload', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const hf = folderFiles(join(FIX, 'tiny-hf'));
  // Weights without their config.
  assert.throws(() => clipConfigFromBytes({ weights: hf.get('model.safetensors')!, weightsName: 'x/model.safetensors' }),
    /x\/model.safetensors: config.json: missing: a Hugging Face checkpoint needs its config.json/);
  assert.throws(() => clipConfigFromBytes({ config: '{"text_config": ', configName: 'x/config.json', weights: hf.get('model.safetensors')! }),
    /x\/config.json: \(file\): not valid JSON/);
  const one = new Uint8Array(1);
  assert.throws(() => weightsFileOf(new Map([['config.json', one]]), 'x'), /x: no weights among config.json; looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin/);
  assert.throws(() => weightsFileOf(new Map([['a.safetensors', one], ['b.safetensors', one]]), 'x'), /several .safetensors files \(a.safetensors, b.safetensors\)/);
  assert.throws(() => weightsFileOf(new Map([['a.pt', one], ['b.bin', one]]), 'x'), /x: several PyTorch files \(a.pt, b.bin\)/);
  assert.is(weightsFileOf(new Map([['open_clip.safetensors', one]])), 'open_clip.safetensors');
  assert.is(weightsFileOf(new Map([['epoch_5.pt', one], ['config.json', one]])), 'epoch_5.pt');
  // load-node's order in a folder: safetensors first, then PyTorch, the unsharded one first.
  assert.is(weightsFileOf(new Map([['pytorch_model.bin', one], ['model.safetensors', one]])), 'model.safetensors');
  assert.is(weightsFileOf(new Map([['pytorch_model.bin.index.json', one], ['pytorch_model.bin', one]])), 'pytorch_model.bin');
  assert.is(weightsFileOf(new Map([['model.safetensors.index.json', one], ['pytorch_model.bin', one], ['model-00001-of-00002.safetensors', one]])), 'model.safetensors.index.json');
  // An index must come with every shard it names, and name plain files beside it.
  const index = (map: object) => async () => JSON.stringify({ weight_map: map });
  const picked = new Map([['model.safetensors.index.json', one], ['s1.safetensors', one]]);
  assert.equal(await weightFilesToRead(picked, index({ a: 's1.safetensors', b: 's1.safetensors' }), 'x'), ['model.safetensors.index.json', 's1.safetensors']);
  for (const [map, msg] of [
    [{ a: 's1.safetensors', b: 's2.safetensors' }, /x\/model.safetensors.index.json: names shard s2.safetensors, not among the files given/],
    [{ a: '../s1.safetensors' }, /weight_map\["a"\] must be a shard file name beside the index, got "..\/s1.safetensors"/],
    [{}, /"weight_map" lists no tensors/],
  ] as const) {
    try {
      await weightFilesToRead(picked, index(map), 'x');
      assert.unreachable(JSON.stringify(map));
    } catch (e) {
      assert.match((e as Error).message, msg);
    }
  }
  // A PyTorch-named file that is neither torch.save's zip nor safetensors says so.
  for (const [bytesOf, msg] of [
    [new Uint8Array(0), /x\/epoch_5.pt: is empty/],
    [enc.encode('hello world, not a checkpoint'), /x\/epoch_5.pt: not a PyTorch checkpoint: it starts with bytes 68 65/],
    [new Uint8Array(4096), /x\/epoch_5.pt: not a PyTorch checkpoint: its first 16 bytes are all 0/],
  ] as const) {
    try {
      await openWeightsFromFiles(new Map([['epoch_5.pt', bytesOf]]), 'x');
      assert.unreachable('opened junk');
    } catch (e) {
      assert.match((e as Error).message, msg);
    }
  }
  // A folder with weights and config but no tokenizer: refused before the weights go up.
  try {
    await loadClipFromFiles(ctx, hf, { source: 'tiny-hf' });
    assert.unreachable('loaded without a tokenizer');
  } catch (e) {
    assert.match((e as Error).message, /tiny-hf: no tokenizer files among config.json, model.safetensors/);
  }
  // A truncated weights file names itself.
  const cut = hf.get('model.safetensors')!.subarray(0, 1000);
  try {
    await loadClipFromBytes(ctx, { config: new TextDecoder().decode(hf.get('config.json')), weights: cut, weightsName: 'x/model.safetensors' });
    assert.unreachable('loaded a truncated file');
  } catch (e) {
    assert.match((e as Error).message, /x\/model.safetensors/);
  }
  assert.is(ctx.pool.liveBytes, live, 'nothing uploaded');
});

test('a folder without tokenizer files takes opts.fallbackTokenizer (the bundled CLIP vocabulary the CLI uses); broken tokenizer files still fail', async () => {
  const ctx = await gpu();
  const hf = folderFiles(join(FIX, 'tiny-hf'));
  const gz = bytes(join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz'));
  let asked = 0;
  const fallbackTokenizer = () => { asked++; return ClipTokenizer.fromOpenAIGzip(gz); };
  const loaded = await loadClipFromFiles(ctx, hf, { source: 'tiny-hf', fallbackTokenizer });
  assert.is(asked, 1);
  assert.ok(loaded.used.fallbackTokenizer);
  // The same tokenizer the CLI's loader falls back to for this folder.
  const cli = loadClipTokenizer(join(FIX, 'tiny-hf'));
  assert.equal(Array.from(loaded.tokenizer.tokenize(['there is no red square.'], { contextLength: 16 })), Array.from(cli.tokenize(['there is no red square.'], { contextLength: 16 })));
  loaded.model.dispose();
  // Half a vocab.json + merges.txt pair is an error, not a reason to fall back.
  const half = new Map(hf).set('vocab.json', enc.encode('{}'));
  try {
    await loadClipFromFiles(ctx, half, { source: 'tiny-hf', fallbackTokenizer });
    assert.unreachable('fell back over a broken tokenizer');
  } catch (e) {
    assert.match((e as Error).message, /vocab\.json needs merges\.txt beside it/);
  }
  assert.is(asked, 1);
  // The models/tiny-world folder has its own (word-level) tokenizer: no fallback.
  const world = await loadClipFromFiles(ctx, folderFiles(TINY_WORLD), { fallbackTokenizer });
  assert.not.ok(world.used.fallbackTokenizer);
  assert.is(asked, 1);
  world.model.dispose();
});

const TORCH = join(ROOT, 'test', 'fixtures', 'torch');

test('PyTorch checkpoints as picked files equal the Node loader: pytorch_model.bin, an open_clip .pt, a sharded .bin index', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const gz = bytes(join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz'));
  const fallbackTokenizer = () => ClipTokenizer.fromOpenAIGzip(gz);
  // A Hugging Face folder with pytorch_model.bin beside its config.
  const bin = await loadClipFromFiles(ctx, folderFiles(join(TORCH, 'tiny-hf-bin')), { source: 'tiny-hf-bin', fallbackTokenizer });
  assert.is(bin.used.weights, 'pytorch_model.bin');
  const binDisk = await loadClip(ctx, join(TORCH, 'tiny-hf-bin'));
  await sameParams(bin.model, binDisk);
  bin.model.dispose();
  binDisk.dispose();
  // An open_clip / NegBench training checkpoint (state dict under "state_dict", DDP prefix), with
  // the config the tiny model needs (its head count cannot be read from the shapes).
  const config = join(FIX, 'tiny-hf', 'config.json');
  const files = new Map([['open_clip-tiny-f16.pt', bytes(join(TORCH, 'open_clip-tiny-f16.pt'))], ['config.json', bytes(config)]]);
  const pt = await loadClipFromFiles(ctx, files, { source: 'picked', fallbackTokenizer });
  assert.is(pt.used.weights, 'open_clip-tiny-f16.pt');
  const ptDisk = await loadClip(ctx, join(TORCH, 'open_clip-tiny-f16.pt'), { configPath: config });
  await sameParams(pt.model, ptDisk);
  pt.model.dispose();
  ptDisk.dispose();
  // loadClipFromBytes tells the formats apart by their bytes as well.
  const one = await loadClipFromBytes(ctx, { config: readFileSync(config, 'utf8'), weights: bytes(join(TORCH, 'tiny-openai-f16.pt')), weightsName: 'tiny-openai-f16.pt' });
  const oneDisk = await loadClip(ctx, join(TORCH, 'tiny-openai-f16.pt'), { configPath: config });
  await sameParams(one, oneDisk);
  one.dispose();
  oneDisk.dispose();
  assert.is(ctx.pool.liveBytes, live);
  // A sharded PyTorch index reads each key from its shard (values written by PyTorch).
  const sharded = folderFiles(join(TORCH, 'sharded'));
  const { name, weights } = await openWeightsFromFiles(sharded, 'sharded');
  assert.is(name, 'pytorch_model.bin.index.json');
  const want = JSON.parse(readFileSync(join(TORCH, 'sharded.json'), 'utf8')) as Record<string, number[]>;
  assert.equal(weights.keys().sort(), Object.keys(want).sort());
  for (const [k, v] of Object.entries(want)) {
    const got = await weights.read(k);
    assert.equal([...got].map((x) => Math.fround(x)), v.map((x) => Math.fround(x)), k);
  }
});

test('a sharded model.safetensors.index.json as picked files equals the unsharded folder; a key missing from its shard is named', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const dir = join(FIX, 'tiny-hf');
  const whole = parseSafetensors(bytes(join(dir, 'model.safetensors')));
  const keys = whole.keys();
  const shard = (part: string[]) => serializeSafetensors(Object.fromEntries(part.map((k) => {
    const t = whole.readTensor(k);
    return [k, { dtype: t.dtype, shape: t.shape, data: t.data } as TensorToWrite];
  })));
  const half = Math.ceil(keys.length / 2);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap = Object.fromEntries(keys.map((k, i) => [k, names[i < half ? 0 : 1]]));
  const files = modelFileMap([
    ['clip/config.json', bytes(join(dir, 'config.json'))],
    ['clip/model.safetensors.index.json', enc.encode(JSON.stringify({ metadata: {}, weight_map: weightMap }))],
    [`clip/${names[0]}`, shard(keys.slice(0, half))],
    [`clip/${names[1]}`, shard(keys.slice(half))],
    ['clip/word_tokenizer.json', bytes(join(TINY_WORLD, 'word_tokenizer.json'))],
  ]);
  const got = await loadClipFromFiles(ctx, files, { source: 'clip' });
  assert.is(got.used.weights, 'model.safetensors.index.json');
  const disk = await loadClip(ctx, dir);
  await sameParams(got.model, disk);
  got.model.dispose();
  disk.dispose();
  // The index claims a key for the first shard that only the second holds.
  const wrong = new Map(files).set('model.safetensors.index.json', enc.encode(JSON.stringify({ weight_map: { ...weightMap, [keys[keys.length - 1]]: names[0] } })));
  try {
    await loadClipFromFiles(ctx, wrong, { source: 'clip' });
    assert.unreachable('loaded a wrong index');
  } catch (e) {
    assert.match((e as Error).message, new RegExp(`clip/${names[0]}.*${keys[keys.length - 1].replace(/\./g, '\\.')}.*is listed in model.safetensors.index.json but not in this shard`));
  }
  assert.is(ctx.pool.liveBytes, live);
});

test('preprocessor config: optional, parsed when present, checked against the model size', () => {
  const cfgText = readFileSync(join(TINY_WORLD, 'config.json'), 'utf8');
  const config = clipConfigFromBytes({ config: cfgText, weights: bytes(join(TINY_WORLD, 'model.safetensors')) });
  const size = config.vision.imageSize;
  assert.equal(imageConfigFromFiles(new Map(), config), clipImageConfig(size));
  const pre = (o: object) => new Map([['preprocessor_config.json', enc.encode(JSON.stringify(o))]]);
  assert.is(imageConfigFromFiles(pre({ size: { shortest_edge: size }, crop_size: size, image_mean: 0.5, image_std: 0.5 }), config).mean?.[0], 0.5);
  const other = size + 2;
  assert.throws(() => imageConfigFromFiles(pre({ size: other, crop_size: other }), config, 'm'),
    new RegExp(`m/preprocessor_config.json: preprocessing gives ${other}x${other}, the model takes ${size}x${size}`));
  assert.throws(() => imageConfigFromFiles(pre({ resample: 2 }), config, 'm'), /m\/preprocessor_config.json: resample = 2 is not supported/);
  assert.throws(() => imageConfigFromFiles(new Map([['preprocessor_config.json', enc.encode('{')]]), config, 'm'), /m\/preprocessor_config.json: \(file\): not valid JSON/);
});

test.run();
