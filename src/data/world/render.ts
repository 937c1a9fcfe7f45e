/**
 * Rasterisation: each shape is an inside test at pixel centres in integer arithmetic (centres at
 * odd multiples of 1/(2 * extent)), so every engine draws the same pixels, with flat colours and
 * no anti-aliasing: a pixel either has an object's exact colour or the background's.
 */
import type { RawImage } from '../../models/image/preprocess.js';
import { BACKGROUND_RGB, COLOUR_RGB, type Shape } from './vocab.js';
import type { WorldObject, WorldScene } from './scene.js';

/** 8-bit RGB pixels, rows top to bottom (HWC); usable wherever a decoded image is. */
export interface WorldImage extends RawImage {
  readonly channels: 3;
  readonly data: Uint8Array;
}

/** Whether the pixel centre (u, v), in units where the box spans [0, 2e], is inside the shape. */
function inside(shape: Shape, u: number, v: number, e: number): boolean {
  const du = Math.abs(u - e);
  const dv = Math.abs(v - e);
  switch (shape) {
    case 'square':
      return true;
    case 'circle':
      return du * du + dv * dv <= e * e;
    case 'diamond':
      return du + dv <= e;
    case 'cross':
      // Arms a third of the box wide.
      return 3 * du <= e || 3 * dv <= e;
    case 'triangle':
      // Apex at the top centre, base along the bottom edge.
      return 2 * du <= v;
  }
}

const maskCache = new Map<string, Uint8Array>();

/** extent x extent mask, row-major, 1 inside the shape. */
export function shapeMask(shape: Shape, extent: number): Uint8Array {
  const key = `${shape}:${extent}`;
  let m = maskCache.get(key);
  if (!m) {
    m = new Uint8Array(extent * extent);
    for (let j = 0; j < extent; j++) {
      for (let i = 0; i < extent; i++) m[j * extent + i] = inside(shape, 2 * i + 1, 2 * j + 1, extent) ? 1 : 0;
    }
    maskCache.set(key, m);
  }
  return m;
}

/** Flat pixel indices (y * size + x) an object covers, in row-major order. */
export function objectPixels(o: WorldObject, imageSize: number): number[] {
  const m = shapeMask(o.shape, o.extent);
  const out: number[] = [];
  for (let j = 0; j < o.extent; j++) {
    for (let i = 0; i < o.extent; i++) if (m[j * o.extent + i]) out.push((o.y + j) * imageSize + o.x + i);
  }
  return out;
}

export function renderScene(scene: WorldScene): WorldImage {
  const n = scene.size * scene.size;
  const data = new Uint8Array(n * 3);
  const [br, bg, bb] = BACKGROUND_RGB;
  for (let p = 0; p < n; p++) {
    data[3 * p] = br;
    data[3 * p + 1] = bg;
    data[3 * p + 2] = bb;
  }
  for (const o of scene.objects) {
    const [r, g, b] = COLOUR_RGB[o.colour];
    for (const p of objectPixels(o, scene.size)) {
      data[3 * p] = r;
      data[3 * p + 1] = g;
      data[3 * p + 2] = b;
    }
  }
  return { width: scene.size, height: scene.size, channels: 3, data };
}
