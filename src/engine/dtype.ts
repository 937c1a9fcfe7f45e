import { Float16Array } from '@petamoriken/float16';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'u32'];

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f16' ? 2 : 4;
}

/** The array type a tensor of this dtype reads back as (f16 is widened to f32). */
export type HostArray = Float32Array | Int32Array | Uint32Array;

export type HostData = HostArray | Float64Array | readonly number[];

/** Encodes host numbers into the little-endian bytes of `dtype`, padded to a multiple of 4 bytes. */
export function encodeHost(data: HostData, dtype: DType): Uint8Array {
  const n = data.length;
  const bytes = new Uint8Array(Math.max(4, Math.ceil((n * bytesPerElement(dtype)) / 4) * 4));
  switch (dtype) {
    case 'f32': new Float32Array(bytes.buffer, 0, n).set(data as ArrayLike<number>); break;
    case 'i32': new Int32Array(bytes.buffer, 0, n).set(data as ArrayLike<number>); break;
    case 'u32': new Uint32Array(bytes.buffer, 0, n).set(data as ArrayLike<number>); break;
    case 'f16': {
      const h = new Float16Array(n);
      h.set(data as ArrayLike<number>);
      bytes.set(new Uint8Array(h.buffer, 0, n * 2));
      break;
    }
  }
  return bytes;
}

/** Decodes `n` elements of `dtype` from raw bytes. */
export function decodeHost(bytes: ArrayBuffer, n: number, dtype: DType): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(bytes.slice(0, n * 4));
    case 'i32': return new Int32Array(bytes.slice(0, n * 4));
    case 'u32': return new Uint32Array(bytes.slice(0, n * 4));
    case 'f16': return Float32Array.from(new Float16Array(bytes.slice(0, n * 2)));
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f16';
}
