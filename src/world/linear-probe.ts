/**
 * Linear probes on frozen embeddings: how much of an attribute a representation carries, read
 * by L2-regularised logistic regression (fitted by Newton's method, exact on these small
 * problems) on one split and scored on another. The frozen image tower sets the ceiling of any
 * text-side fine-tune: a claim about an attribute the image embedding does not carry cannot be
 * learned by changing the text encoder. Browser-safe, float64 on the host.
 */

export interface ProbeLabels {
  /** Row of the embedding matrix this image's embedding is in. */
  row: number;
  /** attribute name -> 0 or 1; an attribute an image has no label for is left out. */
  labels: Readonly<Record<string, 0 | 1>>;
}

export interface ProbeResult {
  attribute: string;
  /** Family: the part of the name before the first ':' ("presence", "size", "side"). */
  family: string;
  train: number;
  test: number;
  /**
   * Held-out balanced accuracy, (true-positive rate + true-negative rate) / 2: a constant guess
   * gets 0.5 whatever the class balance (a presence label is 1 for about one image in eight, so
   * plain accuracy would credit "never present" with 87 %).
   */
  balanced: number;
  /** Plain held-out accuracy, and the majority-class rate beside it (what a constant guess gets). */
  accuracy: number;
  majority: number;
}

export interface ProbeFamily {
  family: string;
  attributes: number;
  /** Mean and minimum held-out balanced accuracy over the family's attributes. */
  mean: number;
  min: number;
  /** Mean plain accuracy and majority-class rate, for reference. */
  accuracy: number;
  majority: number;
}

export interface ProbeReport {
  attributes: ProbeResult[];
  families: ProbeFamily[];
  /** Attributes skipped (one class only in the training split, or too few examples), with why. */
  skipped: { attribute: string; reason: string }[];
}

export interface LogisticOptions {
  /** L2 penalty per example on the standardised weights (not the bias). Default 1e-3. */
  ridge?: number;
  iterations?: number;
  /**
   * Weigh each class by half the examples over its count (default true), so that a rare label
   * (an object present in one image of eight) counts as much as the common one.
   */
  balanced?: boolean;
}

/**
 * Fits p(y = 1 | x) = sigmoid(w . z(x) + b), z the features standardised on the training rows;
 * returns the decision function w . z(x) + b. X is row-major [rows, dim].
 */
export function fitLogistic(x: ArrayLike<number>, dim: number, rows: readonly number[], y: readonly number[], opts: LogisticOptions = {}): (row: number) => number {
  if (rows.length !== y.length) throw new Error(`fitLogistic: ${rows.length} rows but ${y.length} labels`);
  if (rows.length === 0) throw new Error('fitLogistic: no training rows');
  const ridge = (opts.ridge ?? 1e-3) * rows.length;
  const iterations = opts.iterations ?? 30;
  const ones = y.filter((v) => v === 1).length;
  const weightOf = (v: number) => (opts.balanced ?? true) && ones > 0 && ones < y.length ? rows.length / (2 * (v === 1 ? ones : y.length - ones)) : 1;
  const classWeight = [weightOf(0), weightOf(1)];
  const mu = new Float64Array(dim);
  const sd = new Float64Array(dim);
  for (const r of rows) for (let k = 0; k < dim; k++) mu[k] += x[r * dim + k];
  for (let k = 0; k < dim; k++) mu[k] /= rows.length;
  for (const r of rows) for (let k = 0; k < dim; k++) sd[k] += (x[r * dim + k] - mu[k]) ** 2;
  for (let k = 0; k < dim; k++) sd[k] = Math.sqrt(sd[k] / rows.length) || 1;
  const n = dim + 1;
  const feature = (r: number, f: Float64Array) => {
    for (let k = 0; k < dim; k++) f[k] = (x[r * dim + k] - mu[k]) / sd[k];
    f[dim] = 1;
  };
  const w = new Float64Array(n);
  const f = new Float64Array(n);
  for (let it = 0; it < iterations; it++) {
    const g = new Float64Array(n);
    const h = new Float64Array(n * n);
    rows.forEach((r, i) => {
      feature(r, f);
      let z = 0;
      for (let k = 0; k < n; k++) z += w[k] * f[k];
      const p = 1 / (1 + Math.exp(-z));
      const cw = classWeight[y[i]];
      const e = cw * (p - y[i]);
      const s = cw * Math.max(p * (1 - p), 1e-10);
      for (let a = 0; a < n; a++) {
        g[a] += e * f[a];
        const sa = s * f[a];
        for (let b = 0; b <= a; b++) h[a * n + b] += sa * f[b];
      }
    });
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < a; b++) h[b * n + a] = h[a * n + b];
      if (a < dim) {
        h[a * n + a] += ridge;
        g[a] += ridge * w[a];
      } else {
        h[a * n + a] += 1e-9;
      }
    }
    const step = choleskySolve(h, g, n);
    let largest = 0;
    for (let k = 0; k < n; k++) {
      w[k] -= step[k];
      largest = Math.max(largest, Math.abs(step[k]));
    }
    if (largest < 1e-7) break;
  }
  return (r) => {
    feature(r, f);
    let z = 0;
    for (let k = 0; k < n; k++) z += w[k] * f[k];
    return z;
  };
}

/** Solves H s = g for a symmetric positive definite H [n, n]. */
function choleskySolve(h: Float64Array, g: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = h[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-300)) : s / l[j * n + j];
    }
  }
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = g[i];
    for (let k = 0; k < i; k++) s -= l[i * n + k] * z[k];
    z[i] = s / l[i * n + i];
  }
  const out = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = z[i];
    for (let k = i + 1; k < n; k++) s -= l[k * n + i] * out[k];
    out[i] = s / l[i * n + i];
  }
  return out;
}

const familyOf = (attribute: string) => attribute.split(':')[0];

/**
 * One probe per attribute labelled in both splits: fitted on `train`, scored on `test`. An
 * attribute with one class only among its training images, or fewer than `minExamples` labelled
 * images in a split, is skipped with the reason.
 */
export function linearProbes(
  embeds: ArrayLike<number>, dim: number, train: readonly ProbeLabels[], test: readonly ProbeLabels[],
  opts: LogisticOptions & { minExamples?: number } = {},
): ProbeReport {
  const minExamples = opts.minExamples ?? 10;
  const names = [...new Set(train.flatMap((t) => Object.keys(t.labels)))].sort();
  const attributes: ProbeResult[] = [];
  const skipped: { attribute: string; reason: string }[] = [];
  for (const attribute of names) {
    const tr = train.filter((t) => t.labels[attribute] !== undefined);
    const te = test.filter((t) => t.labels[attribute] !== undefined);
    const yTr = tr.map((t) => t.labels[attribute]);
    const positives = yTr.filter((v) => v === 1).length;
    if (tr.length < minExamples || te.length < minExamples) {
      skipped.push({ attribute, reason: `${tr.length} training and ${te.length} test images labelled, fewer than ${minExamples}` });
      continue;
    }
    if (positives === 0 || positives === tr.length) {
      skipped.push({ attribute, reason: `every training image has label ${yTr[0]}` });
      continue;
    }
    const decide = fitLogistic(embeds, dim, tr.map((t) => t.row), yTr, opts);
    const hit = [0, 0];
    const count = [0, 0];
    for (const t of te) {
      const y = t.labels[attribute];
      count[y]++;
      if ((decide(t.row) > 0 ? 1 : 0) === y) hit[y]++;
    }
    // A test split with one class only has no rate for the other: balanced is then that class's rate.
    const rates = [0, 1].filter((c) => count[c] > 0).map((c) => hit[c] / count[c]);
    attributes.push({
      attribute, family: familyOf(attribute), train: tr.length, test: te.length,
      balanced: rates.reduce((a, b) => a + b, 0) / rates.length,
      accuracy: (hit[0] + hit[1]) / te.length, majority: Math.max(count[0], count[1]) / te.length,
    });
  }
  const families = [...new Set(attributes.map((a) => a.family))].map((family): ProbeFamily => {
    const rows = attributes.filter((a) => a.family === family);
    const avg = (f: (a: ProbeResult) => number) => rows.reduce((s, a) => s + f(a), 0) / rows.length;
    return {
      family, attributes: rows.length, mean: avg((a) => a.balanced), min: Math.min(...rows.map((a) => a.balanced)),
      accuracy: avg((a) => a.accuracy), majority: avg((a) => a.majority),
    };
  });
  return { attributes, families, skipped };
}

/** The per-family table, as Markdown (percentages). */
export function probeFamilyTable(families: readonly ProbeFamily[]): string {
  const pct = (x: number) => (100 * x).toFixed(1);
  return [
    '| attribute family | attributes | balanced accuracy, mean | balanced accuracy, min | accuracy | majority class |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...families.map((f) => `| ${f.family} | ${f.attributes} | ${pct(f.mean)} | ${pct(f.min)} | ${pct(f.accuracy)} | ${pct(f.majority)} |`),
  ].join('\n') + '\n';
}

/** The per-family table and the weakest attributes, as Markdown. */
export function probeMarkdown(r: ProbeReport, what: string): string {
  const pct = (x: number) => (100 * x).toFixed(1);
  const lines = [
    `### Linear probe of the frozen image embeddings (${what})`, '',
    ...probeFamilyTable(r.families).split('\n'),
  ];
  const weakest = [...r.attributes].sort((a, b) => a.balanced - b.balanced).slice(0, 3);
  if (weakest.length) lines.push(`Weakest (balanced): ${weakest.map((a) => `${a.attribute} ${pct(a.balanced)}`).join(', ')}.`);
  if (r.skipped.length) lines.push('', `Skipped ${r.skipped.length}: ${r.skipped.slice(0, 3).map((s) => `${s.attribute} (${s.reason})`).join('; ')}.`);
  return lines.join('\n') + '\n';
}
