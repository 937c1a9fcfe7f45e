/**
 * CLIP similarity: captions (one per line) against images (dropped or picked files, or sampled
 * scenes of the miniature world), shown as the matrix exp(logit_scale) * cos(image, text) with
 * each image's softmax over the captions as colour.
 */
import {
  GpuTimer, WordTokenizer, concat, cutAtPool, inference, type Tensor,
} from './lib-entry.js';
import type { App, ModelState, PageImage } from './app.js';
import { decodeImageFile, isImageFile, pixelsFor, thumbnail, worldPageImage, worldRecords, worldRenderSize } from './images.js';
import { $, StaleMark, ms, setProgress, setState, setStatus, showError, yieldToPage } from './ui.js';

/** Images per vision-tower batch: bounds the activations of a large model. */
const IMAGE_CHUNK = 16;

export function captionLines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** Token ids [n, maxPositions] for the model; a caption too long for it is an error naming it. */
export function tokenizeFor(m: ModelState, texts: readonly string[]): Int32Array {
  return m.tokenizer.tokenize(texts, { contextLength: m.model.config.text.maxPositions });
}

/** Words a word-level tokenizer does not know (they become [unk]); BPE knows every text. */
export function unknownWords(m: ModelState, texts: readonly string[]): string[] {
  const tok = m.tokenizer;
  if (!(tok instanceof WordTokenizer)) return [];
  return [...new Set(texts.flatMap((t) => tok.unknownWords(t)))];
}

/** Projected image embeddings [n, E] of preprocessed pixels [n, 3, size, size] (no grad), in chunks. */
export function embedPixels(m: ModelState, px: Float32Array, n: number): Tensor {
  const size = m.model.config.vision.imageSize;
  const per = 3 * size * size;
  return inference(m.model.ctx, () => {
    const parts: Tensor[] = [];
    for (let i = 0; i < n; i += IMAGE_CHUNK) {
      const k = Math.min(IMAGE_CHUNK, n - i);
      parts.push(m.model.encodeImage(px.subarray(i * per, (i + k) * per), k).embeds);
    }
    return parts.length === 1 ? parts[0] : concat(parts, 0);
  });
}

/** Projected image embeddings [n, E] of page images. */
export function embedImages(m: ModelState, images: readonly PageImage[]): Tensor {
  return embedPixels(m, pixelsFor(images, m.imageConfig, m.model.config.vision.imageSize), images.length);
}

/**
 * Projected image embeddings [n, E] of images got (decoded, rendered) one chunk at a time, so
 * that only one chunk's pixels are ever held: a user's photos decode to full-size RGBA, tens of
 * MB each, while the frozen vision tower needs each one once.
 */
export async function embedImagesInChunks(
  m: ModelState, n: number, imageAt: (i: number) => Promise<Omit<PageImage, 'id'>> | Omit<PageImage, 'id'>,
  onChunk?: (done: number, total: number) => void,
): Promise<Tensor> {
  const parts: Tensor[] = [];
  try {
    for (let i = 0; i < n; i += IMAGE_CHUNK) {
      const chunk: PageImage[] = [];
      for (let j = i; j < Math.min(n, i + IMAGE_CHUNK); j++) chunk.push({ id: 0, ...(await imageAt(j)) });
      parts.push(embedImages(m, chunk));
      onChunk?.(Math.min(n, i + IMAGE_CHUNK), n);
      await yieldToPage();
    }
    if (parts.length === 1) return parts.pop()!;
    return inference(m.model.ctx, () => concat(parts, 0));
  } finally {
    for (const p of parts) p.dispose();
  }
}

export interface SimilarityResult {
  /** [images, captions], row-major. */
  logits: Float32Array;
  /** GPU time of the forward passes (timestamp queries), or null without them. */
  gpuMs: number | null;
}

/** exp(logit_scale) * cos for every (image, caption), as CLIPModel's logits_per_image. */
export async function similarity(m: ModelState, captions: readonly string[], images: readonly PageImage[], timer: GpuTimer | null): Promise<SimilarityResult> {
  const n = captions.length;
  const ids = tokenizeFor(m, captions);
  // The text tower is causal and pools at the end token: the padding after it never matters.
  const cut = cutAtPool(ids, n, m.model.config.text.eosTokenId).ids;
  const px = pixelsFor(images, m.imageConfig, m.model.config.vision.imageSize);
  let img: Tensor | null = null;
  let logits: Tensor;
  timer?.begin();
  try {
    img = embedPixels(m, px, images.length);
    const imageEmbeds = img;
    logits = inference(m.model.ctx, () => {
      const text = m.model.encodeText(cut, n);
      return m.model.logitsPerImage(imageEmbeds, text.embeds);
    });
  } finally {
    timer?.end();
    img?.dispose();
  }
  try {
    const values = (await logits.toArray()) as Float32Array;
    const spans = timer ? await timer.take() : [];
    // The last span is this call's (a failed call may have left one before it).
    return { logits: values, gpuMs: spans.length ? spans[spans.length - 1] : null };
  } finally {
    logits.dispose();
  }
}

function softmaxRow(v: Float32Array, at: number, n: number): number[] {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, v[at + j]);
  const e = Array.from({ length: n }, (_, j) => Math.exp(v[at + j] - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** White to the accent colour by p in [0, 1]. */
function heat(p: number): string {
  const a = [255, 255, 255];
  const b = [39, 84, 197];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * p));
  return `rgb(${c.join(', ')})`;
}

function renderMatrix(table: HTMLTableElement, captions: readonly string[], images: readonly PageImage[], logits: Float32Array): void {
  const n = captions.length;
  const head = table.tHead!.rows[0];
  head.replaceChildren(Object.assign(document.createElement('th'), { textContent: 'image \\ caption' }));
  captions.forEach((c, j) => {
    const th = document.createElement('th');
    th.textContent = c;
    th.dataset.col = String(j);
    head.append(th);
  });
  const body = table.tBodies[0];
  body.replaceChildren();
  images.forEach((img, i) => {
    const tr = body.insertRow();
    tr.dataset.row = String(i);
    const th = document.createElement('th');
    th.append(thumbnail(img.raw, 40), document.createTextNode(` ${img.name}`));
    if (img.truth) th.title = `true: ${img.truth}`;
    tr.append(th);
    const p = softmaxRow(logits, i * n, n);
    for (let j = 0; j < n; j++) {
      const v = logits[i * n + j];
      const td = tr.insertCell();
      td.dataset.value = String(v);
      td.dataset.col = String(j);
      td.style.background = heat(p[j]);
      td.style.color = p[j] > 0.55 ? 'white' : '';
      td.title = `logit ${v}; softmax over the captions ${(100 * p[j]).toFixed(2)}%`;
      td.append(document.createTextNode(v.toFixed(2)));
      const small = document.createElement('small');
      small.textContent = `${(100 * p[j]).toFixed(1)}%`;
      td.append(small);
    }
  });
  table.hidden = false;
}

export function setUpClipPanel(app: App): void {
  const section = $('#clip');
  const captionsEl = $('[data-testid="captions"]', section) as HTMLTextAreaElement;
  const drop = $('[data-testid="dropzone"]', section);
  const fileInput = $('[data-testid="image-files"]', section) as HTMLInputElement;
  const seedEl = $('[data-testid="world-seed"]', section) as HTMLInputElement;
  const countEl = $('[data-testid="world-count"]', section) as HTMLSelectElement;
  const sampleBtn = $('[data-testid="sample-world"]', section) as HTMLButtonElement;
  const clearBtn = $('[data-testid="clear-images"]', section) as HTMLButtonElement;
  const thumbs = $('[data-testid="images"]', section);
  const runBtn = $('[data-testid="similarity-run"]', section) as HTMLButtonElement;
  const status = $('[data-testid="clip-status"]', section);
  const warning = $('[data-testid="clip-warning"]', section);
  const progress = $('progress', section) as HTMLProgressElement;
  const table = $('[data-testid="similarity"]', section) as HTMLTableElement;
  const timer = GpuTimer.create(app.ctx);
  const stale = new StaleMark(app, section, status, 'matrix');

  const refresh = () => {
    stale.check();
    runBtn.disabled = app.busy !== null || !app.model;
    runBtn.title = app.model ? '' : 'load a model first';
    clearBtn.disabled = app.images.length === 0;
    const shown = [...thumbs.children].map((c) => Number((c as HTMLElement).dataset.id)).join();
    if (shown !== app.images.map((i) => i.id).join()) {
      thumbs.replaceChildren(...app.images.map((img, k) => {
        const fig = document.createElement('figure');
        fig.dataset.id = String(img.id);
        const cap = document.createElement('figcaption');
        cap.textContent = `#${k + 1} ${img.name}`;
        if (img.truth) {
          const t = document.createElement('span');
          t.className = 'truth';
          t.textContent = img.truth;
          cap.append(document.createElement('br'), t);
        }
        const x = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: `remove ${img.name}`, className: 'remove' });
        x.addEventListener('click', () => app.removeImage(img.id));
        fig.append(thumbnail(img.raw), cap, x);
        return fig;
      }));
    }
  };
  app.onChange(refresh);
  refresh();

  async function addFiles(files: readonly File[]): Promise<void> {
    const images = files.filter(isImageFile);
    if (images.length < files.length) showError('Images', `${files.length - images.length} of the dropped files are not images and were left out: ${files.filter((f) => !images.includes(f)).map((f) => f.name).slice(0, 5).join(', ')}`, section);
    let added = 0;
    for (const [k, f] of images.entries()) {
      setStatus(status, `decoding ${f.name} (${k + 1} of ${images.length})…`, true);
      try {
        app.addImage({ name: f.name, raw: await decodeImageFile(f) });
        added++;
      } catch (e) {
        showError('Images', e, section);
      }
    }
    setStatus(status, `${added} image${added === 1 ? '' : 's'} added.`);
  }

  fileInput.addEventListener('change', () => {
    const files = [...(fileInput.files ?? [])];
    fileInput.value = '';
    void addFiles(files);
  });
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    void addFiles([...(ev.dataTransfer?.files ?? [])]);
  });

  sampleBtn.addEventListener('click', () => {
    try {
      const seed = Number(seedEl.value);
      if (!Number.isInteger(seed) || seed < 0) throw new Error(`world seed must be a non-negative integer, got ${JSON.stringify(seedEl.value)}`);
      const count = Number(countEl.value);
      // Continue the seed's sequence, so repeated clicks give new scenes.
      const start = app.images.filter((i) => i.world?.seed === seed).reduce((m, i) => Math.max(m, i.world!.index + 1), 0);
      const size = worldRenderSize(app.model?.model.config.vision.imageSize ?? null);
      for (const [k, r] of worldRecords(seed, start, count, size).entries()) app.addImage(worldPageImage(r, seed, start + k));
      setStatus(status, `${count} world scene${count === 1 ? '' : 's'} rendered (seed ${seed}, from index ${start}, ${size}x${size} px); hover a thumbnail's caption for what it shows.`);
    } catch (e) {
      showError('World images', e, section);
    }
  });
  clearBtn.addEventListener('click', () => app.clearImages());

  runBtn.addEventListener('click', async () => {
    const m = app.model;
    if (!m) return;
    const captions = captionLines(captionsEl.value);
    const images = [...app.images];
    warning.hidden = true;
    if (captions.length === 0 || images.length === 0) {
      setStatus(status, captions.length === 0 ? 'Type at least one caption (one per line).' : 'Add at least one image: drop files, pick them, or sample world images.');
      return;
    }
    setState(section, 'running');
    try {
      await app.exclusive('similarity', async () => {
        const unk = unknownWords(m, captions);
        if (unk.length) {
          warning.textContent = `The model's word-level tokenizer does not know ${unk.map((w) => JSON.stringify(w)).join(', ')}: ${unk.length === 1 ? 'it is' : 'they are'} read as [unk].`;
          warning.hidden = false;
        }
        setStatus(status, `encoding ${images.length} image${images.length === 1 ? '' : 's'} and ${captions.length} caption${captions.length === 1 ? '' : 's'}…`, true);
        setProgress(progress, 0);
        await yieldToPage();
        const t0 = performance.now();
        const r = await similarity(m, captions, images, timer);
        const wall = performance.now() - t0;
        renderMatrix(table, captions, images, r.logits);
        table.dataset.model = m.name;
        stale.fresh();
        const gpu = r.gpuMs !== null ? `, GPU time ${ms(r.gpuMs)} (timestamp queries)` : ', no timestamp queries on this device for a GPU time';
        setStatus(status, `${images.length}×${captions.length} similarities in ${ms(wall)}${gpu}; model ${m.name}${m.lora ? ' with its LoRA adapter' : ''}.`);
      });
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, 'Similarity failed (see the error below).');
      showError('CLIP similarity', e, section);
    } finally {
      setProgress(progress, null);
    }
  });
}
