/**
 * Causal tracing of one (image, caption, foil) triple: the foil's residual state patched into
 * the caption's run at every (layer, position), CTE(l, p) = (S_corr - S_lp) / (S_corr - S_foil),
 * shown as the heat map with the per-layer CTE_l bars; the resulting per-block scales
 * alpha^beta are offered to the fine-tuning panel.
 */
import {
  DEFAULT_BETA, DEFAULT_MIN_DELTA, DEFAULT_POSITION_RULE, TraceInputError, buildCteReport, computeCte, cteLayerScales, cteUpgradeNote, formatNumber,
  heatmapSvg, layerScales, parseCteReport, tracePair, type CteReport, type Tokenizer,
} from './lib-entry.js';
import type { App } from './app.js';
import { embedImages, tokenizeFor, unknownWords } from './clip-panel.js';
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
        heatmap.innerHTML = svg;
        last = { report, svg };
        heatmap.hidden = false;
        const scalesPerBlock = layerScales(report.alpha, beta);
        const body = layersTable.tBodies[0];
        body.replaceChildren();
        const addRow = (cells: string[], cte: number, embeddings: boolean, scale?: number) => {
          const row = body.insertRow();
          row.dataset.cte = String(cte);
          if (scale !== undefined) row.dataset.scale = String(scale);
          if (embeddings) row.dataset.embeddings = 'true';
          for (const t of cells) row.insertCell().textContent = t;
        };
        addRow(['0 (embeddings)', formatNumber(report.cte_embeddings, 4), '— (not a layer)', '—'], report.cte_embeddings, true);
        report.cte_layer.forEach((v, i) => addRow([String(i + 1), formatNumber(v, 4), formatNumber(report.alpha[i], 3), `block ${i}: ${formatNumber(scalesPerBlock[i], 3)}`], v, false, scalesPerBlock[i]));
        layersTable.hidden = false;
        app.cte = { scales: scalesPerBlock, caption, foil, model: m.model, pairs: 1 };
        app.changed();
        section.dataset.result = 'heatmap';
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
