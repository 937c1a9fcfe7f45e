/**
 * Images for the demo: files decoded by the browser (createImageBitmap, then a canvas's
 * getImageData gives 8-bit RGBA), scenes of the miniature world rendered by the library, and
 * their preprocessing for the loaded model with the project's own CLIP pipeline.
 */
import {
  generateWorld, normalizeToCHW, preprocessImage, type ClipImageConfig, type PickedImage, type RawImage, type WorldRecord,
} from './lib-entry.js';
import type { PageImage } from './app.js';

/** The world renders at even sizes in this range; other model sizes get a 224 render, resized. */
const WORLD_MIN = 24;
const WORLD_MAX = 1024;

function canvas2d(width: number, height: number): { canvas: OffscreenCanvas | HTMLCanvasElement; g: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D } {
  const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(width, height) : Object.assign(document.createElement('canvas'), { width, height });
  const g = canvas.getContext('2d', { willReadFrequently: true }) as OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D | null;
  if (!g) throw new Error('this browser gives no 2D canvas context to read image pixels with');
  return { canvas, g };
}

/** Whether a picked or dropped file is an image, by its type or its name (folder picks hold other files too). */
export function isImageFile(f: File): boolean {
  return f.type.startsWith('image/') || /\.(png|jpe?g|webp|gif|bmp|avif)$/i.test(f.name);
}

/**
 * The images of a files input and a folder input, each with the path it was picked under (a
 * file alone by its name, a folder's by its path inside the folder), for matching against a
 * data file's paths.
 */
export function pickedImageFiles(files: HTMLInputElement, folder: HTMLInputElement): PickedImage<File>[] {
  return [
    ...[...(files.files ?? [])].map((file) => ({ path: file.name, file })),
    ...[...(folder.files ?? [])].filter(isImageFile).map((file) => ({ path: file.webkitRelativePath || file.name, file })),
  ];
}

/** Decodes an image file to 8-bit RGBA with the browser's decoders (PNG, JPEG, WebP, GIF, ...). */
export async function decodeImageFile(file: Blob & { name?: string }): Promise<RawImage> {
  const name = file.name ?? 'image';
  let bmp: ImageBitmap;
  try {
    // No colour-space conversion or premultiplication: the pixels as stored, as Pillow reads them.
    bmp = await createImageBitmap(file, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch (e) {
    throw new Error(`${name}: the browser cannot decode it as an image (${(e as Error).message || 'unsupported format'})`);
  }
  try {
    const { g } = canvas2d(bmp.width, bmp.height);
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, bmp.width, bmp.height);
    return { width: d.width, height: d.height, channels: 4, data: d.data };
  } finally {
    bmp.close();
  }
}

/** The world render size for a model input size. */
export function worldRenderSize(modelSize: number | null): number {
  if (modelSize === null) return 32;
  return modelSize % 2 === 0 && modelSize >= WORLD_MIN && modelSize <= WORLD_MAX ? modelSize : 224;
}

/** Records start .. start + count - 1 of the world of `seed`, rendered at `size`. */
export function worldRecords(seed: number, start: number, count: number, size: number): WorldRecord[] {
  return generateWorld({ seed, start, count, size });
}

export function worldPageImage(r: WorldRecord, seed: number, index: number): Omit<PageImage, 'id'> {
  return { name: `world ${seed}:${index}`, truth: r.captions[0], raw: r.pixels!, world: { seed, index } };
}

function outputSize(cfg: ClipImageConfig): number | null {
  if (cfg.crop && cfg.crop.width === cfg.crop.height) return cfg.crop.width;
  if (cfg.resize !== null && typeof cfg.resize === 'object' && cfg.resize.width === cfg.resize.height) return cfg.resize.width;
  return null;
}

/**
 * [n, 3, size, size] model input. A world scene already at the model's size is only normalised
 * (as the library's worldPixels does for pretraining and evaluation); one rendered at another
 * size is rendered again at this model's size; everything else goes through the full CLIP
 * preprocessing (bicubic resize of the short side, centre crop, normalisation).
 */
export function pixelsFor(images: readonly PageImage[], cfg: ClipImageConfig, size: number): Float32Array {
  const per = 3 * size * size;
  const out = new Float32Array(images.length * per);
  images.forEach((img, i) => {
    let raw = img.raw;
    if (img.world && raw.width !== size && worldRenderSize(size) === size) {
      raw = worldRecords(img.world.seed, img.world.index, 1, size)[0].pixels!;
    }
    if (raw.width === size && raw.height === size && outputSize(cfg) === size) {
      normalizeToCHW(raw, cfg, out, i * per);
      return;
    }
    const px = preprocessImage(raw, cfg);
    if (px.length !== per) throw new Error(`${img.name}: preprocessing gives ${px.length} values, the model takes 3x${size}x${size} (check preprocessor_config.json)`);
    out.set(px, i * per);
  });
  return out;
}

/** A small canvas showing the image (nearest-neighbour when enlarging, so world pixels stay sharp). */
export function thumbnail(raw: RawImage, side = 72): HTMLCanvasElement {
  const n = raw.width * raw.height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    const c = raw.channels;
    rgba[i * 4] = raw.data[i * c];
    rgba[i * 4 + 1] = raw.data[i * c + (c === 1 ? 0 : 1)];
    rgba[i * 4 + 2] = raw.data[i * c + (c === 1 ? 0 : 2)];
    rgba[i * 4 + 3] = 255;
  }
  const full = canvas2d(raw.width, raw.height);
  full.g.putImageData(new ImageData(rgba, raw.width, raw.height), 0, 0);
  const scale = side / Math.max(raw.width, raw.height);
  const out = document.createElement('canvas');
  out.width = Math.max(1, Math.round(raw.width * scale));
  out.height = Math.max(1, Math.round(raw.height * scale));
  const g = out.getContext('2d')!;
  g.imageSmoothingEnabled = scale < 1;
  g.drawImage(full.canvas, 0, 0, out.width, out.height);
  return out;
}
