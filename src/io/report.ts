/**
 * Small writers for result tables: a Markdown table and a grouped SVG bar chart. They return
 * strings (browser-safe, no dependencies); callers write the files.
 */

/** Escapes text for SVG/XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A number for display with fixed digits; never "-0.00", and NaN / inf spelled out. */
export function formatNumber(v: number, digits: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const s = v.toFixed(digits);
  // "-0.00" reads as a sign where there is none.
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

export type Align = 'left' | 'right' | 'center';

export interface MarkdownTableOptions {
  /** Per column; numbers default to right, text to left. */
  align?: readonly Align[];
  /** Digits after the point for number cells (default: as JavaScript prints them). */
  digits?: number;
}

function mdCell(v: string | number | null | undefined, digits: number | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (digits === undefined ? String(v) : formatNumber(v, digits)) : v;
  // A pipe would end the cell and a newline the row.
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A GitHub-flavoured Markdown table; every row must have one cell per header. */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number | null | undefined)[])[],
  opts: MarkdownTableOptions = {},
): string {
  if (headers.length === 0) throw new Error('markdownTable: no headers');
  rows.forEach((r, i) => {
    if (r.length !== headers.length) throw new Error(`markdownTable: row ${i} has ${r.length} cells, expected ${headers.length} (${headers.join(', ')})`);
  });
  if (opts.align && opts.align.length !== headers.length) {
    throw new Error(`markdownTable: align has ${opts.align.length} entries, expected ${headers.length}`);
  }
  const align = headers.map((_, c) => opts.align?.[c] ?? (rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || r[c] == null) && rows.some((r) => typeof r[c] === 'number') ? 'right' : 'left'));
  const rule = align.map((a) => (a === 'right' ? '---:' : a === 'center' ? ':---:' : '---'));
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(headers.map((h) => mdCell(h, undefined))),
    line(rule),
    ...rows.map((r) => line(r.map((v) => mdCell(v, opts.digits)))),
  ].join('\n') + '\n';
}

export interface BarSeries {
  name: string;
  values: readonly number[];
}

export interface BarChartOptions {
  title?: string;
  /** One label per group (x axis). */
  labels: readonly string[];
  /** Bars per group, one series each (e.g. models), with one value per label. */
  series: readonly BarSeries[];
  yLabel?: string;
  /** Digits of the value printed above each bar (default 1); null prints none. */
  digits?: number | null;
  /** Fixed y range; defaults to [min(0, values), max(0, values)]. */
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

/** Colour-blind-safe qualitative palette (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

/** A "nice" tick step (1, 2 or 5 times a power of ten) for a range split into about n parts. */
export function niceStep(range: number, n: number): number {
  if (!(range > 0)) return 1;
  const raw = range / n;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/**
 * A value axis over `values` (finite ones): [lo, hi] widened to whole ticks of a nice step,
 * except where a bound is fixed; `withZero` keeps 0 inside (bars grow from it).
 */
function valueAxis(values: readonly number[], fixedMin: number | undefined, fixedMax: number | undefined, withZero: boolean): { lo: number; hi: number; step: number } {
  const vals = values.filter((v) => Number.isFinite(v));
  let lo = fixedMin ?? Math.min(...(withZero ? [0] : []), ...vals);
  let hi = fixedMax ?? Math.max(...(withZero ? [0] : []), ...vals);
  if (!(hi > lo)) hi = lo + 1;
  const step = niceStep(hi - lo, 5);
  if (fixedMin === undefined) lo = Math.floor(lo / step + 1e-9) * step;
  if (fixedMax === undefined) hi = Math.ceil(hi / step - 1e-9) * step;
  return { lo, hi, step };
}

/** Digits after the point that a tick step needs. */
const tickDigits = (step: number) => Math.max(0, -Math.floor(Math.log10(step) + 1e-9));

/** The frame both charts share: background, title, horizontal grid lines with their labels, the y label. */
function chartFrame(out: string[], f: { width: number; height: number; title?: string; yLabel?: string; left: number; right: number; top: number; plotH: number; axis: { lo: number; hi: number; step: number }; y: (v: number) => number }): void {
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>`);
  if (f.title) out.push(`<text x="${f.width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(f.title)}</text>`);
  const { lo, hi, step } = f.axis;
  for (let t = lo; t <= hi + step * 1e-6; t += step) {
    const ty = f.y(t).toFixed(1);
    out.push(`<line x1="${f.left}" y1="${ty}" x2="${f.width - f.right}" y2="${ty}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${f.left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatNumber(t, tickDigits(step)))}</text>`);
  }
  if (f.yLabel) out.push(`<text transform="translate(14 ${f.top + f.plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(f.yLabel)}</text>`);
}

/** A chart's plot area inside its margins: room for the title above, the x labels and a legend row per four series below. */
function chartBox(width: number, height: number, title: string | undefined, seriesCount: number, right: number, below: number) {
  const top = title ? 40 : 16;
  const legendH = 20 * Math.ceil(seriesCount / 4);
  const left = 64;
  return { top, legendH, left, right, plotW: width - left - right, plotH: height - top - below - legendH };
}

/** Legend entry k: a swatch and the name, four to a row under the plot; `lift` above the bottom margin. */
function legendEntry(out: string[], k: number, name: string, colour: string, box: ReturnType<typeof chartBox>, height: number, lift: number): void {
  const lx = box.left + (k % 4) * Math.max(90, box.plotW / 4);
  const ly = height - box.legendH - lift + Math.floor(k / 4) * 20;
  out.push(`<rect class="legend" x="${lx.toFixed(1)}" y="${ly}" width="12" height="12" fill="${colour}"/>`);
  out.push(`<text x="${(lx + 16).toFixed(1)}" y="${ly + 10}">${escapeXml(name)}</text>`);
}

/**
 * A grouped vertical bar chart as a self-contained SVG string: groups along x (labels), one
 * coloured bar per series in each group, a zero baseline, y ticks and a legend. Each bar is a
 * `<rect class="bar">` with a `<title>` holding its exact value.
 */
export function barChartSvg(opts: BarChartOptions): string {
  const { labels, series, title, yLabel, digits = 1 } = opts;
  if (labels.length === 0) throw new Error('barChartSvg: no labels');
  if (series.length === 0) throw new Error('barChartSvg: no series');
  series.forEach((s) => {
    if (s.values.length !== labels.length) {
      throw new Error(`barChartSvg: series ${JSON.stringify(s.name)} has ${s.values.length} values, expected ${labels.length} (one per label)`);
    }
  });
  const axis = valueAxis(series.flatMap((s) => s.values), opts.yMin, opts.yMax, true);
  const { lo, hi } = axis;

  const width = opts.width ?? Math.max(360, 90 + labels.length * (series.length * 22 + 24));
  const height = opts.height ?? 320;
  const box = chartBox(width, height, title, series.length, 16, 56);
  const { top, left, right, plotW, plotH } = box;
  const y = (v: number) => top + plotH - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * plotH;
  const groupW = plotW / labels.length;
  const barW = Math.max(2, Math.min(28, (groupW - 12) / series.length));

  const out: string[] = [];
  chartFrame(out, { width, height, title, yLabel, left, right, top, plotH, axis, y });
  const y0 = y(0);
  labels.forEach((label, g) => {
    const gx = left + g * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, k) => {
      const v = s.values[g];
      const x = gx + k * barW;
      const colour = PALETTE[k % PALETTE.length];
      if (!Number.isFinite(v)) return;
      const yv = y(v);
      const ry = Math.min(yv, y0);
      const h = Math.abs(yv - y0);
      out.push(`<rect class="bar" x="${x.toFixed(1)}" y="${ry.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${colour}">` +
        `<title>${escapeXml(`${s.name}, ${label}: ${v}`)}</title></rect>`);
      if (digits !== null) {
        const ty = v >= 0 ? ry - 3 : ry + h + 11;
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="middle" font-size="9">${escapeXml(formatNumber(v, digits))}</text>`);
      }
    });
    out.push(`<text x="${(left + (g + 0.5) * groupW).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(label)}</text>`);
  });
  out.push(`<line x1="${left}" y1="${y0.toFixed(1)}" x2="${width - right}" y2="${y0.toFixed(1)}" stroke="#333333"/>`);
  series.forEach((s, k) => legendEntry(out, k, s.name, PALETTE[k % PALETTE.length], box, height, 8));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface LineSeries {
  name: string;
  /** [x, y] points in x order; non-finite y values break the line there. */
  points: readonly (readonly [number, number])[];
  /** Fixed colour; default the palette's entry for the series' index. */
  colour?: string;
}

export interface LineChartOptions {
  title?: string;
  series: readonly LineSeries[];
  xLabel?: string;
  yLabel?: string;
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

/**
 * A line chart as a self-contained SVG string: one `<polyline class="line">` per series with a
 * marker (`<circle>` holding its exact value in a `<title>`) at each point, x and y ticks and a
 * legend.
 */
export function lineChartSvg(opts: LineChartOptions): string {
  const { series, title, xLabel, yLabel } = opts;
  if (series.length === 0) throw new Error('lineChartSvg: no series');
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) throw new Error('lineChartSvg: no finite points');
  let xlo = Math.min(...pts.map((p) => p[0]));
  let xhi = Math.max(...pts.map((p) => p[0]));
  if (!(xhi > xlo)) xhi = xlo + 1;
  const axis = valueAxis(pts.map((p) => p[1]), opts.yMin, opts.yMax, false);
  const { lo, hi } = axis;
  const xstep = niceStep(xhi - xlo, 6);
  xlo = Math.floor(xlo / xstep + 1e-9) * xstep;
  xhi = Math.ceil(xhi / xstep - 1e-9) * xstep;

  const width = opts.width ?? 560;
  const height = opts.height ?? 340;
  const box = chartBox(width, height, title, series.length, 20, 52);
  const { top, left, right, plotW, plotH } = box;
  const x = (v: number) => left + ((v - xlo) / (xhi - xlo)) * plotW;
  const y = (v: number) => top + plotH - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * plotH;

  const out: string[] = [];
  chartFrame(out, { width, height, title, yLabel, left, right, top, plotH, axis, y });
  for (let t = xlo; t <= xhi + xstep * 1e-6; t += xstep) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${top + plotH}" x2="${tx}" y2="${top + plotH + 4}" stroke="#333333"/>`);
    out.push(`<text x="${tx}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(formatNumber(t, tickDigits(xstep)))}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#333333"/>`);
  if (xLabel) out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 34}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  series.forEach((s, k) => {
    const colour = s.colour ?? PALETTE[k % PALETTE.length];
    // A non-finite value ends one polyline and the next finite one starts another.
    let run: string[] = [];
    const flush = () => {
      if (run.length) out.push(`<polyline class="line" fill="none" stroke="${colour}" stroke-width="2" points="${run.join(' ')}"/>`);
      run = [];
    };
    for (const [px, py] of s.points) {
      if (!Number.isFinite(px) || !Number.isFinite(py)) { flush(); continue; }
      run.push(`${x(px).toFixed(1)},${y(py).toFixed(1)}`);
    }
    flush();
    for (const [px, py] of s.points) {
      if (!Number.isFinite(px) || !Number.isFinite(py)) continue;
      out.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2.5" fill="${colour}"><title>${escapeXml(`${s.name}, ${px}: ${py}`)}</title></circle>`);
    }
    legendEntry(out, k, s.name, colour, box, height, 4);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
