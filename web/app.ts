/**
 * What the demo's panels share: the GPU context, the loaded model (with its LoRA adapter, once
 * trained), the images, and the CTE scales of the last trace. One GPU job runs at a time
 * (loading, similarity, tracing, training): a model must not be swapped or freed under a
 * running job, and the panels' buttons say so by being disabled while one runs.
 */
import { adapterFiles, loadLoraFromBytes, type ClipImageConfig, type ClipModel, type GpuContext, type LoraSet, type RawImage, type Tokenizer } from './lib-entry.js';

export interface ModelState {
  /** Where it came from ("embedded tiny-world", a folder name). */
  name: string;
  model: ClipModel;
  tokenizer: Tokenizer;
  imageConfig: ClipImageConfig;
  /** The LoRA adapter the fine-tuning panel trained, attached to the model; null: the base model. */
  lora: { set: LoraSet; steps: number; scales: 'uniform' | 'cte'; origin?: string } | null;
}

export interface PageImage {
  id: number;
  name: string;
  /** What the image shows, when known (a world scene's first caption). */
  truth?: string;
  /** Pixels as decoded or rendered (preprocessed for the model only when used). */
  raw: RawImage;
  /** A world scene can be re-rendered at another model's input size. */
  world?: { seed: number; index: number };
}

/** Per-block gradient scales from the trace panel, for the fine-tuning panel. */
export interface CteScales {
  /** One per text-encoder block: alpha_{l+1}^beta. */
  scales: number[];
  /** The pair they came from (or the cte.json file), for display. */
  caption: string;
  foil: string;
  /** Traced pairs the scales average over (1 for the trace panel's own pair). */
  pairs: number;
  /** The model they were traced on: scales of another model do not apply. */
  model: ClipModel;
}

export class BusyError extends Error {
  constructor(running: string, wanted: string) {
    super(`${wanted}: wait until "${running}" has finished (one GPU job at a time)`);
    this.name = 'BusyError';
  }
}

export class App {
  model: ModelState | null = null;
  images: PageImage[] = [];
  cte: CteScales | null = null;
  /** Counts changes of the model or its adapter: results made at another version are stale. */
  version = 0;
  private running: string | null = null;
  private nextImageId = 1;
  private readonly listeners = new Set<() => void>();

  constructor(readonly ctx: GpuContext) {}

  /** Called after every change of model, images, scales or job; panels refresh their controls. */
  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  changed(): void {
    for (const fn of this.listeners) fn();
  }

  get busy(): string | null {
    return this.running;
  }

  /** Runs one GPU job; refuses (with a BusyError) while another runs. */
  async exclusive<T>(label: string, fn: () => Promise<T>): Promise<T> {
    if (this.running) throw new BusyError(this.running, label);
    this.running = label;
    document.body.dataset.busy = label;
    this.changed();
    try {
      return await fn();
    } finally {
      this.running = null;
      delete document.body.dataset.busy;
      this.changed();
    }
  }

  addImage(img: Omit<PageImage, 'id'>): PageImage {
    const full = { ...img, id: this.nextImageId++ };
    this.images.push(full);
    this.changed();
    return full;
  }

  removeImage(id: number): void {
    this.images = this.images.filter((i) => i.id !== id);
    this.changed();
  }

  clearImages(): void {
    this.images = [];
    this.changed();
  }

  /** Frees the current model (and its adapter) and installs `next`. */
  setModel(next: ModelState | null): void {
    if (this.model) {
      this.model.lora?.set.dispose();
      this.model.model.dispose();
    }
    this.model = next;
    this.cte = null;
    this.version++;
    this.changed();
  }

  /**
   * Takes the current model's adapter off (a model holds one at a time) and returns what puts it
   * back: it is kept as PEFT bytes, so a failed load or run that replaces it loses nothing.
   * The restore does nothing once another adapter or model is in place. Null without an adapter.
   */
  async detachAdapter(): Promise<(() => void) | null> {
    const m = this.model;
    const previous = m?.lora;
    if (!m || !previous) return null;
    const backup = await adapterFiles(previous.set);
    previous.set.dispose();
    m.lora = null;
    this.adapterChanged();
    return () => {
      if (m.lora || this.model !== m) return;
      m.lora = { ...previous, set: loadLoraFromBytes(m.model, backup.config, backup.weights) };
      this.adapterChanged();
    };
  }

  /** After the model's adapter was attached, replaced or removed. */
  adapterChanged(): void {
    this.version++;
    this.changed();
  }
}
