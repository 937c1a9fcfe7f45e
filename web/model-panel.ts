/**
 * Loads a CLIP model: the embedded tiny model (models/tiny-world, fetched from the site) or a
 * folder or files the user picks (config.json; model.safetensors, pytorch_model.bin, either one
 * sharded, or an open_clip / NegBench .pt; tokenizer files; optional preprocessor_config.json).
 * Only the files the loader uses are read from a picked folder.
 */
import {
  ClipTokenizer, WordTokenizer, adapterZip, isModelFileName, isWeightsFileName, loadClipFromFiles, loadLoraFromPicked, modelFileMap, weightFilesToRead, type LoadedClip,
} from './lib-entry.js';
import type { App, ModelState } from './app.js';
import { $, download, ms, setFacts, setProgress, setState, setStatus, showError } from './ui.js';

/** The embedded model's files, relative to the page (build-web copies them into the site). */
export const EMBEDDED_DIR = 'models/tiny-world/';
const EMBEDDED_FILES = ['config.json', 'model.safetensors', 'preprocessor_config.json', 'word_tokenizer.json'];
/** OpenAI's CLIP BPE vocabulary (MIT), which build-web copies into the site as the CLI ships it. */
export const BUNDLED_VOCAB = 'models/openai-bpe/bpe_simple_vocab_16e6.txt.gz';

/** fetch() into bytes, reporting bytes received (and the total when the server sends it). */
async function fetchBytes(url: string, onBytes: (got: number, total: number) => void): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`${url}: could not be fetched (${(e as Error).message})`);
  }
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText} (is the site built with \`npm run build:web\`?)`);
  const total = Number(res.headers.get('Content-Length') ?? 0);
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const parts: Uint8Array[] = [];
  let got = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.byteLength;
    onBytes(got, total);
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

export function modelFacts(m: ModelState, loadMs: number | null): [string, string][] {
  const c = m.model.config;
  const t = c.text;
  const v = c.vision;
  let params = 0;
  for (const p of m.model.params.values()) params += p.size;
  const tok = m.tokenizer instanceof WordTokenizer ? `word level, ${m.tokenizer.vocabSize} ids` : `byte-level BPE, ${m.tokenizer.vocabSize} ids`;
  const ic = m.imageConfig;
  const resize = ic.resize === null ? 'no resize' : typeof ic.resize === 'number' ? `short side to ${ic.resize}` : `${ic.resize.width}x${ic.resize.height}`;
  const rows: [string, string][] = [
    ['model', m.name],
    ['text encoder', `${t.layers} layers, width ${t.hiddenSize}, ${t.heads} heads, ${t.maxPositions} positions, ${t.activation}`],
    ['vision encoder', `${v.layers} layers, width ${v.hiddenSize}, ${v.heads} heads, ${v.imageSize}x${v.imageSize} px in ${v.patchSize}-px patches`],
    ['projection', `${c.projectionDim}`],
    ['parameters', `${params.toLocaleString('en')} (f32, ${mib(params * 4)} on the GPU)`],
    ['tokenizer', tok],
    ['image preprocessing', `${resize}, ${ic.crop ? `crop ${ic.crop.width}x${ic.crop.height}` : 'no crop'}, bicubic, CLIP normalisation${ic.mean ? ` (mean ${ic.mean.map((x) => x.toFixed(3)).join('/')})` : ' off'}`],
    ['adapter', m.lora ? `LoRA r=${m.lora.set.spec.rank} on ${m.lora.set.spec.targets.join('/')}, ${m.lora.origin ?? `${m.lora.steps} steps (${m.lora.scales === 'cte' ? 'CTE-scaled' : 'uniform'})`}; every panel now uses it` : 'none (base model)'],
  ];
  if (loadMs !== null) rows.push(['load time', ms(loadMs)]);
  return rows;
}

export function setUpModelPanel(app: App): void {
  const section = $('#model');
  const embedded = $('[data-testid="model-embedded"]', section) as HTMLButtonElement;
  const folder = $('[data-testid="model-folder"]', section) as HTMLInputElement;
  const files = $('[data-testid="model-files"]', section) as HTMLInputElement;
  const removeAdapter = $('[data-testid="model-remove-adapter"]', section) as HTMLButtonElement;
  const exportAdapter = $('[data-testid="adapter-export"]', section) as HTMLButtonElement;
  const importAdapter = $('[data-testid="adapter-import"]', section) as HTMLInputElement;
  const status = $('[data-testid="model-status"]', section);
  const progress = $('progress', section) as HTMLProgressElement;
  const info = $('[data-testid="model-info"]', section);
  let lastLoadMs: number | null = null;

  const refresh = () => {
    const busy = app.busy !== null;
    embedded.disabled = busy;
    folder.disabled = busy;
    files.disabled = busy;
    removeAdapter.hidden = !app.model?.lora;
    removeAdapter.disabled = busy;
    exportAdapter.disabled = busy || !app.model?.lora;
    exportAdapter.title = app.model?.lora ? '' : 'train or load an adapter first';
    importAdapter.disabled = busy || !app.model;
    if (app.model) setFacts(info, modelFacts(app.model, lastLoadMs));
    else setFacts(info, []);
    document.body.dataset.model = app.model ? 'ready' : 'none';
  };
  app.onChange(refresh);
  refresh();

  async function load(label: string, read: () => Promise<Map<string, Uint8Array>>): Promise<void> {
    if (app.model?.lora && !app.busy && !confirm(`Loading ${label} replaces ${app.model.name} and drops its LoRA adapter (${app.model.lora.origin ?? `${app.model.lora.steps} steps`}); download the adapter first to keep it. Load ${label}?`)) {
      setStatus(status, `${label}: not loaded; ${app.model.name} and its adapter stay.`);
      return;
    }
    setState(section, 'running');
    try {
      await app.exclusive(`loading ${label}`, async () => {
        const t0 = performance.now();
        const bytes = await read();
        setStatus(status, `${label}: uploading the weights…`, true);
        // The current model (and its adapter) stays until the new one has loaded, so a failed
        // load loses nothing; both are on the GPU for that moment.
        const loaded: LoadedClip = await loadClipFromFiles(app.ctx, bytes, {
          source: label,
          onProgress: (done, total) => setProgress(progress, done, total),
          // As the CLI does for a folder without tokenizer files: CLIP's own vocabulary.
          fallbackTokenizer: async () => {
            setStatus(status, `${label}: no tokenizer files; fetching the bundled CLIP vocabulary…`, true);
            return ClipTokenizer.fromOpenAIGzip(await fetchBytes(new URL(BUNDLED_VOCAB, location.href).href, () => {}), `bundled ${BUNDLED_VOCAB}`);
          },
        });
        await app.ctx.sync();
        lastLoadMs = performance.now() - t0;
        app.setModel({ name: label, model: loaded.model, tokenizer: loaded.tokenizer, imageConfig: loaded.imageConfig, lora: null });
        const used = [loaded.used.config, loaded.used.weights, loaded.used.preprocessor].filter(Boolean).join(', ');
        const tok = loaded.used.fallbackTokenizer ? 'no tokenizer files, so the bundled CLIP BPE vocabulary, as the CLI uses' : 'tokenizer found';
        setStatus(status, `${label}: loaded in ${ms(lastLoadMs)} (${used}, ${tok}).`);
      });
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, `${label}: not loaded (see the error below)${app.model ? `; ${app.model.name} stays loaded${app.model.lora ? ' with its adapter' : ''}` : ''}.`);
      showError(`Loading ${label}`, e, section);
    } finally {
      setProgress(progress, null);
    }
  }

  embedded.addEventListener('click', () => void load('embedded tiny-world', async () => {
    const out = new Map<string, Uint8Array>();
    for (const name of EMBEDDED_FILES) {
      setStatus(status, `embedded tiny-world: fetching ${name}…`, true);
      out.set(name, await fetchBytes(new URL(EMBEDDED_DIR + name, location.href).href, (got, total) => setProgress(progress, got, total)));
    }
    return out;
  }));

  const pick = (input: HTMLInputElement) => async () => {
    const list = [...(input.files ?? [])];
    input.value = '';
    if (list.length === 0) return;
    const withPaths = list.map((f) => [f.webkitRelativePath || f.name, f] as const);
    const label = withPaths[0][0].includes('/') ? withPaths[0][0].split('/')[0] : 'picked files';
    await load(label, async () => {
      const all = modelFileMap(withPaths);
      const wanted = new Map([...all].filter(([p]) => isModelFileName(p)));
      // Only the checkpoint's own weights: a folder may hold model.safetensors beside
      // pytorch_model.bin, and a sharded one's index says which shards to read.
      const weights = new Set(await weightFilesToRead(wanted, (p) => wanted.get(p)!.text(), label));
      const toRead = [...wanted].filter(([p]) => !isWeightsFileName(p) || weights.has(p));
      const total = toRead.reduce((s, [, f]) => s + f.size, 0);
      const out = new Map<string, Uint8Array>();
      let done = 0;
      for (const [p, f] of toRead) {
        setStatus(status, `${label}: reading ${p} (${mib(f.size)})…`, true);
        out.set(p, new Uint8Array(await f.arrayBuffer()));
        done += f.size;
        setProgress(progress, done, total);
      }
      return out;
    });
  };
  folder.addEventListener('change', pick(folder));
  files.addEventListener('change', pick(files));

  exportAdapter.addEventListener('click', () => void (async () => {
    const m = app.model;
    if (!m?.lora) return;
    try {
      const zip = await app.exclusive('downloading the adapter', () => adapterZip(m.lora!.set, { baseModel: m.name }));
      download('adapter.zip', zip, 'application/zip');
      setStatus(status, `${m.name}: adapter downloaded as adapter.zip (adapter_config.json + adapter_model.safetensors: \`embed.js --adapter\`, \`train.js --init-adapter\` and PEFT read the unzipped folder).`);
    } catch (e) {
      showError('Downloading the adapter', e, section);
    }
  })());

  importAdapter.addEventListener('change', () => void (async () => {
    const list = [...(importAdapter.files ?? [])];
    importAdapter.value = '';
    const m = app.model;
    if (list.length === 0 || !m) return;
    setState(section, 'running');
    try {
      const files = new Map<string, Uint8Array>();
      for (const f of list) files.set(f.name, new Uint8Array(await f.arrayBuffer()));
      const label = list.map((f) => f.name).join(' + ');
      if (m.lora && !confirm(`Loading ${label} replaces the current adapter (${m.lora.origin ?? `${m.lora.steps} steps`}). Download it first to keep it. Replace it?`)) {
        setStatus(status, `${label}: not loaded; the current adapter stays.`);
        setState(section, 'done');
        return;
      }
      await app.exclusive('loading an adapter', async () => {
        const restore = await app.detachAdapter();
        try {
          m.lora = { set: loadLoraFromPicked(m.model, files), steps: 0, scales: 'uniform', origin: `loaded from ${label}` };
        } catch (e) {
          restore?.();
          throw e;
        } finally {
          app.adapterChanged();
        }
      });
      setStatus(status, `${m.name}: adapter loaded from ${label}; every panel now uses it.`);
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, `The adapter was not loaded (see the error below)${app.model?.lora ? '; the current adapter stays' : ''}.`);
      showError('Loading an adapter', e, section);
    }
  })());

  removeAdapter.addEventListener('click', () => {
    const m = app.model;
    if (!m?.lora || app.busy) return;
    m.lora.set.dispose();
    m.lora = null;
    setStatus(status, `${m.name}: LoRA adapter removed; the base model is back.`);
    app.adapterChanged();
  });
}
