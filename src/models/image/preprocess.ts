/**
 * CLIP image preprocessing, shared by Node and the browser (pure TypeScript on pixel arrays):
 * drop alpha, resize the shortest side to `size` with Pillow-exact bicubic, centre-crop, scale
 * to [0, 1], normalise per channel, and lay out as CHW float32.
 *
 * It follows OpenAI CLIP / open_clip's torchvision pipeline:
 *   Resize(size, BICUBIC) -> CenterCrop(size) -> convert RGB -> ToTensor -> Normalize(mean, std)
 * Where Hugging Face's CLIPImageProcessor differs, `cropRule` selects it:
 * - crop offset: torchvision uses round((h - crop) / 2) with Python's round-half-to-even
 *   (diff 3 -> 2, diff 5 -> 2, diff 7 -> 4); Hugging Face uses floor((h - crop) / 2) (1, 2, 3).
 *   Both agree when h - crop is even or when floor((h - crop) / 2) is even.
 * - arithmetic: torchvision and Hugging Face compute x / 255, x - mean, / std step by step in
 *   float32; here the whole expression is evaluated in float64 and rounded to float32 once
 *   (the nearest float32 to the exact value; the step-wise float32 paths differ from it by at
 *   most a few float32 ulps, about 3e-7 for CLIP's mean/std).
 * Both pipelines resize with Pillow's BICUBIC on the 8-bit image and take the long side as
 * int(size * long / short), which is reproduced exactly.
 * Alpha is dropped without compositing (Pillow's convert('RGB') on RGBA does the same);
 * grayscale is replicated into three channels.
 */
import { resizeBicubic } from './resample.js';

/** Decoded 8-bit pixels, rows top to bottom, `channels` interleaved samples per pixel. */
export interface RawImage {
  readonly width: number;
  readonly height: number;
  /** 1 = gray, 3 = RGB, 4 = RGBA (alpha is ignored). */
  readonly channels: 1 | 3 | 4;
  readonly data: Uint8Array | Uint8ClampedArray;
}

export type CropRule = 'torchvision' | 'hf';

export interface ClipImageConfig {
  /**
   * Resize target. A number resizes the shortest side to it (keeping the aspect ratio);
   * { height, width } resizes to exactly that size (Hugging Face's `size: {height, width}`).
   * null skips resizing.
   */
  readonly resize: number | { readonly height: number; readonly width: number } | null;
  /** Centre-crop size, or null for no crop. */
  readonly crop: { readonly height: number; readonly width: number } | null;
  readonly cropRule: CropRule;
  /** Multiplier applied to the 0..255 samples before normalisation (1/255 for CLIP). */
  readonly rescale: number;
  /** Per-channel mean and std (R, G, B); null skips normalisation. */
  readonly mean: readonly [number, number, number] | null;
  readonly std: readonly [number, number, number] | null;
}

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** OpenAI CLIP's preprocessing at a given input resolution (224 for ViT-B/32 and ViT-L/14). */
export function clipImageConfig(size = 224, overrides: Partial<ClipImageConfig> = {}): ClipImageConfig {
  checkSize('size', size);
  return {
    resize: size, crop: { height: size, width: size }, cropRule: 'torchvision',
    rescale: 1 / 255, mean: CLIP_MEAN, std: CLIP_STD, ...overrides,
  };
}

export class ImageConfigError extends Error {
  override name = 'ImageConfigError';
}

function checkSize(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ImageConfigError(`${what} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkTriple(what: string, v: unknown, positive: boolean): readonly [number, number, number] {
  if (typeof v === 'number') v = [v, v, v];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
    throw new ImageConfigError(`${what} must be 3 finite${positive ? ' positive' : ''} numbers, got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1], v[2]];
}

function sizeField(what: string, v: unknown): number | { height: number; width: number } {
  if (typeof v === 'number') return checkSize(what, v);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('shortest_edge' in o) {
      if ('longest_edge' in o) throw new ImageConfigError(`${what}.longest_edge is not supported`);
      return checkSize(`${what}.shortest_edge`, o.shortest_edge);
    }
    if ('height' in o || 'width' in o) {
      return { height: checkSize(`${what}.height`, o.height), width: checkSize(`${what}.width`, o.width) };
    }
  }
  throw new ImageConfigError(`${what} must be a number, {shortest_edge} or {height, width}, got ${JSON.stringify(v)}`);
}

/**
 * Reads a Hugging Face `preprocessor_config.json` (already parsed): size, crop_size,
 * image_mean, image_std, rescale_factor, resample and the do_* switches. Missing fields keep
 * CLIP's defaults. Only bicubic resampling (resample = 3) is implemented; anything else is an
 * error rather than a silent substitution. The crop rule stays torchvision's unless
 * `cropRule: 'hf'` is passed (see the module comment for where they differ).
 */
export function imageConfigFromPreprocessorJson(json: unknown, opts: { cropRule?: CropRule } = {}): ClipImageConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new ImageConfigError(`preprocessor config must be a JSON object, got ${JSON.stringify(json)?.slice(0, 60)}`);
  }
  const j = json as Record<string, unknown>;
  const flag = (k: string): boolean => {
    const v = j[k];
    if (v === undefined) return true;
    if (typeof v !== 'boolean') throw new ImageConfigError(`${k} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  if (j.resample !== undefined && j.resample !== 3) {
    throw new ImageConfigError(`resample = ${JSON.stringify(j.resample)} is not supported (only 3, bicubic)`);
  }
  if (j.do_convert_rgb === false) {
    throw new ImageConfigError('do_convert_rgb = false is not supported (CLIP expects 3-channel RGB input)');
  }
  const resize = flag('do_resize') ? sizeField('size', j.size ?? 224) : null;
  let crop: ClipImageConfig['crop'] = null;
  if (flag('do_center_crop')) {
    const c = sizeField('crop_size', j.crop_size ?? (typeof resize === 'number' ? resize : 224));
    crop = typeof c === 'number' ? { height: c, width: c } : c;
  }
  let rescale = 1;
  if (flag('do_rescale')) {
    const r = j.rescale_factor ?? 1 / 255;
    if (typeof r !== 'number' || !Number.isFinite(r) || r <= 0) throw new ImageConfigError(`rescale_factor must be a positive number, got ${JSON.stringify(r)}`);
    rescale = r;
  }
  const normalize = flag('do_normalize');
  return {
    resize, crop, rescale, cropRule: opts.cropRule ?? 'torchvision',
    mean: normalize ? checkTriple('image_mean', j.image_mean ?? CLIP_MEAN, false) : null,
    std: normalize ? checkTriple('image_std', j.image_std ?? CLIP_STD, true) : null,
  };
}

export class ImageInputError extends Error {
  override name = 'ImageInputError';
}

export function checkImage(img: RawImage, what = 'image'): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new ImageInputError(`${what}: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ImageInputError(`${what}: channels must be 1, 3 or 4, got ${channels}`);
  }
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new ImageInputError(`${what}: data must be a Uint8Array or Uint8ClampedArray`);
  }
  if (data.length !== width * height * channels) {
    throw new ImageInputError(`${what}: ${width}x${height}x${channels} needs ${width * height * channels} bytes, got ${data.length}`);
  }
}

/** Gray stays one channel (it is expanded at normalisation, which is cheaper); RGBA loses alpha. */
export function dropAlpha(img: RawImage): RawImage {
  if (img.channels !== 4) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = img.data[i * 4];
    out[i * 3 + 1] = img.data[i * 4 + 1];
    out[i * 3 + 2] = img.data[i * 4 + 2];
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/** 3-channel copy (gray replicated, alpha dropped), for callers that want RGB pixels. */
export function toRGB(img: RawImage): RawImage {
  checkImage(img);
  if (img.channels === 3) return img;
  if (img.channels === 4) return dropAlpha(img);
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = img.data[i];
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/** torchvision / Hugging Face: the short side becomes `size`, the long side int(size * long / short). */
export function shortestSideSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.floor((size * height) / width) };
  return { width: Math.floor((size * width) / height), height: size };
}

/** Pillow-exact bicubic resize of an 8-bit image (alpha must already be dropped). */
export function resizeImage(img: RawImage, width: number, height: number): RawImage {
  checkImage(img);
  if (img.channels === 4) throw new ImageInputError('resizeImage: drop alpha first (Pillow premultiplies RGBA before resizing; CLIP converts to RGB)');
  return { width, height, channels: img.channels, data: resizeBicubic(img.data, img.width, img.height, img.channels, width, height) };
}

/** Python's round() for halves: ties go to the even integer. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Top-left corner of a centred crop of `crop` pixels from `full` pixels along one axis. */
export function cropOffset(full: number, crop: number, rule: CropRule): number {
  return rule === 'hf' ? Math.floor((full - crop) / 2) : roundHalfEven((full - crop) / 2);
}

export function centerCrop(img: RawImage, height: number, width: number, rule: CropRule = 'torchvision'): RawImage {
  checkImage(img);
  if (height > img.height || width > img.width) {
    // torchvision and Hugging Face pad in this case, each differently; CLIP never needs it.
    throw new ImageInputError(`centerCrop: crop ${width}x${height} is larger than the ${img.width}x${img.height} image`);
  }
  const top = cropOffset(img.height, height, rule);
  const left = cropOffset(img.width, width, rule);
  const c = img.channels;
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * c;
    out.set(img.data.subarray(from, from + width * c), y * width * c);
  }
  return { width, height, channels: c, data: out };
}

/**
 * Writes (v * rescale - mean[c]) / std[c] as float32, CHW with 3 channels, into `out` at
 * `offset` (gray is replicated, alpha ignored). A 256-entry table per channel holds the values,
 * each computed in float64 and rounded once.
 */
export function normalizeToCHW(
  img: RawImage, cfg: Pick<ClipImageConfig, 'rescale' | 'mean' | 'std'>,
  out = new Float32Array(3 * img.width * img.height), offset = 0,
): Float32Array {
  checkImage(img);
  const plane = img.width * img.height;
  if (offset < 0 || offset + 3 * plane > out.length) {
    throw new ImageInputError(`normalizeToCHW: output of length ${out.length} cannot hold 3x${img.height}x${img.width} at offset ${offset}`);
  }
  const mean = cfg.mean ?? [0, 0, 0];
  const std = cfg.std ?? [1, 1, 1];
  const c = img.channels;
  for (let ch = 0; ch < 3; ch++) {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = (v * cfg.rescale - mean[ch]) / std[ch];
    const src = c === 1 ? 0 : ch;
    const dst = offset + ch * plane;
    for (let i = 0; i < plane; i++) out[dst + i] = lut[img.data[i * c + src]];
  }
  return out;
}

/** Resize + crop, returning the 8-bit image the normalisation sees (useful for checks and display). */
export function resizeAndCrop(img: RawImage, cfg: ClipImageConfig): RawImage {
  checkImage(img);
  let cur = dropAlpha(img);
  if (cfg.resize !== null) {
    const t = typeof cfg.resize === 'number' ? shortestSideSize(cur.width, cur.height, cfg.resize) : cfg.resize;
    cur = resizeImage(cur, t.width, t.height);
  }
  if (cfg.crop !== null) cur = centerCrop(cur, cfg.crop.height, cfg.crop.width, cfg.cropRule);
  return cur;
}

function outputSize(cfg: ClipImageConfig): { height: number; width: number } | null {
  if (cfg.crop) return cfg.crop;
  if (cfg.resize !== null && typeof cfg.resize === 'object') return cfg.resize;
  return null;
}

/** One image -> Float32Array [3, H, W] (224 x 224 for CLIP's default config). */
export function preprocessImage(img: RawImage, cfg: ClipImageConfig = clipImageConfig()): Float32Array {
  return normalizeToCHW(resizeAndCrop(img, cfg), cfg);
}

/**
 * Several images -> one Float32Array [n, 3, H, W]. The config must fix the output size
 * (a crop, or an exact {height, width} resize) so that every image has the same shape.
 */
export function preprocessBatch(
  imgs: readonly RawImage[], cfg: ClipImageConfig = clipImageConfig(),
): { data: Float32Array; shape: [number, number, number, number] } {
  const size = outputSize(cfg);
  if (!size) throw new ImageConfigError('preprocessBatch: the config must crop or resize to a fixed size so that the batch has one shape');
  const per = 3 * size.height * size.width;
  const data = new Float32Array(imgs.length * per);
  imgs.forEach((img, i) => {
    try {
      normalizeToCHW(resizeAndCrop(img, cfg), cfg, data, i * per);
    } catch (e) {
      if (e instanceof ImageInputError) throw new ImageInputError(`batch image ${i}: ${e.message}`);
      throw e;
    }
  });
  return { data, shape: [imgs.length, 3, size.height, size.width] };
}
