/**
 * The validating reader of cte.json: every key `train --cte` and the report rely on is checked,
 * and an error names the file and the key (e.g. `cte.json: key "pairs[2].cte[3]" ...`).
 *
 * Version 1 files (no `version` key: `layers` counted the L + 1 residual indices, and CTE_l and
 * alpha included the embeddings in the min-max) still load: they are converted to version 2,
 * with the embeddings' value moved to `cte_embeddings`, alpha re-normalised over layers 1..L,
 * the positions rule taken as 'after' (version 1's only rule) and `upgraded_from: 1` set, so a
 * caller can say so (`cteUpgradeNote`).
 */
import {
  CTE_VERSION, POSITION_RULES, isPositionRule, minMaxAlpha,
  type CtePairJson, type CteReport, type CteSkippedJson, type Polarity, type PositionRule,
} from './cte.js';

/**
 * How far a stored alpha may sit from the min-max of cte_layer: rounding (a file written with
 * three or four decimals, as interop/torch's tests and hand-made files are), not editing.
 */
const ALPHA_TOLERANCE = 1e-3;

class Reader {
  constructor(readonly file: string) {}

  fail(key: string, msg: string): never {
    throw new Error(`${this.file}: ${key ? `key "${key}" ` : ''}${msg}`);
  }

  obj(v: unknown, key: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be an object, got ${kind(v)}`);
    return v as Record<string, unknown>;
  }

  arr(v: unknown, key: string, len?: number): unknown[] {
    if (!Array.isArray(v)) this.fail(key, `must be an array, got ${kind(v)}`);
    if (len !== undefined && v.length !== len) this.fail(key, `must have ${len} entries, has ${v.length}`);
    return v;
  }

  num(v: unknown, key: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a finite number, got ${kind(v)}`);
    return v;
  }

  str(v: unknown, key: string): string {
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${kind(v)}`);
    return v;
  }

  nums(v: unknown, key: string, len?: number): number[] {
    return this.arr(v, key, len).map((x, i) => this.num(x, `${key}[${i}]`));
  }

  /** A [rows][cols] matrix; cols fixed when given, else taken from row 0. */
  matrix(v: unknown, key: string, rows: number, cols?: number): number[][] {
    const m = this.arr(v, key, rows).map((r, i) => this.nums(r, `${key}[${i}]`));
    const w = cols ?? m[0]?.length ?? 0;
    m.forEach((r, i) => {
      if (r.length !== w) this.fail(`${key}[${i}]`, `must have ${w} entries (${cols === undefined ? `as ${key}[0]` : 'one per position'}), has ${r.length}`);
    });
    return m;
  }

  interval(v: unknown, key: string): [number, number] {
    const [lo, hi] = this.nums(v, key, 2);
    if (!(lo <= hi)) this.fail(key, `must be [lo, hi] with lo <= hi, got [${lo}, ${hi}]`);
    return [lo, hi];
  }

  /**
   * alpha, checked against the cte_layer it must be the min-max of: train.js scales each layer
   * by alpha, so an edited or mismatched alpha would train a different story than the trace's.
   * `layer(i)` names entry i ("layer 2").
   */
  alpha(v: unknown, key: string, cteLayer: readonly number[], layer: (i: number) => string): number[] {
    const a = this.nums(v, key, cteLayer.length);
    a.forEach((x, i) => {
      if (x < 0 || x > 1) this.fail(`${key}[${i}]`, `must be in [0, 1] (min-max normalised), got ${x} (${layer(i)})`);
    });
    const want = minMaxAlpha(cteLayer);
    a.forEach((x, i) => {
      if (Math.abs(x - want[i]) > ALPHA_TOLERANCE) {
        this.fail(`${key}[${i}]`, `is ${x} but the min-max of cte_layer gives ${want[i]} for ${layer(i)}; alpha must be cte_layer min-max normalised (re-trace, or fix the file)`);
      }
    });
    return a;
  }
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function pairsOf(r: Reader, v: unknown, rows: number): CtePairJson[] {
  return r.arr(v, 'pairs').map((pv, i): CtePairJson => {
    const k = `pairs[${i}]`;
    const p = r.obj(pv, k);
    const ids = r.nums(p.ids, `${k}.ids`);
    ids.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0) r.fail(`${k}.ids[${j}]`, `must be a token id (integer >= 0), got ${id}`);
    });
    const out: CtePairJson = {
      image: r.str(p.image, `${k}.image`),
      caption: r.str(p.caption, `${k}.caption`),
      foil: r.str(p.foil, `${k}.foil`),
      ids,
      s_corr: r.num(p.s_corr, `${k}.s_corr`),
      s_foil: r.num(p.s_foil, `${k}.s_foil`),
      d: r.num(p.d, `${k}.d`),
      cte: r.matrix(p.cte, `${k}.cte`, rows, ids.length),
      positions: [],
    };
    if (p.positions !== undefined) {
      out.positions = r.nums(p.positions, `${k}.positions`);
      out.positions.forEach((q, j) => {
        if (!Number.isInteger(q) || q < 0 || q >= ids.length) r.fail(`${k}.positions[${j}]`, `must be a position in [0, ${ids.length}), got ${q}`);
      });
    }
    if (p.polarity !== undefined) {
      const pol = p.polarity;
      if (pol !== 'caption' && pol !== 'foil') r.fail(`${k}.polarity`, `must be "caption" or "foil", got ${kind(pol)}`);
      out.polarity = pol;
    }
    return out;
  });
}

function skippedOf(r: Reader, v: unknown): CteSkippedJson[] {
  return r.arr(v, 'skipped').map((sv, i): CteSkippedJson => {
    const k = `skipped[${i}]`;
    const s = r.obj(sv, k);
    const out: CteSkippedJson = { caption: r.str(s.caption, `${k}.caption`), foil: r.str(s.foil, `${k}.foil`), reason: r.str(s.reason, `${k}.reason`) };
    if (s.image !== undefined) out.image = r.str(s.image, `${k}.image`);
    if (s.source !== undefined) out.source = r.str(s.source, `${k}.source`);
    return out;
  });
}

function byPolarity(r: Reader, v: unknown, len: number, from: number): { caption: number[] | null; foil: number[] | null } {
  const b = r.obj(v, 'cte_layer_by_polarity');
  const sub = (pol: Polarity) => {
    const x = b[pol];
    return x === null || x === undefined ? null : r.nums(x, `cte_layer_by_polarity.${pol}`, len).slice(from);
  };
  return { caption: sub('caption'), foil: sub('foil') };
}

function readV2(r: Reader, o: Record<string, unknown>): CteReport {
  const layers = r.num(o.layers, 'layers');
  if (!Number.isInteger(layers) || layers < 1) r.fail('layers', `must be an integer >= 1 (text-encoder layers), got ${layers}`);
  const rule = o.positions;
  if (!isPositionRule(rule)) r.fail('positions', `must be one of ${POSITION_RULES.map((p) => `"${p}"`).join(', ')}, got ${kind(rule)}`);
  const rows = layers + 1;
  const cteMean = r.matrix(o.cte_mean, 'cte_mean', rows);
  const beta = r.num(o.beta, 'beta');
  if (!(beta > 0)) r.fail('beta', `must be > 0, got ${beta}`);
  const cteLayer = r.nums(o.cte_layer, 'cte_layer', layers);
  const report: CteReport = {
    version: CTE_VERSION,
    layers,
    positions: rule as PositionRule,
    pairs: pairsOf(r, o.pairs, rows),
    skipped: skippedOf(r, o.skipped),
    cte_mean: cteMean,
    cte_embeddings: r.num(o.cte_embeddings, 'cte_embeddings'),
    cte_layer: cteLayer,
    alpha: r.alpha(o.alpha, 'alpha', cteLayer, (i) => `layer ${i + 1}`),
    beta,
  };
  const width = cteMean[0].length;
  if (o.cte_std !== undefined) report.cte_std = r.matrix(o.cte_std, 'cte_std', rows, width);
  if (o.cte_count !== undefined) report.cte_count = r.nums(o.cte_count, 'cte_count', width);
  if (o.cte_layer_std !== undefined) report.cte_layer_std = r.nums(o.cte_layer_std, 'cte_layer_std', layers);
  if (o.cte_layer_ci95 !== undefined) report.cte_layer_ci95 = r.arr(o.cte_layer_ci95, 'cte_layer_ci95', layers).map((x, i) => r.interval(x, `cte_layer_ci95[${i}]`));
  if (o.cte_embeddings_std !== undefined) report.cte_embeddings_std = r.num(o.cte_embeddings_std, 'cte_embeddings_std');
  if (o.cte_embeddings_ci95 !== undefined) report.cte_embeddings_ci95 = r.interval(o.cte_embeddings_ci95, 'cte_embeddings_ci95');
  if (o.bootstrap !== undefined) {
    const b = r.obj(o.bootstrap, 'bootstrap');
    report.bootstrap = { resamples: r.num(b.resamples, 'bootstrap.resamples'), seed: r.num(b.seed, 'bootstrap.seed') };
  }
  if (o.cte_layer_by_polarity !== undefined) report.cte_layer_by_polarity = byPolarity(r, o.cte_layer_by_polarity, layers, 0);
  if (o.min_delta !== undefined) report.min_delta = r.num(o.min_delta, 'min_delta');
  return report;
}

/** Version 1: `layers` = L + 1 residual indices, cte_layer and alpha over all of them. */
function readV1(r: Reader, o: Record<string, unknown>): CteReport {
  const rows = r.num(o.layers, 'layers');
  if (!Number.isInteger(rows) || rows < 2) r.fail('layers', `must be an integer >= 2 (version 1 counts the L + 1 residual indices), got ${rows}`);
  const cteMean = r.matrix(o.cte_mean, 'cte_mean', rows);
  const index = r.nums(o.cte_layer, 'cte_layer', rows);
  r.alpha(o.alpha, 'alpha', index, (i) => (i === 0 ? 'the embeddings' : `layer ${i}`));
  const beta = r.num(o.beta, 'beta');
  if (!(beta > 0)) r.fail('beta', `must be > 0, got ${beta}`);
  const cteLayer = index.slice(1);
  const report: CteReport = {
    version: CTE_VERSION,
    layers: rows - 1,
    positions: 'after',
    pairs: pairsOf(r, o.pairs, rows),
    skipped: skippedOf(r, o.skipped),
    cte_mean: cteMean,
    cte_embeddings: index[0],
    cte_layer: cteLayer,
    alpha: minMaxAlpha(cteLayer),
    beta,
    upgraded_from: 1,
  };
  const width = cteMean[0].length;
  if (o.cte_std !== undefined) report.cte_std = r.matrix(o.cte_std, 'cte_std', rows, width);
  if (o.cte_count !== undefined) report.cte_count = r.nums(o.cte_count, 'cte_count', width);
  if (o.cte_layer_std !== undefined) {
    const sd = r.nums(o.cte_layer_std, 'cte_layer_std', rows);
    report.cte_embeddings_std = sd[0];
    report.cte_layer_std = sd.slice(1);
  }
  if (o.cte_layer_by_polarity !== undefined) report.cte_layer_by_polarity = byPolarity(r, o.cte_layer_by_polarity, rows, 1);
  if (o.min_delta !== undefined) report.min_delta = r.num(o.min_delta, 'min_delta');
  return report;
}

/**
 * Reads a cte.json document (its text or the parsed value), version 2 or 1 (converted, see the
 * module comment); errors name the file and the key.
 */
export function parseCteReport(json: unknown, fileName: string): CteReport {
  const r = new Reader(fileName);
  let doc = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      r.fail('', `is not valid JSON: ${(e as Error).message}`);
    }
  }
  const o = r.obj(doc, '');
  if (o.version === undefined || o.version === 1) return readV1(r, o);
  if (o.version !== CTE_VERSION) r.fail('version', `must be 1 or ${CTE_VERSION}, got ${kind(o.version)} (written by a newer version of this tool?)`);
  return readV2(r, o);
}

/** One line for a converted version-1 report, or null for a current one. */
export function cteUpgradeNote(report: CteReport, fileName: string): string | null {
  if (report.upgraded_from !== 1) return null;
  return `${fileName}: version-1 cte.json (CTE over the first differing token through EOT, min-max including the embeddings); ` +
    `read as version 2: alpha re-normalised over layers 1..${report.layers} (${report.alpha.map((a) => a.toFixed(3)).join(', ')}). ` +
    'Re-run dist/trace.js for the negation-token positions (--positions differ).';
}
