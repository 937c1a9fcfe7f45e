/** Writing 8-bit RGB images (the world's renders) as PNG files. Node-only (pngjs, fs). */
import { rename, unlink, writeFile } from 'node:fs/promises';
import { FileAccessError } from '../io/fs-errors-node.js';
import { PNG } from 'pngjs';

/** PNG bytes of 8-bit RGB pixels. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  const buf = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Temp file + rename, without the fsync of writeFileAtomic: thousands of small renders would
 * spend most of their time in fsync, and a lost render after a crash is rebuilt by rerunning.
 */
export async function writePngAtomic(path: string, image: { width: number; height: number; data: Uint8Array }): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, encodePng(image.width, image.height, image.data));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new FileAccessError(path, 'write', e);
  }
}
