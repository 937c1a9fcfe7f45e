import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzlibSync } from 'fflate';
import { axisCoefficients, resizeBicubic } from '../src/models/image/resample.js';
import {
  CLIP_MEAN, CLIP_STD, ImageConfigError, ImageInputError, centerCrop, clipImageConfig, cropOffset,
  imageConfigFromPreprocessorJson, normalizeToCHW, preprocessBatch, preprocessImage, resizeAndCrop,
  shortestSideSize, toRGB, type RawImage,
} from '../src/models/image/preprocess.js';
import { ImageDecodeError, decodeImageBytes, decodeImageFile, type DecodedImage } from '../src/models/image/decode-node.js';

// Compiled to build/test/, so the repository root is two levels up.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'image');

/** Fixture arrays: small ones in full (zlib + base64), large ones by SHA-256 of the raw bytes. */
type Packed = { zlib: string } | { sha256: string };
interface ImageEntry {
  pil_mode: string; width: number; height: number; decoded: Packed;
  resized: { width: number; height: number; data: Packed };
  crop_tv: [number, number]; crop_hf: [number, number];
}
interface Expected {
  size: number; mean: number[]; std: number[];
  images: Record<string, ImageEntry>;
  resize_cases: { source: string; width: number; height: number; data: Packed }[];
  gray_l_24x18: Packed;
  clip224: { source: string; resized_width: number; resized_height: number; crop: [number, number]; data: Packed };
  normalised: { source: string; crop_rule: 'torchvision' | 'hf'; crop: [number, number]; float64: string; hf_float32: string }[];
}
const expected: Expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8'));
const NAMES = Object.keys(expected.images);
const isJpeg = (name: string) => name.endsWith('.jpg');

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const unpack = (p: Packed): Uint8Array | undefined => ('zlib' in p ? unzlibSync(b64(p.zlib)) : undefined);
const sha256 = (a: Uint8Array) => createHash('sha256').update(a).digest('hex');

/** Exact comparison against a packed array; on mismatch, says how many samples differ and by how much. */
function assertBytes(got: Uint8Array, want: Packed, what: string): void {
  const full = unpack(want);
  if (!full) {
    assert.is(sha256(got), (want as { sha256: string }).sha256, `${what}: SHA-256 of ${got.length} bytes`);
    return;
  }
  assert.is(got.length, full.length, `${what}: length`);
  let diff = 0;
  let maxd = 0;
  let first = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - full[i]);
    if (d) { diff++; maxd = Math.max(maxd, d); if (first < 0) first = i; }
  }
  assert.ok(diff === 0, `${what}: ${diff} of ${got.length} samples differ (max ${maxd}, first at ${first}: ${got[first]} vs ${full[first]})`);
}

function rgbOf(img: RawImage): Uint8Array {
  return toRGB(img).data as Uint8Array;
}

const decodedCache = new Map<string, DecodedImage>();
async function decoded(name: string): Promise<DecodedImage> {
  let d = decodedCache.get(name);
  if (!d) { d = await decodeImageFile(join(FIX, name)); decodedCache.set(name, d); }
  return d;
}

/** Pillow's decode as the resize input: ours for PNG (proved equal above), the stored one for JPEG. */
async function pilPixels(name: string): Promise<RawImage> {
  const e = expected.images[name];
  const full = unpack(e.decoded);
  if (full) return { width: e.width, height: e.height, channels: 3, data: full };
  return toRGB(await decoded(name));
}

// ---------------------------------------------------------------------------------------------
// Decoding

for (const name of NAMES.filter((n) => !isJpeg(n))) {
  test(`decode ${name} (Pillow mode ${expected.images[name].pil_mode}) equals Pillow's convert('RGB') exactly`, async () => {
    const e = expected.images[name];
    const img = await decoded(name);
    assert.is(img.width, e.width);
    assert.is(img.height, e.height);
    assert.is(img.format, 'png');
    assertBytes(rgbOf(img), e.decoded, name);
  });
}

/**
 * jpeg-js against libjpeg-turbo (through Pillow), measured on these fixtures (|difference| per
 * sample, 0..255):
 *   gray q92:                  max 1,  mean 0.06
 *   4:4:4 q95:                 max 3,  mean 0.51, 1.3% of samples differ by more than 1
 *   4:2:0 q90, baseline and progressive (identical output):
 *                              max 74, mean 2.18, 9.6% differ by more than 4, 2.1% by more than 16
 * The 4:2:0 error is chroma upsampling: jpeg-js replicates each chroma sample over its 2x2
 * block where libjpeg interpolates ("fancy upsampling"), which shows at the fixture's saturated
 * colour edges and 2-pixel checkerboard (worst case; after the resize to 24 px the difference is
 * max 9, mean 0.62). The bounds are those numbers with a little headroom.
 */
const JPEG_TOL: Record<string, { max: number; mean: number }> = {
  'jpeg-gray-61x47.jpg': { max: 1, mean: 0.1 },
  'jpeg444-120x80.jpg': { max: 3, mean: 0.6 },
  'jpeg420-120x80.jpg': { max: 80, mean: 2.5 },
  'jpeg-progressive-120x80.jpg': { max: 80, mean: 2.5 },
};
for (const name of NAMES.filter(isJpeg)) {
  test(`decode ${name} is within the stated tolerance of libjpeg-turbo`, async () => {
    const e = expected.images[name];
    const img = await decoded(name);
    assert.is(img.format, 'jpeg');
    assert.is(img.width, e.width);
    assert.is(img.height, e.height);
    const got = rgbOf(img);
    const want = unpack(e.decoded)!;
    assert.is(got.length, want.length);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < got.length; i++) { const d = Math.abs(got[i] - want[i]); max = Math.max(max, d); sum += d; }
    const mean = sum / got.length;
    const tol = JPEG_TOL[name];
    assert.ok(tol, `no tolerance stated for ${name}`);
    assert.ok(max <= tol.max && mean <= tol.mean, `${name}: max ${max} (<= ${tol.max}), mean ${mean.toFixed(3)} (<= ${tol.mean})`);
  });
}

test('16-bit gray: Pillow clips to 255 by default; high-byte keeps the range', async () => {
  const path = join(FIX, 'gray16-40x33.png');
  const pil = await decodeImageFile(path);
  const hb = await decodeImageFile(path, { gray16: 'high-byte' });
  assert.is(pil.bitDepth, 16);
  assert.is(pil.channels, 1);
  // Right half of the fixture holds values far above 255: white under Pillow's rule.
  let white = 0;
  for (let i = 0; i < pil.data.length; i++) if (pil.data[i] === 255) white++;
  assert.ok(white > pil.data.length / 3, `${white} white`);
  assert.ok(hb.data.some((v, i) => v !== pil.data[i] && v < 255));
});

const reDecodeError = (path: string) => (e: unknown) => {
  assert.instance(e, ImageDecodeError);
  const msg = (e as Error).message;
  assert.ok(msg.startsWith(path + ': '), `names the file: ${msg}`);
  assert.not.match(msg, /\n/);
  return true;
};

test('corrupt PNG, truncated JPEG, non-image and missing files: one-line errors naming the file', async () => {
  for (const [file, pattern] of [
    ['corrupt.png', /corrupt or unsupported PNG \(truncated: the IDAT chunk at byte \d+ runs past the end/],
    ['truncated.jpg', /corrupt or unsupported JPEG/],
    ['not-an-image.png', /not a PNG or JPEG file/],
    ['no-such-file.png', /cannot read \(ENOENT\)/],
  ] as const) {
    const path = join(FIX, file);
    let caught: unknown;
    try { await decodeImageFile(path); } catch (e) { caught = e; }
    assert.ok(caught, `${file} should fail`);
    reDecodeError(path)(caught);
    assert.match((caught as Error).message, pattern);
  }
});

test('PNG with bytes after IEND loads as Pillow loads it: the same pixels as without them', () => {
  const png = new Uint8Array(readFileSync(join(FIX, 'rgb-37x53.png')));
  const clean = decodeImageBytes(png, 'clean.png');
  for (const tail of [new TextEncoder().encode('appended payload, not a chunk'), new Uint8Array(3), new Uint8Array(4096).fill(0xff)]) {
    const withTail = new Uint8Array(png.length + tail.length);
    withTail.set(png);
    withTail.set(tail, png.length);
    const got = decodeImageBytes(withTail, 'tail.png');
    assert.equal([got.width, got.height, got.channels], [clean.width, clean.height, clean.channels]);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(clean.data)), `${tail.length} trailing bytes change no pixel`);
  }
});

test('decompression bombs: a small file declaring a huge image fails from its header, before decoding', async () => {
  const be32 = (v: number) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...be32(13), 0x49, 0x48, 0x44, 0x52,
    ...be32(20000), ...be32(20000), 8, 2, 0, 0, 0, 0, 0, 0, 0, ...be32(0), 0x49, 0x45, 0x4e, 0x44, 0, 0, 0, 0]);
  assert.throws(() => decodeImageBytes(png, 'bomb.png'), /bomb\.png: declares 20000 x 20000 pixels \(400\.0 megapixels\), over the limit of 89\.5/);
  // JPEG: APP0, then a baseline frame header declaring 30000 x 30000.
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    0xff, 0xc0, 0, 17, 8, 0x75, 0x30, 0x75, 0x30, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]);
  assert.throws(() => decodeImageBytes(jpeg, 'bomb.jpg'), /bomb\.jpg: declares 30000 x 30000 pixels/);
  // The limit is an option (and NEGCLIP_MAX_IMAGE_PIXELS): a real 37 x 53 image over a limit of 1000.
  const real = new Uint8Array(readFileSync(join(FIX, 'rgb-37x53.png')));
  assert.throws(() => decodeImageBytes(real, 'small.png', { maxPixels: 1000 }), /declares 37 x 53 pixels/);
  assert.is(decodeImageBytes(real, 'small.png', { maxPixels: 37 * 53 }).width, 37);
});

test('unsupported formats are named; the format is sniffed from the bytes, not the name', () => {
  const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00');
  assert.throws(() => decodeImageBytes(gif, 'x.png'), (e: Error) => e instanceof ImageDecodeError && /^x\.png: GIF images are not supported/.test(e.message));
  assert.throws(() => decodeImageBytes(new Uint8Array(0), 'empty.jpg'), (e: Error) => /^empty\.jpg: not a PNG or JPEG/.test(e.message));
  const jpg = new Uint8Array(readFileSync(join(FIX, 'jpeg444-120x80.jpg')));
  assert.is(decodeImageBytes(jpg, 'named-like-a.png').format, 'jpeg');
  // A PNG whose CRC is broken.
  const png = new Uint8Array(readFileSync(join(FIX, 'rgb-17x13.png')));
  png[40] ^= 0xff;
  assert.throws(() => decodeImageBytes(png, 'bad-crc.png'), (e: Error) => /^bad-crc\.png: corrupt or unsupported PNG/.test(e.message));
});

// ---------------------------------------------------------------------------------------------
// Resampling

for (const name of NAMES) {
  test(`resize ${name} to shortest side ${expected.size} equals Pillow BICUBIC exactly`, async () => {
    const e = expected.images[name];
    const src = await pilPixels(name);
    const t = shortestSideSize(src.width, src.height, expected.size);
    assert.equal(t, { width: e.resized.width, height: e.resized.height }, 'int(size * long / short)');
    const out = resizeBicubic(src.data, src.width, src.height, 3, t.width, t.height);
    assertBytes(out, e.resized.data, `${name} -> ${t.width}x${t.height}`);
  });
}

for (const c of expected.resize_cases) {
  test(`resize ${c.source} to ${c.width}x${c.height} equals Pillow BICUBIC exactly`, async () => {
    const src = await pilPixels(c.source);
    assertBytes(resizeBicubic(src.data, src.width, src.height, 3, c.width, c.height), c.data, `${c.source} -> ${c.width}x${c.height}`);
  });
}

test('one-channel resize equals Pillow on the L image (channels are independent)', async () => {
  const g = await decoded('gray-53x41.png');
  assert.is(g.channels, 1);
  assertBytes(resizeBicubic(g.data, g.width, g.height, 1, 24, 18), expected.gray_l_24x18, 'L 53x41 -> 24x18');
});

test('filter weights: fixed point sums to 1 within rounding; taps stay inside the image', () => {
  for (const [inSize, outSize] of [[300, 7], [13, 200], [1, 24], [500, 187], [77, 129], [129, 77]]) {
    const co = axisCoefficients(inSize, outSize);
    for (let i = 0; i < outSize; i++) {
      assert.ok(co.first[i] >= 0 && co.first[i] + co.count[i] <= inSize && co.count[i] >= 1);
      let s = 0;
      for (let j = 0; j < co.count[i]; j++) s += co.weights[i * co.taps + j];
      assert.ok(Math.abs(s - (1 << 22)) <= co.count[i], `${inSize}->${outSize} [${i}] sum ${s}`);
    }
  }
  assert.throws(() => resizeBicubic(new Uint8Array(5), 2, 2, 1, 3, 3), /needs 4 samples/);
  assert.throws(() => resizeBicubic(new Uint8Array(4), 2, 2, 1, 0, 3), /outWidth must be a positive integer/);
});

// ---------------------------------------------------------------------------------------------
// Crop, normalisation, full pipeline

test('crop offsets: torchvision rounds half to even, Hugging Face floors', () => {
  const cases: [number, number, number][] = [[0, 0, 0], [1, 0, 0], [2, 1, 1], [3, 2, 1], [5, 2, 2], [7, 4, 3], [112, 56, 56], [163, 82, 81]];
  for (const [diff, tv, hf] of cases) {
    assert.is(cropOffset(24 + diff, 24, 'torchvision'), tv, `torchvision diff ${diff}`);
    assert.is(cropOffset(24 + diff, 24, 'hf'), hf, `hf diff ${diff}`);
  }
  for (const name of NAMES) {
    const e = expected.images[name];
    const { width: w, height: h } = e.resized;
    assert.equal([cropOffset(h, 24, 'torchvision'), cropOffset(w, 24, 'torchvision')], e.crop_tv, `${name} torchvision`);
    assert.equal([cropOffset(h, 24, 'hf'), cropOffset(w, 24, 'hf')], e.crop_hf, `${name} hf`);
  }
  const img: RawImage = { width: 3, height: 4, channels: 1, data: Uint8Array.from({ length: 12 }, (_, i) => i) };
  assert.equal(Array.from(centerCrop(img, 2, 2).data), [3, 4, 6, 7]); // top 1, left round(0.5) = 0
  assert.throws(() => centerCrop(img, 5, 2), (e: Error) => e instanceof ImageInputError && /larger than the 3x4 image/.test(e.message));
});

test('CLIP size 224: 300x200 -> 336x224 -> centre 224x224 equals Pillow + torchvision', async () => {
  const c = expected.clip224;
  const src = await pilPixels(c.source);
  assert.equal(shortestSideSize(src.width, src.height, 224), { width: c.resized_width, height: c.resized_height });
  const out = resizeAndCrop(await decoded(c.source), clipImageConfig(224));
  assert.is(out.width, 224);
  assert.is(out.height, 224);
  assertBytes(out.data as Uint8Array, c.data, '224 crop');
});

for (const n of expected.normalised) {
  test(`normalised ${n.source} (${n.crop_rule} crop) within 1e-6 of float64 and of HF float32`, async () => {
    const f64 = new Float64Array(b64(n.float64).buffer);
    const f32 = new Float32Array(b64(n.hf_float32).buffer);
    const cfg = clipImageConfig(expected.size, { cropRule: n.crop_rule });
    const got = preprocessImage(await decoded(n.source), cfg);
    assert.is(got.length, 3 * 24 * 24);
    let e64 = 0;
    let e32 = 0;
    for (let i = 0; i < got.length; i++) {
      e64 = Math.max(e64, Math.abs(got[i] - f64[i]));
      e32 = Math.max(e32, Math.abs(got[i] - f32[i]));
    }
    // Rounding float64 to float32 once: half an ulp, <= 1.2e-7 for |x| < 2.2.
    assert.ok(e64 <= 1.2e-7, `vs float64: ${e64}`);
    assert.ok(e32 <= 1e-6, `vs HF float32 path: ${e32}`);
  });
}

test('batch helper: [n, 3, S, S], each slice equal to the single-image result', async () => {
  const imgs = [await decoded('rgb-37x53.png'), await decoded('gray-53x41.png'), await decoded('jpeg444-120x80.jpg'), await decoded('rgb-1x1.png')];
  const cfg = clipImageConfig(24);
  const b = preprocessBatch(imgs, cfg);
  assert.equal(b.shape, [4, 3, 24, 24]);
  const per = 3 * 24 * 24;
  imgs.forEach((img, i) => assert.equal(Array.from(b.data.subarray(i * per, (i + 1) * per)), Array.from(preprocessImage(img, cfg)), `image ${i}`));
  // RGBA input: alpha dropped, same as the RGB pixels.
  const rgba: RawImage = { width: 2, height: 1, channels: 4, data: Uint8ClampedArray.from([10, 20, 30, 0, 40, 50, 60, 255]) };
  const rgb: RawImage = { width: 2, height: 1, channels: 3, data: Uint8Array.from([10, 20, 30, 40, 50, 60]) };
  const noResize = { ...clipImageConfig(1), resize: null, crop: null };
  assert.equal(Array.from(preprocessImage(rgba, noResize)), Array.from(preprocessImage(rgb, noResize)));
  assert.is(preprocessImage(rgb, noResize)[0], Math.fround((10 / 255 - CLIP_MEAN[0]) / CLIP_STD[0]));
  assert.throws(() => preprocessBatch([rgb], noResize), (e: Error) => e instanceof ImageConfigError);
  assert.throws(() => preprocessBatch([rgb, { ...rgb, data: new Uint8Array(5) }], cfg), (e: Error) => e instanceof ImageInputError && /^batch image 1: /.test(e.message));
  const out = new Float32Array(10);
  assert.throws(() => normalizeToCHW(rgb, cfg, out, 5), /cannot hold/);
});

test('preprocessor_config.json fields', () => {
  const hf = {
    crop_size: 224, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor',
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 224,
  };
  assert.equal(imageConfigFromPreprocessorJson(hf), clipImageConfig(224, { mean: hf.image_mean as never, std: hf.image_std as never }));
  const newer = imageConfigFromPreprocessorJson({
    size: { shortest_edge: 336 }, crop_size: { height: 336, width: 300 }, image_mean: [0.5, 0.5, 0.5], image_std: 0.5,
    do_rescale: true, rescale_factor: 0.00392156862745098,
  }, { cropRule: 'hf' });
  assert.is(newer.resize, 336);
  assert.equal(newer.crop, { height: 336, width: 300 });
  assert.equal(newer.mean, [0.5, 0.5, 0.5]);
  assert.equal(newer.std, [0.5, 0.5, 0.5]);
  assert.is(newer.cropRule, 'hf');
  const exact = imageConfigFromPreprocessorJson({ size: { height: 32, width: 48 }, do_center_crop: false, do_normalize: false, do_rescale: false });
  assert.equal(exact.resize, { height: 32, width: 48 });
  assert.is(exact.crop, null);
  assert.is(exact.mean, null);
  assert.is(exact.rescale, 1);
  const img: RawImage = { width: 5, height: 4, channels: 3, data: new Uint8Array(60).fill(200) };
  const t = preprocessImage(img, exact);
  assert.is(t.length, 3 * 32 * 48);
  assert.ok(t.every((v) => v === 200));
  for (const [bad, pattern] of [
    [{ resample: 2 }, /resample = 2 is not supported/],
    [{ size: { longest_edge: 3 } }, /must be a number, \{shortest_edge\}/],
    [{ size: -1 }, /size must be a positive integer/],
    [{ image_std: [1, 0, 1] }, /image_std must be 3 finite positive numbers/],
    [{ do_resize: 'yes' }, /do_resize must be true or false/],
    [[1, 2], /must be a JSON object/],
  ] as const) {
    assert.throws(() => imageConfigFromPreprocessorJson(bad), (e: Error) => e instanceof ImageConfigError && pattern.test(e.message), JSON.stringify(bad));
  }
});

test('bad image inputs name the problem', () => {
  const ok: RawImage = { width: 2, height: 2, channels: 3, data: new Uint8Array(12) };
  assert.throws(() => preprocessImage({ ...ok, channels: 2 as never }), /channels must be 1, 3 or 4, got 2/);
  assert.throws(() => preprocessImage({ ...ok, width: 0 }), /positive integers, got 0x2/);
  assert.throws(() => preprocessImage({ ...ok, data: new Float32Array(12) as never }), /Uint8Array or Uint8ClampedArray/);
  assert.throws(() => preprocessImage({ ...ok, data: new Uint8Array(11) }), /needs 12 bytes, got 11/);
});

test.run();
