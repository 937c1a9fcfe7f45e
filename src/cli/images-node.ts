/** Node-side image loading for the CLIs: decode files and preprocess them for a CLIP model. */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MAX_CONFIG_BYTES, readFailure, readRegularTextSync } from '../io/read-file-node.js';
import { decodeImageFile } from '../models/image/decode-node.js';
import { clipImageConfig, imageConfigFromPreprocessorJson, preprocessImage, type ClipImageConfig } from '../models/image/preprocess.js';
import type { ClipConfig } from '../models/clip-config.js';

/** preprocessor_config.json from the model folder when present, else CLIP's defaults at the config's size. */
export function imageConfigFor(modelPath: string, config: ClipConfig): ClipImageConfig {
  const folder = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  const file = join(folder, 'preprocessor_config.json');
  if (!existsSync(file)) return clipImageConfig(config.vision.imageSize);
  try {
    return imageConfigFromPreprocessorJson(JSON.parse(readRegularTextSync(file, MAX_CONFIG_BYTES, 'a JSON config')));
  } catch (e) {
    throw new Error(`${file}: ${readFailure(e)}`);
  }
}

/** Decodes and preprocesses images into one [n, 3, size, size] array. */
export async function loadPixels(paths: readonly string[], cfg: ClipImageConfig, size: number): Promise<Float32Array> {
  const per = 3 * size * size;
  const out = new Float32Array(paths.length * per);
  for (let i = 0; i < paths.length; i++) {
    const px = preprocessImage(await decodeImageFile(paths[i]), cfg);
    if (px.length !== per) {
      throw new Error(`${paths[i]}: preprocessing gives ${px.length} values, the model needs 3x${size}x${size} (check preprocessor_config.json)`);
    }
    out.set(px, i * per);
  }
  return out;
}
