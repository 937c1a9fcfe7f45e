/**
 * Node side of the demo-page check in test/browser/run.mjs (bundled there with esbuild): what
 * the page must show for the same inputs, computed by the library on Dawn from the model's
 * folder on disk with the Node loaders, full-length token rows and worldPixels: paths
 * independent of the page's byte loader, cut token rows and browser preprocessing.
 */
import { PNG } from 'pngjs';
import { nodeContext } from '../../src/engine/node-gpu.js';
import { loadClip, loadClipTokenizer } from '../../src/models/load-node.js';
import { generateWorld, type WorldRecord } from '../../src/data/world/index.js';
import type { ClipModel } from '../../src/models/clip.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { worldPixels } from '../../src/world/world-batches.js';
import { tracePair } from '../../src/nast/trace.js';
import { readFileSync } from 'node:fs';
import { loadLora } from '../../src/models/peft-node.js';
import { parseCteReport } from '../../src/nast/cte-report-parse.js';
import { cteLayerScales } from '../../src/nast/train-bounds.js';

export interface DemoInputs {
  modelDir: string;
  captions: string[];
  worldSeed: number;
  worldIndex: number;
  /** The trace panel's pair. */
  caption: string;
  foil: string;
}

export interface DemoExpected {
  /** [images = 1][captions]: exp(logit_scale) * cos. */
  logits: number[][];
  sCorr: number;
  sFoil: number;
  /** Rows x columns of the CTE heat map: (text layers + 1) x tokens through EOT. */
  heatmapCells: number;
  /** What the world image shows. */
  truth: string;
  /** The world image as a PNG file, for the page's file input (the browser's decoder path). */
  png: Uint8Array;
}

function encodePng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  return new Uint8Array(PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
}

/** The world scene's image embedding (the caller disposes it) and its logits against the captions, from full-length token rows. */
async function sceneLogits(model: ClipModel, inp: DemoInputs): Promise<{ record: WorldRecord; image: Tensor; logits: number[] }> {
  const tok = loadClipTokenizer(inp.modelDir);
  const size = model.config.vision.imageSize;
  const [record] = generateWorld({ seed: inp.worldSeed, start: inp.worldIndex, count: 1, size });
  const img = model.encodeImage(worldPixels([record], size), 1);
  const text = model.encodeText(tok.tokenize(inp.captions, { contextLength: model.config.text.maxPositions }), inp.captions.length);
  const logits = model.logitsPerImage(img.embeds, text.embeds);
  const values = Array.from(await logits.toArray());
  for (const t of [img.pooled, text.pooled, text.embeds, logits]) t.dispose();
  return { record, image: img.embeds, logits: values };
}

export async function demoExpected(inp: DemoInputs): Promise<DemoExpected> {
  const ctx = await nodeContext();
  const model = await loadClip(ctx, inp.modelDir);
  try {
    const tok = loadClipTokenizer(inp.modelDir);
    const len = model.config.text.maxPositions;
    const { record, image, logits: values } = await sceneLogits(model, inp);
    const [cap, foil] = [tok.tokenize([inp.caption], { contextLength: len }), tok.tokenize([inp.foil], { contextLength: len })];
    const trace = await tracePair(model, image, cap, foil);
    image.dispose();
    const size = model.config.vision.imageSize;
    return {
      logits: [values],
      sCorr: trace.sCorr,
      sFoil: trace.sFoil,
      heatmapCells: trace.patched.length * trace.ids.length,
      truth: record.captions[0],
      png: encodePng(size, size, record.pixels!.data),
    };
  } finally {
    model.dispose();
  }
}

export interface ExportedChecks {
  /** [images = 1][captions] with the exported adapter applied, as embed.js --adapter computes them. */
  logits: number[][];
  /** Per-block scales from the exported cte.json, as train.js --cte derives them. */
  scales: number[];
}

/**
 * What the CLIs make of the page's downloads: the adapter folder through the loader embed.js and
 * train.js --init-adapter use, the cte.json through train.js --cte's reader and checks.
 */
export async function exportedChecks(inp: DemoInputs, adapterDir: string, ctePath: string): Promise<ExportedChecks> {
  const ctx = await nodeContext();
  const model = await loadClip(ctx, inp.modelDir);
  try {
    const set = await loadLora(model, adapterDir);
    const { image, logits: values } = await sceneLogits(model, inp);
    image.dispose();
    set.dispose();
    const report = parseCteReport(readFileSync(ctePath, 'utf8'), ctePath);
    return { logits: [values], scales: cteLayerScales(report, model.config.text.layers, report.beta, ctePath) };
  } finally {
    model.dispose();
  }
}

/**
 * A user's own data set as the page's fine-tuning panel takes it: `n` world scenes written as PNG
 * files plus a JSONL in `data.js build --from jsonl`'s format (image, captions, positives,
 * negatives), so the page sees only files, as it would a user's photos.
 */
export function userDataFiles(seed: number, n: number, size: number): { jsonl: string; images: { name: string; png: Uint8Array }[] } {
  const records = generateWorld({ seed, start: 0, count: n, size });
  const images = records.map((r, i) => ({ name: `photo-${i}.png`, png: encodePng(size, size, r.pixels!.data) }));
  const entry = (f: { condition: string; location?: string; severity?: string }) => ({ condition: f.condition, ...(f.location ? { location: f.location } : {}), ...(f.severity ? { severity: f.severity } : {}) });
  const jsonl = records.map((r, i) => JSON.stringify({
    image: `photos/${images[i].name}`, captions: r.captions,
    positives: r.facts.filter((f) => f.existence === 'present').map(entry), negatives: r.facts.filter((f) => f.existence === 'absent').map(entry),
  })).join('\n') + '\n';
  return { jsonl, images };
}

/**
 * A CheXpert-style label CSV over world scenes, as a radiology data set lays itself out: every
 * image is `view1.png` in its own study folder, so only the folder pick's paths tell them apart.
 * Each row has some conditions present (1), some absent (0), the rest blank.
 */
export function userCsvFiles(seed: number, n: number, size: number): { csv: string; images: { path: string; png: Uint8Array }[] } {
  const records = generateWorld({ seed, start: 0, count: n, size });
  const columns = ['No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia',
    'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other', 'Fracture', 'Support Devices'];
  const images = records.map((r, i) => ({ path: `scans/patient${i}/study1/view1.png`, png: encodePng(size, size, r.pixels!.data) }));
  const rows = images.map((im, i) => [im.path, ...columns.map((c, k) => (k === 0 ? '' : ['1', '0', '', '0', '1', ''][(i + k) % 6]))].join(','));
  return { csv: `Path,${columns.join(',')}\n${rows.join('\n')}\n`, images };
}
