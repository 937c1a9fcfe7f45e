/**
 * The paper's Figure 5 view of causal tracing: a heat map of mean CTE(l, p) (rows = residual
 * index 0..L, columns = token positions) with a diverging colour scale and its legend, and the
 * per-layer CTE_l bar chart beside it, row for row: layers 1..L with their bootstrap interval and
 * alpha, the embeddings (row 0) in grey, since they are reported but take no part in the min-max.
 * A self-contained SVG string.
 */
import { escapeXml, formatNumber, niceStep } from '../io/report.js';

/** The bars beside the map: CTE at the embeddings (row 0) and CTE_l of layers 1..L (rows 1..L). */
export interface LayerBars {
  embeddings: number;
  layers: readonly number[];
  /** Per layer 1..L: [lo, hi], drawn as a whisker. */
  ci95?: readonly (readonly [number, number])[];
  /** Per layer 1..L, written beside its bar. */
  alpha?: readonly number[];
}

export interface HeatmapOptions {
  title?: string;
  /** Columns to outline: the positions CTE_l averages over (when every pair shares them). */
  positions?: readonly number[];
  /** Colour scale limit: values map to [-vmax, vmax]. Default: the largest |value| (1 if none). */
  vmax?: number;
  cellWidth?: number;
  cellHeight?: number;
}

const NEG: [number, number, number] = [33, 102, 172]; // blue
const MID: [number, number, number] = [247, 247, 247]; // near white
const POS: [number, number, number] = [178, 24, 43]; // red
const MISSING = '#bdbdbd';

/** Diverging blue-white-red colour of v on [-vmax, vmax] (clamped). */
export function divergingColour(v: number, vmax: number): string {
  if (!Number.isFinite(v)) return MISSING;
  const t = Math.max(-1, Math.min(1, vmax > 0 ? v / vmax : 0));
  const end = t < 0 ? NEG : POS;
  const a = Math.abs(t);
  const c = MID.map((m, i) => Math.round(m + (end[i] - m) * a));
  return `#${c.map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

function rowLabel(l: number): string {
  return l === 0 ? '0 (emb)' : String(l);
}

/**
 * SVG heat map of `cteMean` [L + 1][P] with optional token labels (one per column) and the
 * bars (`bars`: the embeddings for row 0, CTE_l for rows 1..L) to its right. Cells are
 * `<rect class="cell">` (exactly one per matrix entry, each with a `<title>` of its value), bars
 * `<rect class="bar">` (row 0's also has class "embeddings"), outlined positions `<rect class="position">`.
 */
export function heatmapSvg(
  cteMean: readonly (readonly (number | null)[])[],
  tokens: readonly string[] | null | undefined,
  bars: LayerBars,
  opts: HeatmapOptions = {},
): string {
  const rows = cteMean.length;
  if (rows === 0) throw new Error('heatmapSvg: cteMean has no rows');
  const cols = cteMean[0].length;
  cteMean.forEach((r, l) => {
    if (r.length !== cols) throw new Error(`heatmapSvg: cteMean row ${l} has ${r.length} positions, row 0 has ${cols}`);
  });
  if (bars.layers.length !== rows - 1) throw new Error(`heatmapSvg: ${bars.layers.length} layer bars, cteMean has ${rows} rows (embeddings + ${rows - 1} layers expected)`);
  if (bars.ci95 && bars.ci95.length !== rows - 1) throw new Error(`heatmapSvg: ${bars.ci95.length} intervals for ${rows - 1} layers`);
  if (bars.alpha && bars.alpha.length !== rows - 1) throw new Error(`heatmapSvg: ${bars.alpha.length} alpha values for ${rows - 1} layers`);
  for (const p of opts.positions ?? []) {
    if (!Number.isInteger(p) || p < 0 || p >= cols) throw new Error(`heatmapSvg: outlined position ${p} is outside the ${cols} columns`);
  }
  const cteLayer = [bars.embeddings, ...bars.layers];
  if (tokens && tokens.length !== cols) throw new Error(`heatmapSvg: ${tokens.length} tokens for ${cols} positions`);

  const cw = opts.cellWidth ?? 34;
  const ch = opts.cellHeight ?? 20;
  const values = cteMean.flatMap((r) => r.filter((v): v is number => v !== null && Number.isFinite(v)));
  const vmax = opts.vmax ?? (Math.max(0, ...values.map(Math.abs)) || 1);
  if (!(vmax > 0) || !Number.isFinite(vmax)) throw new Error(`heatmapSvg: vmax must be a finite number > 0, got ${vmax}`);

  // Rotated token labels reach down-left from their column; keep the first ones inside.
  const longest = Math.max(0, ...(tokens ?? []).map((t) => t.length));
  const left = Math.max(64, Math.ceil(longest * 4.6 - cw / 2 + 8));
  const top = opts.title ? 44 : 20;
  const mapW = cols * cw;
  const mapH = rows * ch;
  const labelH = tokens ? Math.max(24, Math.ceil(longest * 4.6) + 12) : 24;
  const barGap = 36;
  const barW = 160;
  const legendW = 14;
  const barLeft = left + mapW + barGap;
  const legendLeft = barLeft + barW + 48;
  const width = legendLeft + legendW + 56;
  const height = top + mapH + labelH + 28;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<defs><linearGradient id="cte-legend" x1="0" y1="1" x2="0" y2="0">` +
    [0, 0.25, 0.5, 0.75, 1].map((f) => `<stop offset="${f}" stop-color="${divergingColour((2 * f - 1) * vmax, vmax)}"/>`).join('') +
    `</linearGradient></defs>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (opts.title) out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(opts.title)}</text>`);

  // Heat map.
  out.push(`<text transform="translate(14 ${top + mapH / 2}) rotate(-90)" text-anchor="middle">residual index l</text>`);
  for (let l = 0; l < rows; l++) {
    const y = top + l * ch;
    out.push(`<text x="${left - 6}" y="${y + ch / 2}" text-anchor="end" dominant-baseline="middle">${rowLabel(l)}</text>`);
    for (let p = 0; p < cols; p++) {
      const v = cteMean[l][p];
      const shown = v === null || !Number.isFinite(v) ? 'undefined' : formatNumber(v, 4);
      const tip = `l=${l}, p=${p}${tokens ? ` (${tokens[p]})` : ''}: CTE ${shown}`;
      out.push(`<rect class="cell" x="${left + p * cw}" y="${y}" width="${cw}" height="${ch}" fill="${divergingColour(v ?? NaN, vmax)}"><title>${escapeXml(tip)}</title></rect>`);
    }
  }
  out.push(`<rect x="${left}" y="${top}" width="${mapW}" height="${mapH}" fill="none" stroke="#555555"/>`);
  for (const p of opts.positions ?? []) {
    out.push(`<rect class="position" x="${left + p * cw + 1}" y="${top + 1}" width="${cw - 2}" height="${mapH - 2}" fill="none" stroke="#111111" stroke-width="2" stroke-dasharray="4 2"/>`);
  }
  for (let p = 0; p < cols; p++) {
    const x = left + p * cw + cw / 2;
    const y = top + mapH + 12;
    const text = tokens ? tokens[p] : String(p);
    out.push(tokens
      ? `<text transform="translate(${x} ${y - 4}) rotate(-45)" text-anchor="end">${escapeXml(text)}</text>`
      : `<text x="${x}" y="${y}" text-anchor="middle">${escapeXml(text)}</text>`);
  }
  out.push(`<text x="${left + mapW / 2}" y="${top + mapH + labelH + 12}" text-anchor="middle">token position p</text>`);

  // CTE_l bars, one per heat map row, around a zero axis. The axis spans the layers' values
  // (and intervals) only: the embeddings' CTE is often 1 where layers sit near 0.01, and on a
  // shared axis the layers' bars would vanish. The embeddings' (grey) bar is clipped to the
  // axis and its value written beside it when it does not fit.
  const extent = [...bars.layers, ...(bars.ci95 ?? []).flat()].filter(Number.isFinite);
  const lo = Math.min(0, ...extent);
  const hi = Math.max(0, ...extent);
  const span = hi - lo || 1;
  const bx = (v: number) => barLeft + ((v - lo) / span) * barW;
  const x0 = bx(0);
  out.push(`<text x="${barLeft + barW / 2}" y="${top - 6}" text-anchor="middle">CTE_l${bars.alpha ? ' (alpha)' : ''}</text>`);
  cteLayer.forEach((raw, l) => {
    if (!Number.isFinite(raw)) return;
    const y = top + l * ch + 3;
    const v = Math.min(hi, Math.max(lo, raw));
    let clipped = '';
    if (v !== raw) {
      const right = raw > hi;
      clipped = (`<text class="clipped" x="${(right ? bx(hi) - 3 : bx(lo) + 3).toFixed(1)}" y="${y + (ch - 6) / 2}" text-anchor="${right ? 'end' : 'start'}" dominant-baseline="middle" font-size="9" fill="#ffffff">${escapeXml(`${right ? '' : '◀ '}${formatNumber(raw, 3)}${right ? ' ▶' : ''}`)}</text>`);
    }
    const x = Math.min(bx(v), x0);
    const fill = l === 0 ? '#9e9e9e' : v >= 0 ? '#b2182b' : '#2166ac';
    const tip = l === 0 ? `CTE at the embeddings = ${raw} (not a layer: not in the min-max${v !== raw ? '; its bar is clipped to the layers\' axis' : ''})` : `CTE_${l} = ${raw}${bars.ci95 ? `, 95% CI [${bars.ci95[l - 1].join(', ')}]` : ''}${bars.alpha ? `, alpha ${bars.alpha[l - 1]}` : ''}`;
    out.push(`<rect class="bar${l === 0 ? ' embeddings' : ''}" x="${x.toFixed(1)}" y="${y}" width="${Math.abs(bx(v) - x0).toFixed(1)}" height="${ch - 6}" fill="${fill}"><title>${escapeXml(tip)}</title></rect>`);
    if (clipped) out.push(clipped);
    if (l > 0 && bars.ci95) {
      const [a, b] = bars.ci95[l - 1];
      const cy = (y + (ch - 6) / 2).toFixed(1);
      out.push(`<line class="ci" x1="${bx(a).toFixed(1)}" y1="${cy}" x2="${bx(b).toFixed(1)}" y2="${cy}" stroke="#111111"/>`);
    }
    if (l > 0 && bars.alpha) {
      out.push(`<text x="${barLeft + barW + 4}" y="${y + (ch - 6) / 2}" dominant-baseline="middle" font-size="9">${escapeXml(formatNumber(bars.alpha[l - 1], 2))}</text>`);
    }
  });
  out.push(`<line x1="${x0.toFixed(1)}" y1="${top}" x2="${x0.toFixed(1)}" y2="${top + mapH}" stroke="#333333"/>`);
  const step = niceStep(span, 3);
  const tickDigits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-6; t += step) {
    const x = bx(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${top + mapH}" x2="${x}" y2="${top + mapH + 4}" stroke="#333333"/>`);
    out.push(`<text x="${x}" y="${top + mapH + 15}" text-anchor="middle" font-size="9">${escapeXml(formatNumber(t, tickDigits))}</text>`);
  }

  // Colour legend.
  out.push(`<rect class="legend" x="${legendLeft}" y="${top}" width="${legendW}" height="${mapH}" fill="url(#cte-legend)" stroke="#555555"/>`);
  for (const [f, v] of [[0, vmax], [0.5, 0], [1, -vmax]] as const) {
    out.push(`<text x="${legendLeft + legendW + 4}" y="${top + f * mapH}" dominant-baseline="middle" font-size="9">${escapeXml(formatNumber(v, 3))}</text>`);
  }
  out.push(`<text x="${legendLeft + legendW / 2}" y="${top - 6}" text-anchor="middle">CTE</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
