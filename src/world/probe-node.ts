/**
 * The linear-probe ceiling of a model's frozen image tower on a built data folder (Node side):
 * reads each split's attributes.jsonl, embeds its images once, fits one logistic regression per
 * attribute on the training split and scores it on the evaluated split.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inference, l2Normalize } from '../engine/index.js';
import type { ClipModel } from '../models/clip.js';
import type { ClipImageConfig } from '../models/image/preprocess.js';
import { loadPixels } from '../cli/images-node.js';
import { MAX_TEXT_BYTES, readFailure, readRegularTextSync } from '../io/read-file-node.js';
import { ATTRIBUTES_FILE, DatasetError, type DatasetSplit } from '../data/dataset-node.js';
import { linearProbes, type ProbeLabels, type ProbeReport } from './linear-probe.js';

interface AttributeLine {
  image: string;
  labels: Record<string, 0 | 1>;
}

/** A split's attributes.jsonl; errors name the file and line. */
export function readAttributes(splitDir: string): AttributeLine[] {
  const file = join(splitDir, ATTRIBUTES_FILE);
  if (!existsSync(file)) throw new DatasetError(file, 'missing: rebuild the data folder with this version of dist/data.js (it writes the image attributes the probe is fitted on)');
  const out: AttributeLine[] = [];
  let text: string;
  try {
    text = readRegularTextSync(file, MAX_TEXT_BYTES, 'an attributes file read whole');
  } catch (e) {
    throw new DatasetError(file, readFailure(e));
  }
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let j: { image?: unknown; labels?: unknown };
    try {
      j = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`${file}:${i + 1}`, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof j.image !== 'string' || j.image === '') throw new DatasetError(`${file}:${i + 1}`, '"image" must be a non-empty string');
    const labels = j.labels;
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw new DatasetError(`${file}:${i + 1}`, '"labels" must be an object of attribute -> 0 or 1');
    for (const [k, v] of Object.entries(labels)) {
      if (v !== 0 && v !== 1) throw new DatasetError(`${file}:${i + 1}`, `label ${JSON.stringify(k)} must be 0 or 1, got ${JSON.stringify(v)}`);
    }
    out.push({ image: j.image, labels: labels as Record<string, 0 | 1> });
  });
  return out;
}

/** Normalised image embeddings [n, projection_dim] of absolute image paths, in batches. */
async function embedPaths(model: ClipModel, paths: readonly string[], cfg: ClipImageConfig, batch = 64): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const out = new Float32Array(paths.length * dim);
  for (let s = 0; s < paths.length; s += batch) {
    const part = paths.slice(s, s + batch);
    const px = await loadPixels(part, cfg, model.config.vision.imageSize);
    const e = inference(model.ctx, () => l2Normalize(model.encodeImage(px, part.length).embeds, -1));
    out.set((await e.toArray()) as Float32Array, s * dim);
    e.dispose();
  }
  return out;
}

/** Probes fitted on `train`'s images and scored on `test`'s (any two splits of one data folder). */
export async function probeImageTower(model: ClipModel, cfg: ClipImageConfig, train: DatasetSplit, test: DatasetSplit): Promise<ProbeReport & { trainImages: number; testImages: number }> {
  const tr = readAttributes(train.dir);
  const te = readAttributes(test.dir);
  const paths = [...tr.map((a) => train.resolveImage(a.image)), ...te.map((a) => test.resolveImage(a.image))];
  const embeds = await embedPaths(model, paths, cfg);
  const rows = (list: AttributeLine[], from: number): ProbeLabels[] => list.map((a, i) => ({ row: from + i, labels: a.labels }));
  const report = linearProbes(embeds, model.config.projectionDim, rows(tr, 0), rows(te, tr.length));
  return { ...report, trainImages: tr.length, testImages: te.length };
}
