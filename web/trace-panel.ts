/**
 * Causal tracing of one (image, caption, foil) triple: the foil's residual state patched into
 * the caption's run at every (layer, position), CTE(l, p) = (S_corr - S_lp) / (S_corr - S_foil),
 * shown as the heat map with the per-layer CTE_l bars; and of many pairs (the world's probe
 * pairs, or the user's pairs file or data file), averaged with bootstrap intervals as trace.js
 * does. The resulting per-block scales alpha^beta are offered to the fine-tuning panel.
 */
import {
  DEFAULT_BETA, DEFAULT_MIN_DELTA, DEFAULT_POSITION_RULE, TraceInputError, buildCteReport, buildProbePairs, type TracedPair, computeCte, cteLayerScales, cteUpgradeNote, formatNumber,
  heatmapSvg, isPairsText, layerScales, matchImages, parseCteReport, parsePairLines, readUserData, tracePair, type CteReport, type RawImage, type Tokenizer,
} from './lib-entry.js';
import type { App, ModelState, PageImage } from './app.js';
import { embedImages, tokenizeFor, unknownWords } from './clip-panel.js';
import { decodeImageFile, pickedImageFiles, worldPageImage, worldRecords, worldRenderSize } from './images.js';
import { $, StaleMark, download, ms, setFacts, setState, setStatus, showError, yieldToPage } from './ui.js';

/** A token's label on the heat map's axis. */
function tokenLabel(tok: Tokenizer, id: number): string {
  const s = tok.decode([id]).trim();
  return s === '' ? `#${id}` : s;
}

/** The row of ids through the first end-of-text token, for the length check. */
function throughEot(ids: Int32Array, eot: number): number[] {
  const at = ids.indexOf(eot);
  return Array.from(at < 0 ? ids : ids.subarray(0, at + 1));
}

function positiveNumber(v: string, what: string, allowZero: boolean): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0 || (!allowZero && x === 0)) throw new Error(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(v)}`);
  return x;
}

/** One pair to trace among many: its sentences and how to get its image. */
interface ManyPair {
  caption: string;
  foil: string;
  /** Which sentence carries the negation, when known. */
  polarity?: 'caption' | 'foil';
  /** The image's name in cte.json and messages. */
  name: string;
  image: () => Promise<Omit<PageImage, 'id'>> | Omit<PageImage, 'id'>;
}

export function setUpTracePanel(app: App): void {
  const section = $('#trace');
  const form = $('[data-testid="trace-form"]', section) as HTMLFormElement;
  const button = form.querySelector('button[type="submit"]') as HTMLButtonElement;
  const swap = $('[data-testid="trace-swap"]', section) as HTMLButtonElement;
  const imageSel = $('[data-testid="trace-image"]', section) as HTMLSelectElement;
  const status = $('[data-testid="trace-status"]', section);
  const message = $('[data-testid="trace-message"]', section);
  const scores = $('[data-testid="trace-scores"]', section);
  const heatmap = $('[data-testid="trace-heatmap"]', section);
  const layersTable = $('[data-testid="trace-layers"]', section) as HTMLTableElement;
  const cteExport = $('[data-testid="cte-export"]', section) as HTMLButtonElement;
  const heatmapExport = $('[data-testid="heatmap-export"]', section) as HTMLButtonElement;
  const cteImport = $('[data-testid="cte-import"]', section) as HTMLInputElement;
  const traceManyBtn = $('[data-testid="trace-many"]', section) as HTMLButtonElement;
  const probeCount = $('[data-testid="probe-count"]', section) as HTMLInputElement;
  const pairsFile = $('[data-testid="trace-pairs-file"]', section) as HTMLInputElement;
  const pairsImages = $('[data-testid="trace-pairs-images"]', section) as HTMLInputElement;
  const pairsFolder = $('[data-testid="trace-pairs-folder"]', section) as HTMLInputElement;
  const pairsButton = $('[data-testid="trace-pairs"]', section) as HTMLButtonElement;
  /** The last trace's cte.json (as trace.js writes it) and heat map, for the downloads. */
  let last: { report: CteReport; svg: string } | null = null;
  const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
  field('minDelta').value = String(DEFAULT_MIN_DELTA);
  field('beta').value = String(DEFAULT_BETA);

  const stale = new StaleMark(app, section, status, 'trace');
  const refresh = () => {
    stale.check();
    button.disabled = app.busy !== null || !app.model || app.images.length === 0;
    button.title = !app.model ? 'load a model first' : app.images.length === 0 ? 'add an image in the CLIP panel first' : '';
    cteExport.disabled = !last;
    heatmapExport.disabled = !last;
    cteImport.disabled = app.busy !== null || !app.model;
    for (const b of [traceManyBtn, pairsButton]) {
      b.disabled = app.busy !== null || !app.model;
      b.title = app.model ? '' : 'load a model first';
    }
    const want = app.images.map((img, k) => `${img.id}:#${k + 1} ${img.name}`).join('|');
    if (imageSel.dataset.options !== want) {
      const keep = imageSel.value;
      imageSel.replaceChildren(...app.images.map((img, k) => {
        const o = document.createElement('option');
        o.value = String(img.id);
        o.textContent = `#${k + 1} ${img.name}${img.truth ? ` (${img.truth})` : ''}`;
        return o;
      }));
      if (app.images.some((i) => String(i.id) === keep)) imageSel.value = keep;
      imageSel.dataset.options = want;
    }
  };
  app.onChange(refresh);
  refresh();

  swap.addEventListener('click', () => {
    const c = field('caption').value;
    field('caption').value = field('foil').value;
    field('foil').value = c;
  });

  const clearResult = () => {
    message.hidden = true;
    scores.hidden = true;
    heatmap.hidden = true;
    layersTable.hidden = true;
    last = null;
    refresh();
  };

  /**
   * Shows a trace's heat map and its per-layer table (CTE_l with its interval when the report has
   * them, alpha, the block's scale alpha^beta) and keeps both for the downloads; returns the scales.
   */
  const showResult = (report: CteReport, svg: string, beta: number): number[] => {
    heatmap.innerHTML = svg;
    heatmap.hidden = false;
    last = { report, svg };
    const scales = layerScales(report.alpha, beta);
    const body = layersTable.tBodies[0];
    body.replaceChildren();
    const addRow = (cells: string[], cte: number, scale?: number) => {
      const row = body.insertRow();
      row.dataset.cte = String(cte);
      if (scale === undefined) row.dataset.embeddings = 'true';
      else row.dataset.scale = String(scale);
      for (const t of cells) row.insertCell().textContent = t;
    };
    addRow(['0 (embeddings)', formatNumber(report.cte_embeddings, 4), '— (not a layer)', '—'], report.cte_embeddings);
    report.cte_layer.forEach((v, i) => {
      const ci = report.cte_layer_ci95?.[i];
      addRow([String(i + 1), `${formatNumber(v, 4)}${ci ? ` [${formatNumber(ci[0], 4)}, ${formatNumber(ci[1], 4)}]` : ''}`,
        formatNumber(report.alpha[i], 3), `block ${i}: ${formatNumber(scales[i], 3)}`], v, scales[i]);
    });
    layersTable.hidden = false;
    return scales;
  };

  /** A problem with the input, not a failure: said in the panel, not the error box. */
  const notice = (text: string, statusText = 'Nothing traced: see the note below.') => {
    message.textContent = text;
    message.hidden = false;
    setStatus(status, statusText);
    setState(section, 'done');
    section.dataset.result = 'notice';
  };

  cteExport.addEventListener('click', () => {
    if (last) download('cte.json', JSON.stringify(last.report, null, 1) + '\n', 'application/json');
  });
  heatmapExport.addEventListener('click', () => {
    if (last) download('cte_heatmap.svg', last.svg, 'image/svg+xml');
  });
  cteImport.addEventListener('change', () => void (async () => {
    const file = cteImport.files?.[0];
    cteImport.value = '';
    const m = app.model;
    if (!file || !m) return;
    setState(section, 'running');
    try {
      // The checks and messages of `train.js --cte`: the validating reader, then the model's depth.
      const report = parseCteReport(await file.text(), file.name);
      const beta = field('beta').value.trim() === '' ? report.beta : positiveNumber(field('beta').value, 'beta', false);
      const scales = cteLayerScales(report, m.model.config.text.layers, beta, file.name);
      const note = cteUpgradeNote(report, file.name);
      const pairs = report.pairs.length;
      app.cte = { scales, caption: `${file.name} (${pairs} traced pair${pairs === 1 ? '' : 's'})`, foil: '', model: m.model, pairs };
      app.changed();
      setStatus(status, `Loaded ${file.name} (${pairs} traced pair${pairs === 1 ? '' : 's'}, ${report.layers} layers, beta ${beta}): the fine-tuning panel can use its scales ${scales.map((x) => x.toFixed(2)).join(', ')}.${note ? ` ${note}` : ''}`);
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, 'The cte.json was not loaded (see the error below).');
      showError('Loading a cte.json', e, section);
    }
  })());

  /**
   * CTE over many pairs, as trace.js computes it: each pair traced on its own image, averaged with
   * bootstrap intervals over pairs; pairs with |d| < min |d| are skipped and counted, and so are
   * pairs whose caption and foil do not tokenise to the same length (nothing to patch position by
   * position). `what` names the pairs ("world probe pairs", "pairs from probe.jsonl").
   */
  async function traceMany(what: string, getPairs: (m: ModelState) => Promise<ManyPair[]>): Promise<void> {
    const m = app.model;
    if (!m) return;
    clearResult();
    setState(section, 'running');
    delete section.dataset.result;
    try {
      const minDelta = positiveNumber(field('minDelta').value, 'min |d|', true);
      const beta = positiveNumber(field('beta').value, 'beta', false);
      await app.exclusive('causal tracing', async () => {
        const t0 = performance.now();
        const pairs = await getPairs(m);
        const tok = m.tokenizer;
        const traced: TracedPair[] = [];
        const untraceable: string[] = [];
        for (let i = 0; i < pairs.length; i++) {
          const p = pairs[i];
          setStatus(status, `tracing pair ${i + 1} of ${pairs.length}: "${p.caption}" vs "${p.foil}"…`, true);
          await yieldToPage();
          const [capIds, foilIds] = [tokenizeFor(m, [p.caption]), tokenizeFor(m, [p.foil])];
          const [a, b] = [throughEot(capIds, tok.eotId), throughEot(foilIds, tok.eotId)];
          if (a.length !== b.length || a.every((id, k) => id === b[k])) {
            untraceable.push(`"${p.caption}" vs "${p.foil}": ${a.length !== b.length ? `${a.length} and ${b.length} tokens` : 'the same tokens'}`);
            continue;
          }
          const image = embedImages(m, [{ id: 0, ...(await p.image()) }]);
          let r;
          try {
            r = await tracePair(m.model, image, capIds, foilIds);
          } finally {
            image.dispose();
          }
          traced.push({ image: p.name, caption: p.caption, foil: p.foil, ...(p.polarity ? { polarity: p.polarity } : {}),
            idsCaption: a, idsFoil: b, sCorr: r.sCorr, sFoil: r.sFoil, sLp: r.patched });
        }
        const wall = performance.now() - t0;
        const notTraced = untraceable.length ? `; ${untraceable.length} not traceable (caption and foil must tokenise to the same length and differ), e.g. ${untraceable[0]}` : '';
        if (traced.length === 0) {
          setFacts(scores, [['pairs', `none of the ${pairs.length} ${what} could be traced${notTraced}`]]);
          return notice(`No pair could be traced: no scales.${notTraced}`);
        }
        const report = buildCteReport(traced, { layers: m.model.config.text.layers, beta, minDelta, eotId: tok.eotId, positions: DEFAULT_POSITION_RULE });
        const kept = report.pairs.length;
        const negD = traced.filter((t) => t.sCorr - t.sFoil < 0).length;
        setFacts(scores, [
          ['pairs', `${kept} traced of ${pairs.length} ${what} (${report.skipped.length} skipped: |d| below min |d|${notTraced})`],
          ['pairs the model gets wrong (d < 0)', `${negD}`],
          ['time', ms(wall)],
        ]);
        stale.fresh();
        if (kept === 0) return notice(`Every pair was skipped (|d| below min |d| = ${minDelta}): no scales. Lower min |d|, or trace more pairs.`);
        const svg = heatmapSvg(report.cte_mean, null, { embeddings: report.cte_embeddings, layers: report.cte_layer, ci95: report.cte_layer_ci95, alpha: report.alpha },
          { title: `CTE(l, p): mean over ${kept} ${what} (bars: CTE_l with 95% bootstrap intervals)` });
        const scalesPerBlock = showResult(report, svg, beta);
        section.dataset.result = 'heatmap';
        if (scalesPerBlock.every((x) => x === 0)) return notice('alpha is 0 for every layer: no block would train, so no scales are offered.');
        app.cte = { scales: scalesPerBlock, caption: `${kept} ${what}`, foil: '', model: m.model, pairs: kept };
        app.changed();
        const few = kept < 20 ? ` Only ${kept} pairs: the scales are noisy (trace more).` : '';
        setStatus(status, `Traced ${kept} pairs in ${ms(wall)}; CTE_l with 95% bootstrap intervals over pairs; the fine-tuning panel can use the scales.${few}`);
      });
      if (section.dataset.state === 'running') setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      setStatus(status, 'Tracing failed (see the error below).');
      showError(`Causal tracing (${what})`, e, section);
    }
  }

  const pairCount = () => {
    const n = Number(probeCount.value);
    if (!Number.isInteger(n) || n < 2 || n > 400) throw new Error(`pairs: expected an integer in [2, 400], got ${JSON.stringify(probeCount.value)}`);
    return n;
  };

  /** The miniature world's probe pairs ("There is severe X." against "There is no X.", both polarities), each on its own scene. */
  traceManyBtn.addEventListener('click', () => void traceMany('world probe pairs', async (m) => {
    const n = pairCount();
    // Scenes from a seed of their own, so probe scenes are neither the similarity panel's nor training's.
    const seed = 5000;
    const size = worldRenderSize(m.model.config.vision.imageSize);
    const records = worldRecords(seed, 0, n, size);
    const pairs = buildProbePairs(records, { maxPairs: n, seed });
    if (pairs.length === 0) throw new Error(`the ${n} world scenes gave no probe pair`);
    return pairs.map((p) => {
      const index = records.findIndex((r) => r.id === p.studyId);
      return { caption: p.caption, foil: p.foil, polarity: p.polarity === 'negated' ? 'caption' : 'foil', name: p.image || `world ${seed}:${index}`, image: () => worldPageImage(records[index], seed, index) };
    });
  }));

  /**
   * The user's pairs: a pairs file as trace.js reads it (data.js's probe.jsonl), or a data file
   * in a format data.js reads, whose probe pairs are built as data.js builds them; at most the
   * pair count, with the images picked as files or their folder.
   */
  pairsButton.addEventListener('click', () => {
    const file = pairsFile.files?.[0];
    if (!file) {
      showError('Causal tracing (your pairs)', new Error('pick a pairs file (trace.js --pairs lines: image, caption, foil; data.js writes probe.jsonl) or a data file to build pairs from'), section);
      return;
    }
    void traceMany(`pairs from ${file.name}`, async () => {
      const n = pairCount();
      const text = await file.text();
      let lines: { image: string; caption: string; foil: string; polarity?: 'caption' | 'foil' }[];
      if (isPairsText(text)) {
        lines = parsePairLines(text, file.name).slice(0, n);
      } else {
        const data = readUserData(text, file.name);
        const built = buildProbePairs(data.studies, { maxPairs: n, seed: 0, ...(data.domain.probeSeverity ? { presentSeverity: data.domain.probeSeverity } : {}) });
        if (built.length === 0) throw new Error(`${file.name}: its ${data.studies.length} images give no probe pair (a pair needs a condition stated only present, or only absent)`);
        lines = built.map((p) => ({ image: p.image, caption: p.caption, foil: p.foil, polarity: p.polarity === 'negated' ? 'caption' : 'foil' }));
      }
      const picked = pickedImageFiles(pairsImages, pairsFolder);
      if (picked.length === 0) throw new Error(`pick the images ${file.name} names (as files, or their folder)`);
      const files = matchImages(lines, picked, file.name);
      // Only the last decoded image is kept: pairs of one image come together (data.js writes
      // them so), and a user's photos decode to tens of MB each.
      let last: { file: File; raw: Promise<RawImage> } | null = null;
      return lines.map((p, i) => ({
        caption: p.caption, foil: p.foil, ...(p.polarity ? { polarity: p.polarity } : {}), name: p.image,
        image: async () => {
          if (last?.file !== files[i]) last = { file: files[i], raw: decodeImageFile(files[i]) };
          return { name: p.image, raw: await last.raw };
        },
      }));
    });
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const m = app.model;
    const img = app.images.find((i) => String(i.id) === imageSel.value);
    if (!m || !img) return;
    clearResult();
    setState(section, 'running');
    delete section.dataset.result;
    try {
      const caption = field('caption').value.trim();
      const foil = field('foil').value.trim();
      const minDelta = positiveNumber(field('minDelta').value, 'min |d|', true);
      const beta = positiveNumber(field('beta').value, 'beta', false);
      if (!caption || !foil) return notice('Type a caption (true of the image) and a foil (the same sentence with the negation changed).');
      await app.exclusive('causal tracing', async () => {
        const tok = m.tokenizer;
        const [capIds, foilIds] = [tokenizeFor(m, [caption]), tokenizeFor(m, [foil])];
        const [c, f] = [throughEot(capIds, tok.eotId), throughEot(foilIds, tok.eotId)];
        const unk = unknownWords(m, [caption, foil]);
        if (c.length !== f.length) {
          return notice(`The caption is ${c.length} tokens and the foil ${f.length} (with start and end tokens): causal tracing patches position by position, so both must have the same token length. Change the foil by swapping words, e.g. "a" for "no".`);
        }
        if (c.every((id, i) => id === f[i])) return notice('The caption and the foil tokenise identically: there is no difference to trace.');
        setStatus(status, `tracing ${m.model.config.text.layers + 1} residual indices × ${c.length} positions in one batch…`, true);
        await yieldToPage();
        const t0 = performance.now();
        const imageEmbeds = embedImages(m, [img]);
        let r;
        try {
          r = await tracePair(m.model, imageEmbeds, capIds, foilIds);
        } finally {
          imageEmbeds.dispose();
        }
        const wall = performance.now() - t0;
        const d = r.sCorr - r.sFoil;
        setFacts(scores, [
          ['image', `#${app.images.indexOf(img) + 1} ${img.name}${img.truth ? ` (true: ${img.truth})` : ''}`],
          ['S_corr (caption)', formatNumber(r.sCorr, 4)],
          ['S_foil', formatNumber(r.sFoil, 4)],
          ['d = S_corr − S_foil', `${formatNumber(d, 4)}${d < 0 ? ' (the model prefers the foil)' : ''}`],
          ['time', ms(wall)],
        ]);
        stale.fresh();
        scores.dataset.sCorr = String(r.sCorr);
        scores.dataset.sFoil = String(r.sFoil);
        if (unk.length) scores.append(Object.assign(document.createElement('dt'), { textContent: 'unknown words' }), Object.assign(document.createElement('dd'), { textContent: `${unk.join(', ')} (read as [unk])` }));
        const check = computeCte(r.sCorr, r.sFoil, r.patched, minDelta);
        if (!check.ok) {
          notice(`No heat map: ${check.reason}. CTE divides by d = S_corr − S_foil, so a gap below min |d| would turn noise into large values; try another image or pair, or lower min |d|.`, `Traced in ${ms(wall)}, but |d| is below min |d|: see the note below.`);
          return;
        }
        const report = buildCteReport([{
          image: img.name, caption, foil, idsCaption: c, idsFoil: f, sCorr: r.sCorr, sFoil: r.sFoil, sLp: r.patched,
        }], { layers: m.model.config.text.layers, beta, minDelta, eotId: tok.eotId, positions: DEFAULT_POSITION_RULE, bootstrap: { resamples: 0 } });
        const tokens = c.map((id) => tokenLabel(tok, id));
        const svg = heatmapSvg(report.cte_mean, tokens, { embeddings: report.cte_embeddings, layers: report.cte_layer, alpha: report.alpha },
          { title: `CTE(l, p): "${caption}" vs "${foil}"`, positions: report.pairs[0].positions });
        const scalesPerBlock = showResult(report, svg, beta);
        section.dataset.result = 'heatmap';
        if (d < 0) {
          // CTE still shows what moves the score, but scales are for pairs the model gets right.
          message.textContent = `The model prefers the foil here (d = ${formatNumber(d, 4)} < 0), so these CTE values say which blocks push it toward the wrong sentence; they are not offered to the fine-tuning panel${app.cte ? ', which keeps the scales it had' : ''}. Trace a pair the model gets right, or load a cte.json that trace.js averaged over many pairs.`;
          message.hidden = false;
          setStatus(status, `Traced in ${ms(wall)}; d < 0: see the note below.`);
          return;
        }
        app.cte = { scales: scalesPerBlock, caption, foil, model: m.model, pairs: 1 };
        app.changed();
        setStatus(status, `Traced in ${ms(wall)}. Negation-bearing positions (where caption and foil differ, outlined): ${report.pairs[0].positions.join(', ')}; their mean CTE per layer is CTE_l, min-max normalised over layers 1..${report.layers} to alpha. The fine-tuning panel can now scale each block by alpha^beta.`);
      });
      if (section.dataset.state === 'running') setState(section, 'done');
    } catch (e) {
      if (e instanceof TraceInputError) {
        notice(e.message);
        return;
      }
      setState(section, 'error');
      setStatus(status, 'Tracing failed (see the error below).');
      showError('Causal tracing', e, section);
    }
  });
}
