import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers/gpu.js';
import { assertRel } from './helpers/check.js';
import { loadClip, openWeights } from '../src/models/load-node.js';
import { openShardedTorch, openTorchFile } from '../src/models/torch-node.js';
import { TorchCheckpoint } from '../src/models/torch-checkpoint.js';
import { bytesAccess } from '../src/models/zip-reader.js';
import { unpickle } from '../src/models/torch-pickle.js';
import type { ClipModel } from '../src/models/clip.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'torch');
const CLIP = join(ROOT, 'test', 'fixtures', 'clip');
const HOSTILE_MARK = '/tmp/negclip-hostile-pickle-ran';
const CONFIG = join(CLIP, 'tiny-hf', 'config.json');

interface Expected { shape: number[]; stride: number[]; offset: number; values: number[] }
const views = JSON.parse(readFileSync(join(FIX, 'views.json'), 'utf8')) as { tensors: Record<string, Expected> };
const ref = JSON.parse(readFileSync(join(CLIP, 'reference.json'), 'utf8')) as {
  ids: number[][]; pixels: number[]; pixels_shape: number[];
  f32: { text_embeds: number[]; image_embeds: number[]; logits_per_image: number[] };
  f16: { text_embeds: number[]; image_embeds: number[]; logits_per_image: number[] };
};

test('views: strides, storage offsets, expanded views and f16 / bf16 / f64 / int64 storages read as torch reads them', async () => {
  const f = await openTorchFile(join(FIX, 'views.pt'));
  try {
    assert.equal(f.keys().sort(), Object.keys(views.tensors).sort());
    for (const [k, e] of Object.entries(views.tensors)) {
      assert.equal([...f.shape(k)], e.shape, `${k} shape`);
      const got = await f.read(k);
      // f64 values are rounded to f32 on the way in; every other dtype is exact in f32.
      const tol = k === 'double' ? 1e-7 : 0;
      got.forEach((v, i) => assert.ok(Math.abs(v - e.values[i]) <= tol * Math.max(1, Math.abs(e.values[i])), `${k}[${i}]: ${v} vs ${e.values[i]}`));
    }
    assert.equal([views.tensors.transposed.stride, views.tensors.sliced.offset, views.tensors.expanded.stride], [[1, 7], 5, [0, 1]], 'the fixture has the views it claims');
  } finally {
    await f.close();
  }
});

test('a sharded pytorch_model.bin.index.json reads every key from its shard', async () => {
  const want = JSON.parse(readFileSync(join(FIX, 'sharded.json'), 'utf8')) as Record<string, number[]>;
  const s = await openShardedTorch(join(FIX, 'sharded', 'pytorch_model.bin.index.json'));
  try {
    assert.equal(s.keys().sort(), Object.keys(want).sort());
    for (const [k, v] of Object.entries(want)) assert.equal(Array.from(await s.read(k)), Array.from(Float32Array.from(v)), k);
  } finally {
    await s.close();
  }
  const dir = mkdtempSync(join(tmpdir(), 'torch-shard-'));
  try {
    writeFileSync(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { 'a.weight': '../x.bin' } }));
    await openShardedTorch(join(dir, 'pytorch_model.bin.index.json')).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /weight_map\["a.weight"\] must be a file name beside the index/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pickle that would call os.system is refused, naming the global, and nothing runs', async () => {
  rmSync(HOSTILE_MARK, { force: true });
  await openTorchFile(join(FIX, 'hostile.pt')).then(
    () => assert.unreachable('loaded a hostile pickle'),
    (e: Error) => {
      assert.match(e.message, /hostile\.pt: refused global posix\.system|hostile\.pt: refused global os\.system/);
      assert.match(e.message, /nothing was run/);
    },
  );
  assert.not.ok(existsSync(HOSTILE_MARK), 'the payload did not run');
  // Through the CLI too: one line, non-zero exit.
  const r = spawnSync('node', [join(ROOT, 'build', 'src', 'embed.js'), '--model', join(FIX, 'hostile.pt'), '--text', 'x'], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, /refused global (posix|os)\.system/);
  assert.not.ok(existsSync(HOSTILE_MARK), 'the payload did not run from the CLI either');
});

test('legacy, truncated and malformed files fail with one clear error', async () => {
  await openTorchFile(join(FIX, 'legacy.pt')).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /legacy.pt: the legacy \(pre-1\.6, non-zip\) torch\.save format is not read/));
  const whole = new Uint8Array(readFileSync(join(FIX, 'views.pt')));
  await TorchCheckpoint.open(bytesAccess(whole.subarray(0, whole.length - 100)), 'cut.pt').then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /cut\.pt: .*(end-of-central-directory|truncated|past the end)/));
  const fake = new Uint8Array([0x50, 0x4b, 3, 4, ...new Array(40).fill(0)]);
  await TorchCheckpoint.open(bytesAccess(fake), 'fake.pt').then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /fake\.pt: no zip end-of-central-directory record/));
  // The unpickler alone: an unknown opcode and an unknown global.
  assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0x99]), 'x.pkl', () => null), /x\.pkl: pickle opcode 0x99 .* nothing was run/);
  const builtinsEval = new TextEncoder().encode('cbuiltins\neval\n');
  assert.throws(() => unpickle(new Uint8Array([0x80, 2, ...builtinsEval]), 'x.pkl', () => null), /refused global builtins\.eval/);
});

async function parity(model: ClipModel, want: typeof ref.f32, label: string): Promise<void> {
  const n = ref.ids.length;
  const text = model.encodeText(Int32Array.from(ref.ids.flat()), n);
  const img = model.encodeImage(Float32Array.from(ref.pixels), ref.pixels_shape[0]);
  const logits = model.logitsPerImage(img.embeds, text.embeds);
  assertRel(`${label} text embeds`, await text.embeds.toArray(), want.text_embeds, 1e-4);
  assertRel(`${label} image embeds`, await img.embeds.toArray(), want.image_embeds, 1e-4);
  assertRel(`${label} logits`, await logits.toArray(), want.logits_per_image, 1e-4);
  for (const t of [text.pooled, text.embeds, img.pooled, img.embeds, logits]) t.dispose();
}

test('CLIP from a Hugging Face pytorch_model.bin, an open_clip training checkpoint and a bare OpenAI state dict equals PyTorch within 1e-4', async () => {
  const ctx = await gpu();
  const live = ctx.pool.liveBytes;
  const bin = await loadClip(ctx, join(FIX, 'tiny-hf-bin'));
  await parity(bin, ref.f32, 'pytorch_model.bin');
  bin.dispose();
  // An OpenAI-layout state dict does not say its head count (OpenAI's width / 64 rule does not fit
  // this tiny model), so these come with the config, as --config gives it.
  for (const file of ['open_clip-tiny-f16.pt', 'tiny-openai-f16.pt']) {
    const m = await loadClip(ctx, join(FIX, file), { configPath: CONFIG });
    await parity(m, ref.f16, file);
    m.dispose();
  }
  assert.is(ctx.pool.liveBytes, live, 'every tensor freed');
  const ck = (await openWeights(join(FIX, 'open_clip-tiny-f16.pt'))) as Awaited<ReturnType<typeof openTorchFile>>;
  try {
    assert.ok(ck.keys().every((k) => !k.startsWith('module.')), 'the DDP prefix is stripped');
    assert.equal(ck.checkpoint.extras, { epoch: 3, name: 'tiny-negbench' });
  } finally {
    await ck.close();
  }
});

test('convert.js writes a Hugging Face folder that loads to the same model; embed.js reads a .pt directly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'convert-'));
  try {
    const out = join(dir, 'hf');
    execFileSync('node', [join(ROOT, 'build', 'src', 'convert.js'), '--from', join(FIX, 'open_clip-tiny-f16.pt'), '--config', CONFIG, '--to', out], { stdio: 'ignore' });
    for (const f of ['config.json', 'model.safetensors', 'bpe_simple_vocab_16e6.txt.gz']) assert.ok(existsSync(join(out, f)), f);
    const ctx = await gpu();
    const m = await loadClip(ctx, out);
    await parity(m, ref.f16, 'converted');
    m.dispose();
    const embed = (...args: string[]) => JSON.parse(execFileSync('node', [join(ROOT, 'build', 'src', 'embed.js'), ...args, '--json', '--text', 'a photo of a cat'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).texts[0].embedding as number[];
    assertRel('embed.js .pt vs converted', embed('--model', join(FIX, 'open_clip-tiny-f16.pt'), '--config', CONFIG), embed('--model', out), 1e-6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
