/**
 * Node-side image decoding (PNG via pngjs, JPEG via jpeg-js) into the 8-bit pixels that
 * Pillow's `Image.open(path).convert('RGB')` produces, so that the preprocessing that follows
 * sees what the Python reference pipeline sees. Browsers decode with their own APIs instead.
 *
 * Pillow's rules, reproduced here (verified against Pillow 9.4 in test/image.test.ts):
 * - 8-bit gray / RGB / palette: the samples (palette entries) themselves; gray is returned as
 *   one channel, which preprocessing replicates.
 * - 1, 2, 4-bit gray: scaled to 0..255 (x 255, 85, 17).
 * - alpha (RGBA, gray+alpha, palette or single-colour tRNS transparency) is dropped without
 *   compositing: a fully transparent pixel keeps its stored colour.
 * - 16-bit RGB, RGBA and gray+alpha: the high byte of each sample (v >> 8).
 * - 16-bit gray: Pillow opens it as a 32-bit integer image and convert('RGB') CLIPS each value
 *   to 0..255, so every sample >= 255 becomes white. That is what the Python pipeline feeds
 *   CLIP, so it is the default (`gray16: 'pil'`); `gray16: 'high-byte'` keeps the full range
 *   (v >> 8, like the other 16-bit modes) for data that was never meant for Pillow, such as
 *   16-bit radiographs. `bitDepth` in the result tells callers the source had 16 bits.
 * - gAMA / iCCP / EXIF orientation are ignored, as Pillow's open + convert ignores them.
 * JPEG: jpeg-js (baseline and progressive; gray and YCbCr) is not libjpeg-turbo: its IDCT and
 * colour conversion differ by a level or two, and it upsamples subsampled chroma by replication
 * where libjpeg interpolates, so 4:2:0 images differ more along colour edges (test/image.test.ts
 * states the measured differences). CMYK/YCCK JPEGs decode, but through jpeg-js's CMYK formula,
 * which is not Pillow's; they are not checked against Pillow. Gray JPEGs come back as 3 channels.
 */
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import { openRegular, readAt, readFailure } from '../../io/read-file-node.js';
import type { RawImage } from './preprocess.js';

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
  constructor(readonly source: string, reason: string) {
    super(`${source}: ${reason}`);
  }
}

export interface DecodeOptions {
  /** 16-bit grayscale PNG rule: 'pil' (clip to 255, Pillow's behaviour) or 'high-byte'. */
  readonly gray16?: 'pil' | 'high-byte';
  /**
   * Most pixels an image may declare (default MAX_IMAGE_PIXELS, or NEGCLIP_MAX_IMAGE_PIXELS):
   * checked in the header before decoding, so a small file declaring a huge image fails at once.
   */
  readonly maxPixels?: number;
}

/**
 * Pillow's MAX_IMAGE_PIXELS (89.5 megapixels, about 9459 x 9459): where Pillow starts warning of
 * a decompression bomb, we stop. A 20000 x 20000 PNG of 1 MB would otherwise take 5 GB and 30 s.
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

function pixelLimit(opts: DecodeOptions): number {
  if (opts.maxPixels !== undefined) return opts.maxPixels;
  const env = process.env.NEGCLIP_MAX_IMAGE_PIXELS;
  if (env === undefined || env === '') return MAX_IMAGE_PIXELS;
  const n = Number(env);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`NEGCLIP_MAX_IMAGE_PIXELS: expected a positive number of pixels, got ${JSON.stringify(env)}`);
  return n;
}

/** Width and height from a JPEG's start-of-frame marker, without decoding; null if none is found. */
function jpegSize(b: Uint8Array): { width: number; height: number } | null {
  let p = 2;
  while (p + 9 < b.length) {
    if (b[p] !== 0xff) return null;
    const m = b[p + 1];
    if (m === 0xff) { p++; continue; }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; }
    const len = (b[p + 2] << 8) | b[p + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      return { height: (b[p + 5] << 8) | b[p + 6], width: (b[p + 7] << 8) | b[p + 8] };
    }
    if (m === 0xda) return null; // scan data before any frame header: let the decoder complain
    p += 2 + len;
  }
  return null;
}

export interface DecodedImage extends RawImage {
  readonly channels: 1 | 3;
  readonly format: 'png' | 'jpeg';
  /** Bits per sample in the file (1, 2, 4, 8 or 16). */
  readonly bitDepth: number;
}

interface JpegDecoded { width: number; height: number; data: Uint8Array }
type JpegDecode = (data: Uint8Array, opts: Record<string, unknown>) => JpegDecoded;
// jpeg-js ships no type declarations; this is the one function used.
const jpegDecode = (createRequire(import.meta.url)('jpeg-js') as { decode: JpegDecode }).decode;

const PNG_SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(b: Uint8Array, sig: readonly number[]): boolean {
  return b.length >= sig.length && sig.every((v, i) => b[i] === v);
}

function sniff(b: Uint8Array): 'png' | 'jpeg' | string {
  if (startsWith(b, PNG_SIG)) return 'png';
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'jpeg';
  const ascii = (from: number, n: number) => String.fromCharCode(...b.subarray(from, from + n));
  if (ascii(0, 4) === 'GIF8') return 'GIF';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') return 'WebP';
  if (ascii(0, 2) === 'BM') return 'BMP';
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return 'TIFF';
  if (ascii(4, 4) === 'ftyp') return 'HEIF/AVIF';
  if (ascii(128, 4) === 'DICM') return 'DICOM';
  return '';
}

interface PngHeader { width: number; height: number; depth: number; colorType: number }

/**
 * Reads IHDR, checks that no chunk runs past the end of the file (pngjs's own message for that
 * is cryptic), drops anything after IEND, and removes gray/RGB tRNS chunks: pngjs zeroes the colour of pixels that match the
 * transparent colour, but Pillow's convert('RGB') keeps it, and alpha is dropped anyway.
 */
function pngHeaderAndStrip(b: Uint8Array): { header: PngHeader; bytes: Uint8Array } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 33 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') throw new Error('missing IHDR chunk');
  const header = { width: dv.getUint32(16), height: dv.getUint32(20), depth: b[24], colorType: b[25] };
  const dropTrns = header.colorType === 0 || header.colorType === 2;
  const keep: Uint8Array[] = [b.subarray(0, 8)];
  let stripped = false;
  let p = 8;
  while (p < b.length) {
    const type = p + 8 <= b.length ? String.fromCharCode(...b.subarray(p + 4, p + 8)) : '?';
    const end = p + 8 <= b.length ? p + 12 + dv.getUint32(p) : Infinity;
    if (end > b.length) throw new Error(`truncated: the ${type} chunk at byte ${p} runs past the end of the ${b.length}-byte file`);
    if (dropTrns && type === 'tRNS') stripped = true;
    else keep.push(b.subarray(p, end));
    p = end;
    if (type === 'IEND') break;
  }
  // Bytes after IEND (an appended payload, padding from a transfer) are not the image's: Pillow
  // ignores them, pngjs would fail on them.
  if (!stripped) return { header, bytes: b.subarray(0, Math.min(p, b.length)) };
  const out = new Uint8Array(keep.reduce((s, k) => s + k.length, 0));
  let o = 0;
  for (const k of keep) { out.set(k, o); o += k.length; }
  return { header, bytes: out };
}

function decodePng(b: Uint8Array, opts: DecodeOptions): DecodedImage {
  const { header, bytes } = pngHeaderAndStrip(b);
  // skipRescale: pngjs would round 16-bit samples to v / 257; Pillow takes the high byte (or clips).
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: true });
  const { width, height } = png;
  const depth = header.depth;
  const src = png.data as unknown as ArrayLike<number>; // RGBA; Uint16Array when depth is 16
  const n = width * height;
  const gray = header.colorType === 0 || header.colorType === 4;
  const c = gray ? 1 : 3;
  const data = new Uint8Array(n * c);
  let map: (v: number) => number;
  if (depth === 16) {
    map = header.colorType === 0 && (opts.gray16 ?? 'pil') === 'pil' ? (v) => Math.min(v, 255) : (v) => v >> 8;
  } else if (depth < 8 && header.colorType === 0) {
    const mul = 255 / ((1 << depth) - 1);
    map = (v) => v * mul;
  } else {
    map = (v) => v;
  }
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) data[i * c + ch] = map(src[i * 4 + ch]);
  }
  return { width, height, channels: c, data, format: 'png', bitDepth: depth };
}

function decodeJpeg(b: Uint8Array): DecodedImage {
  // tolerantDecoding off: a truncated or damaged file is an error, as it is for Pillow by default.
  const img = jpegDecode(b, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false });
  return { width: img.width, height: img.height, channels: 3, data: img.data, format: 'jpeg', bitDepth: 8 };
}

/** 'png' or 'jpeg' from the first bytes, or throws naming what the file is instead. */
function formatOf(head: Uint8Array, source: string): 'png' | 'jpeg' {
  const kind = sniff(head);
  if (kind === 'png' || kind === 'jpeg') return kind;
  const what = kind ? `${kind} images are not supported` : 'not a PNG or JPEG file';
  throw new ImageDecodeError(source, `${what} (only PNG and JPEG can be decoded)`);
}

/** The size the header declares (null where the bytes given hold none), checked against the pixel limit. */
function declaredSize(kind: 'png' | 'jpeg', head: Uint8Array, source: string, limit: number): { width: number; height: number } | null {
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const declared = kind === 'jpeg' ? jpegSize(head) : head.length >= 24 ? { width: dv.getUint32(16), height: dv.getUint32(20) } : null;
  if (declared && declared.width * declared.height > limit) {
    throw new ImageDecodeError(source, `declares ${declared.width} x ${declared.height} pixels (${(declared.width * declared.height / 1e6).toFixed(1)} megapixels), over the limit of ${(limit / 1e6).toFixed(1)} (a decompression bomb, or set NEGCLIP_MAX_IMAGE_PIXELS to allow it)`);
  }
  return declared;
}

/** Decodes PNG or JPEG bytes (the format is sniffed from the content, not the name). */
export function decodeImageBytes(bytes: Uint8Array, source = '<bytes>', opts: DecodeOptions = {}): DecodedImage {
  const kind = formatOf(bytes, source);
  declaredSize(kind, bytes, source, pixelLimit(opts));
  let img: DecodedImage;
  try {
    img = kind === 'png' ? decodePng(bytes, opts) : decodeJpeg(bytes);
  } catch (e) {
    const msg = String((e as Error).message ?? e).split('\n')[0];
    throw new ImageDecodeError(source, `corrupt or unsupported ${kind.toUpperCase()} (${msg})`);
  }
  if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * img.channels) {
    throw new ImageDecodeError(source, `corrupt ${kind.toUpperCase()}: decoded ${img.width}x${img.height} with ${img.data.length} bytes`);
  }
  return img;
}

/**
 * Bytes of the file's start that decodeImageFile reads before the rest: the magic bytes, PNG's
 * IHDR, and a JPEG's frame header behind ordinary metadata (EXIF, ICC and XMP segments).
 */
const HEAD_BYTES = 1 << 20;

/**
 * Most bytes an image file of `pixels` may have: a PNG stores at most 8 bytes a pixel (16-bit
 * RGBA) before compression, a JPEG less; 16 leaves room for framing, and 64 MiB for metadata.
 */
export function maxImageFileBytes(pixels: number): number {
  return 16 * pixels + 64 * 1024 * 1024;
}

/**
 * Reads and decodes an image file. Only a regular file is opened; its first bytes must be a PNG
 * or JPEG whose declared size is within the pixel limit, and the file no larger than such an
 * image needs, before the rest is read.
 */
export async function decodeImageFile(path: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const limit = pixelLimit(opts);
  let file: Awaited<ReturnType<typeof openRegular>>;
  try {
    file = await openRegular(path);
  } catch (e) {
    throw new ImageDecodeError(path, readFailure(e));
  }
  const { fh, size } = file;
  let bytes: Uint8Array;
  try {
    const head = await readAt(fh, 0, Math.min(size, HEAD_BYTES));
    const declared = declaredSize(formatOf(head, path), head, path, limit);
    const pixels = declared ? declared.width * declared.height : limit;
    if (size > maxImageFileBytes(pixels)) {
      const dims = declared ? `a ${declared.width} x ${declared.height} image` : `an image within the pixel limit`;
      throw new ImageDecodeError(path, `${size} bytes, more than ${dims} needs (${maxImageFileBytes(pixels)} bytes at most): not read`);
    }
    bytes = size <= head.length ? head : await readAt(fh, 0, size);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    await fh.close();
  }
  return decodeImageBytes(bytes, path, opts);
}
