/**
 * Bicubic resampling of 8-bit interleaved pixels that reproduces Pillow's
 * `Image.resize(size, Image.BICUBIC)` bit for bit (checked against Pillow 9.4 in
 * test/image.test.ts). CLIP checkpoints were trained on images resized that way (torchvision's
 * Resize and Hugging Face's CLIPImageProcessor both call Pillow), so matching it exactly removes
 * one source of drift between this engine and the Python reference.
 *
 * Pillow's scheme, as implemented here:
 * - separable: a horizontal pass into an 8-bit intermediate image, then a vertical pass; a pass
 *   whose size does not change is skipped (it would be the identity anyway);
 * - cubic convolution kernel with a = -0.5 and support 2, stretched by the scale factor when
 *   shrinking (so downscaling averages over the whole footprint instead of aliasing);
 * - per output pixel the taps are clipped to the image and the weights divided by their sum;
 * - weights become fixed-point integers with 22 fractional bits (rounded half away from zero),
 *   the accumulator starts at one half, and each pass ends with floor(acc / 2^22) clamped to
 *   0..255, so the intermediate image is rounded to uint8 exactly as Pillow does.
 * Every floating-point step is done in float64 in the same order as Pillow, so the integer
 * weights come out identical.
 */

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Fixed-point filter taps for one axis: output i reads `count[i]` inputs from `first[i]`. */
export interface AxisCoefficients {
  readonly taps: number; // stride of `weights` per output pixel
  readonly first: Int32Array;
  readonly count: Int32Array;
  readonly weights: Int32Array;
}

export function axisCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const k = new Float64Array(taps);
  const inv = 1 / filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // Pillow truncates toward zero here (a C int cast), then clips to the image.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const n = hi - lo;
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const w = bicubic((j + lo - center + 0.5) * inv);
      k[j] = w;
      sum += w;
    }
    for (let j = 0; j < n; j++) {
      const w = sum !== 0 ? k[j] / sum : k[j];
      weights[i * taps + j] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[i] = lo;
    count[i] = n;
  }
  return { taps, first, count, weights };
}

function toU8(acc: number): number {
  // acc is an exact integer well inside int32, so the shift is Pillow's arithmetic shift.
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows [y0, y0 + rows) of `src` (width `inW`) into a new `outW`-wide image. */
function horizontal(src: ArrayLike<number>, inW: number, c: number, y0: number, rows: number, outW: number, co: AxisCoefficients): Uint8Array {
  const out = new Uint8Array(outW * rows * c);
  for (let y = 0; y < rows; y++) {
    const rowIn = (y0 + y) * inW * c;
    const rowOut = y * outW * c;
    for (let x = 0; x < outW; x++) {
      const w0 = x * co.taps;
      const n = co.count[x];
      const base = rowIn + co.first[x] * c;
      for (let ch = 0; ch < c; ch++) {
        let acc = HALF;
        for (let j = 0; j < n; j++) acc += src[base + j * c + ch] * co.weights[w0 + j];
        out[rowOut + x * c + ch] = toU8(acc);
      }
    }
  }
  return out;
}

/** Vertical pass: `src` rows are already offset so that row 0 is input row `rowShift`. */
function vertical(src: ArrayLike<number>, w: number, c: number, rowShift: number, outH: number, co: AxisCoefficients): Uint8Array {
  const stride = w * c;
  const out = new Uint8Array(outH * stride);
  for (let y = 0; y < outH; y++) {
    const w0 = y * co.taps;
    const n = co.count[y];
    const base = (co.first[y] - rowShift) * stride;
    for (let i = 0; i < stride; i++) {
      let acc = HALF;
      for (let j = 0; j < n; j++) acc += src[base + j * stride + i] * co.weights[w0 + j];
      out[y * stride + i] = toU8(acc);
    }
  }
  return out;
}

/**
 * Resizes interleaved 8-bit pixels (`channels` samples per pixel, rows top to bottom) to
 * outWidth x outHeight with Pillow's BICUBIC filter. Channels are filtered independently, which
 * is what Pillow does for L and RGB images (RGBA would need premultiplication first: callers
 * drop alpha before resizing, as CLIP preprocessing converts to RGB).
 */
export function resizeBicubic(
  data: ArrayLike<number>, width: number, height: number, channels: number, outWidth: number, outHeight: number,
): Uint8Array {
  for (const [name, v] of [['width', width], ['height', height], ['channels', channels], ['outWidth', outWidth], ['outHeight', outHeight]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`resizeBicubic: ${name} must be a positive integer, got ${v}`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(`resizeBicubic: ${width}x${height}x${channels} image needs ${width * height * channels} samples, got ${data.length}`);
  }
  const needH = outWidth !== width;
  const needV = outHeight !== height;
  if (!needH && !needV) return Uint8Array.from(data);
  const vco = needV ? axisCoefficients(height, outHeight) : undefined;
  let img: ArrayLike<number> = data;
  let rowShift = 0;
  if (needH) {
    const hco = axisCoefficients(width, outWidth);
    // Only the rows the vertical pass will read are resampled horizontally (as Pillow does).
    const y0 = vco ? vco.first[0] : 0;
    const y1 = vco ? vco.first[outHeight - 1] + vco.count[outHeight - 1] : height;
    img = horizontal(data, width, channels, y0, y1 - y0, outWidth, hco);
    rowShift = y0;
  }
  if (!vco) return img as Uint8Array;
  return vertical(img, outWidth, channels, rowShift, outHeight, vco);
}
