/**
 * A small SVG line chart of the training loss per step, redrawn as steps come in. Each step's
 * loss is of a different small batch and jumps about, so a trailing mean is drawn over it.
 */
import { formatNumber } from './lib-entry.js';

function ticks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
  return out;
}

/** Mean of the last `window` values at each index (fewer at the start). */
export function trailingMean(values: readonly number[], window: number): number[] {
  let sum = 0;
  return values.map((v, i) => {
    sum += v;
    if (i >= window) sum -= values[i - window];
    return sum / Math.min(i + 1, window);
  });
}

/**
 * SVG of `losses[i]` at step i + 1 on an x axis of `totalSteps` steps, with the trailing mean
 * over `window` steps. Each point is a `<circle class="pt" data-step data-loss>`, so tests can
 * read what is drawn.
 */
export function lossChartSvg(losses: readonly number[], totalSteps: number, window = 5): string {
  const w = 560;
  const h = 220;
  const left = 52;
  const right = 12;
  const top = 26;
  const bottom = 34;
  const finite = losses.filter(Number.isFinite);
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  if (hi - lo < 1e-6) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const steps = Math.max(totalSteps, losses.length, 2);
  const x = (s: number) => left + ((s - 1) / (steps - 1)) * (w - left - right);
  const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11" role="img" aria-label="training loss per step">`];
  out.push(`<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`);
  const yt = ticks(lo, hi, 4);
  const digits = Math.max(0, Math.min(4, -Math.floor(Math.log10((yt[1] ?? yt[0] + 1) - yt[0]) + 1e-9)));
  for (const t of yt) {
    out.push(`<line x1="${left}" x2="${w - right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e4e7ee"/>`);
    out.push(`<text x="${left - 6}" y="${y(t).toFixed(1)}" text-anchor="end" dominant-baseline="middle">${formatNumber(t, digits)}</text>`);
  }
  for (const t of ticks(1, steps, 6).filter((s) => Number.isInteger(s) && s >= 1)) {
    out.push(`<text x="${x(t).toFixed(1)}" y="${h - bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<line x1="${left}" x2="${w - right}" y1="${h - bottom}" y2="${h - bottom}" stroke="#555555"/>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${h - bottom}" stroke="#555555"/>`);
  out.push(`<text x="${(left + w - right) / 2}" y="${h - 4}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(12 ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">loss</text>`);
  const line = (vals: readonly number[], attrs: string) => {
    const pts = vals.map((v, i) => [x(i + 1), Number.isFinite(v) ? y(v) : NaN] as const).filter(([, py]) => Number.isFinite(py));
    if (pts.length > 1) out.push(`<polyline fill="none" ${attrs} points="${pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>`);
  };
  line(losses, 'stroke="#9fb3e6" stroke-width="1"');
  line(trailingMean(losses, window), 'class="mean" stroke="#b3261e" stroke-width="2.5"');
  out.push(`<text x="${w - right}" y="14" text-anchor="end"><tspan fill="#2754c5">● loss of each step's batch</tspan>  <tspan fill="#b3261e">— mean of the last ${window} steps</tspan></text>`);
  losses.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    out.push(`<circle class="pt" data-step="${i + 1}" data-loss="${v}" cx="${x(i + 1).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="#2754c5"><title>step ${i + 1}: loss ${v}</title></circle>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
