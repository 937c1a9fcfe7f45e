/**
 * The papers' benchmark files from disk (Node side of negbench-files.ts and negbench-eval.ts):
 * read and checked up front, image paths resolved against an image root (default: each file's
 * folder) and checked to exist, every unusable row kept with its file and line; then scored on a
 * model.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import {
  parseNastMcqJson, parseNegBenchMcqCsv, parseNegBenchRetrievalCsv,
  type NastMcqRow, type NegBenchMcqRow, type NegBenchRetrievalRow, type Parsed,
} from '../data/negbench-files.js';
import type { ClipModel } from '../models/clip.js';
import type { Tokenizer } from '../models/tokenizer/index.js';
import type { ClipImageConfig } from '../models/image/preprocess.js';
import { loadPixels } from '../cli/images-node.js';
import { isRegularFile, MAX_TEXT_BYTES, readRegularTextSync } from '../io/read-file-node.js';
import {
  nastMcq, negBenchMcq, negBenchResultsLine, negBenchRetrieval,
  type NastMcqResult, type NegBenchMcqResult, type NegBenchRetrievalResult,
} from './negbench-eval.js';

export interface BenchmarkFiles {
  negbenchMcq?: string;
  negbenchRetrieval?: string;
  nastMcq?: string;
  /** Folder image paths are relative to; default each file's own folder. */
  imageRoot?: string;
}

export interface SkippedRow {
  file: string;
  line: number;
  reason: string;
}

export interface BenchmarkSet {
  mcq: NegBenchMcqRow[] | null;
  retrieval: NegBenchRetrievalRow[] | null;
  nast: NastMcqRow[] | null;
  skipped: SkippedRow[];
  /** NegBench's results.jsonl prefix: the MCQ (or retrieval) file's name without extension and "_mcq". */
  prefix: string;
}

function readText(file: string): string {
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  return readRegularTextSync(file, MAX_TEXT_BYTES, 'a benchmark file read whole');
}

/** Reads every given file; rows with a problem or a missing image go to `skipped` (fatal with strict). */
export function readBenchmarkFiles(files: BenchmarkFiles, strict: boolean): BenchmarkSet {
  const skipped: SkippedRow[] = [];
  const load = <T extends { line: number; image: string }>(file: string | undefined, parse: (text: string, file: string) => Parsed<T>): T[] | null => {
    if (!file) return null;
    const parsed = parse(readText(file), file);
    for (const p of parsed.problems) skipped.push({ file, ...p });
    const root = files.imageRoot ? resolve(files.imageRoot) : dirname(resolve(file));
    const rows: T[] = [];
    for (const r of parsed.rows) {
      const path = isAbsolute(r.image) ? r.image : resolve(root, r.image);
      // A FIFO or device is as unusable as a missing file (reading it would hang or never end).
      if (!isRegularFile(path)) {
        skipped.push({ file, line: r.line, reason: existsSync(path) ? `image is not a regular file: ${path}` : `image not found: ${path}` });
        continue;
      }
      rows.push({ ...r, image: path });
    }
    if (rows.length === 0) throw new Error(`${file}: no usable rows (${parsed.rows.length + parsed.problems.length} read${skipped.length ? `; first problem, line ${skipped.find((s) => s.file === file)?.line}: ${skipped.find((s) => s.file === file)?.reason}` : ''})`);
    return rows;
  };
  const set: BenchmarkSet = {
    mcq: load(files.negbenchMcq, parseNegBenchMcqCsv),
    retrieval: load(files.negbenchRetrieval, parseNegBenchRetrievalCsv),
    nast: load(files.nastMcq, parseNastMcqJson),
    skipped,
    prefix: basename(files.negbenchMcq ?? files.negbenchRetrieval ?? files.nastMcq ?? 'benchmark', extname(files.negbenchMcq ?? files.negbenchRetrieval ?? files.nastMcq ?? '')).toLowerCase().replace(/[_-]?mcq$/, '').replace(/[_-]?retrieval$/, '') || 'benchmark',
  };
  if (strict && skipped.length > 0) {
    const first = skipped.slice(0, 3).map((s) => `${s.file}:${s.line}: ${s.reason}`).join('; ');
    throw new Error(`--strict: ${skipped.length} row(s) cannot be used: ${first}${skipped.length > 3 ? '; ...' : ''}`);
  }
  return set;
}

export interface BenchmarkResults {
  negbench: { mcq?: NegBenchMcqResult; retrieval?: NegBenchRetrievalResult };
  nast_mcq?: NastMcqResult;
  /** NegBench's results.jsonl keys. */
  results_line: Record<string, number>;
}

export async function runBenchmarks(model: ClipModel, tokenizer: Tokenizer, imageConfig: ClipImageConfig, set: BenchmarkSet, batchSize: number): Promise<BenchmarkResults> {
  const opts = {
    tokenizer, batchSize,
    loadPixels: (paths: readonly string[]) => loadPixels(paths, imageConfig, model.config.vision.imageSize),
  };
  const mcq = set.mcq ? await negBenchMcq(model, set.mcq, opts) : undefined;
  const retrieval = set.retrieval ? await negBenchRetrieval(model, set.retrieval, opts) : undefined;
  const nast = set.nast ? await nastMcq(model, set.nast, opts) : undefined;
  return {
    negbench: { ...(mcq ? { mcq } : {}), ...(retrieval ? { retrieval } : {}) },
    ...(nast ? { nast_mcq: nast } : {}),
    results_line: negBenchResultsLine(set.prefix, mcq ?? null, retrieval ?? null),
  };
}

/** The benchmark results as Markdown (percentages). */
export function benchmarkMarkdown(rows: readonly { name: string; bench: BenchmarkResults }[], set: BenchmarkSet): string {
  const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '' : (100 * x).toFixed(1));
  const out: string[] = [];
  if (set.mcq) {
    out.push('### NegBench MCQ', '', '| Model | n | accuracy | positive | negative | hybrid |', '| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      const m = r.bench.negbench.mcq!;
      out.push(`| ${r.name} | ${m.n} | ${pct(m.accuracy)} | ${pct(m.by_template.positive.accuracy)} | ${pct(m.by_template.negative.accuracy)} | ${pct(m.by_template.hybrid.accuracy)} |`);
    }
    out.push('');
  }
  if (set.retrieval) {
    out.push('### NegBench retrieval', '', '| Model | queries | images | text->image R@1 | R@5 | image->text R@1 | R@5 |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      const m = r.bench.negbench.retrieval!;
      out.push(`| ${r.name} | ${m.n_queries} | ${m.n_images} | ${pct(m.text_to_image_r1)} | ${pct(m.text_to_image_r5)} | ${pct(m.image_to_text_r1)} | ${pct(m.image_to_text_r5)} |`);
    }
    out.push('');
  }
  if (set.nast) {
    out.push('### NAST paired MCQ', '', '| Model | n | negated | affirmative | gap |', '| --- | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      const m = r.bench.nast_mcq!;
      out.push(`| ${r.name} | ${m.n} | ${pct(m.negated.accuracy)} | ${pct(m.affirmative.accuracy)} | ${pct(m.gap)} |`);
    }
    out.push('');
  }
  if (set.skipped.length) out.push(`Skipped ${set.skipped.length} row(s): ${set.skipped.slice(0, 5).map((s) => `${basename(s.file)}:${s.line} (${s.reason})`).join('; ')}${set.skipped.length > 5 ? '; ...' : ''}.`, '');
  return out.join('\n');
}
