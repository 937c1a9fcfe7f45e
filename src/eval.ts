#!/usr/bin/env node
/**
 * `node dist/eval.js --model DIR [--adapter DIR] --data DIR [--split test] [--out report.json]
 *  [--compare DIR2] [--compare-adapter DIR]`: scores a CLIP model (and optionally a second one, or
 * the same one with another adapter) on a split built by `node dist/data.js build`, prints a
 * Markdown table and writes report.json + report.md atomically.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { isRegularFile, MAX_CONFIG_BYTES, readRegularTextSync, regularFileSize } from './io/read-file-node.js';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { nodeContext } from './engine/node-gpu.js';
import { loadClip, loadClipTokenizer } from './models/load-node.js';
import { loadLora } from './models/peft-node.js';
import type { ClipModel } from './models/clip.js';
import type { LoraSet } from './models/lora.js';
import { WordTokenizer, WORD_TOKENIZER_FORMAT, type Tokenizer } from './models/tokenizer/index.js';
import { stderrIsTty } from './cli/dawn-quiet-node.js';
import { lockOutput } from './cli/run-lock-node.js';
import { prepareOutputFolder } from './cli/out-path-node.js';
import { runCli, UsageError, type FlagTable } from './cli/args.js';
import { requireInputFiles } from './cli/input-file-node.js';
import { imageConfigFor, loadPixels } from './cli/images-node.js';
import { checkImagesExist, openDatasetSplit, parseSplitName } from './data/dataset-node.js';
import type { SplitName } from './data/splits.js';
import { writeFileAtomic } from './io/atomic-write-node.js';
import { evaluateClip, planEvaluation, planIsEmpty, reportMarkdown, type EvalReport } from './nast/evaluate.js';
import { evalFileJson, evalMarkdownPath, evalTitle } from './nast/eval-file.js';
import { probeImageTower } from './world/probe-node.js';
import { probeMarkdown, type ProbeReport } from './world/linear-probe.js';
import { benchmarkMarkdown, readBenchmarkFiles, runBenchmarks, type BenchmarkResults, type BenchmarkSet } from './nast/benchmark-files-node.js';

const FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'CLIP checkpoint: Hugging Face folder (config.json + model.safetensors or pytorch_model.bin), OpenAI-layout .safetensors, or a PyTorch / open_clip / NegBench .pt (with --config)' },
  adapter: { kind: 'string', meta: 'DIR', help: 'PEFT LoRA adapter folder to apply to --model' },
  data: { kind: 'string', meta: 'DIR', help: 'data folder from node dist/data.js build (or one of its split folders); optional with benchmark files' },
  split: { kind: 'string', meta: 'SPLIT', help: 'train, val or test (default test; not needed when --data is a split folder)' },
  out: { kind: 'string', meta: 'FILE', help: 'write the JSON report here and the Markdown table beside it (FILE with .md)' },
  compare: { kind: 'string', meta: 'DIR|FILE', help: 'a second model, evaluated side by side (may be the same as --model)' },
  'compare-adapter': { kind: 'string', meta: 'DIR', help: 'adapter for the second model; without --compare, the second model is --model itself (e.g. base vs base + adapter)' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'CLIP BPE file/folder or a word-tokenizer JSON (default: found in the model folder)' },
  'batch-size': { kind: 'int', default: 64, help: 'texts and images per forward pass' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use instead of the one beside the weights (both models)' },
  title: { kind: 'string', meta: 'TEXT', help: 'heading of the Markdown report (default: the data folder and split)' },
  'negbench-mcq': { kind: 'string', meta: 'FILE.csv', help: 'a NegBench MCQ CSV (image_path, correct_answer, caption_0..3, correct_answer_template; or the binary caption_0/caption_1 variant)' },
  'negbench-retrieval': { kind: 'string', meta: 'FILE.csv', help: 'a NegBench retrieval CSV (filepath, captions as a Python list)' },
  'nast-mcq': { kind: 'string', meta: 'FILE.json', help: "NAST's paired MCQ file (negation_mcq_choice_1..4, affirmative_mcq_choice_1..4, correct_answer)" },
  'image-root': { kind: 'string', meta: 'DIR', help: 'folder the benchmark files\' image paths are relative to (default: each file\'s folder)' },
  'benchmark-name': { kind: 'string', meta: 'NAME', help: 'prefix of the results.jsonl keys, as NegBench names its datasets (e.g. coco gives coco-mcq-total_accuracy; default: the file name)' },
  strict: { kind: 'boolean', help: 'a benchmark row with a missing image or a malformed field is an error (default: reported and left out)' },
  probe: { kind: 'boolean', help: 'also fit linear probes of the frozen image embeddings (first model): logistic regression per image attribute on the train split, accuracy on this split' },
};

/** A word-tokenizer JSON file, or undefined when the file is something else. */
function wordTokenizerAt(path: string): WordTokenizer | undefined {
  if (!isRegularFile(path) || extname(path) !== '.json') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readRegularTextSync(path, MAX_CONFIG_BYTES, 'a tokenizer file'));
  } catch {
    return undefined;
  }
  if ((json as { format?: unknown })?.format !== WORD_TOKENIZER_FORMAT) return undefined;
  return WordTokenizer.fromJSON(json, path);
}

/**
 * The tokenizer of a model: a word-tokenizer JSON (the miniature world's) when --tokenizer names
 * one or the model folder holds one, otherwise CLIP's BPE (loadClipTokenizer's search).
 */
function tokenizerFor(modelPath: string, tokenizerPath: string | undefined): Tokenizer {
  if (tokenizerPath) return wordTokenizerAt(tokenizerPath) ?? loadClipTokenizer(modelPath, tokenizerPath);
  const folder = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  for (const name of ['word-tokenizer.json', 'word_tokenizer.json', 'tokenizer.json']) {
    const w = wordTokenizerAt(join(folder, name));
    if (w) return w;
  }
  return loadClipTokenizer(modelPath);
}

const hasVision = (lora: LoraSet | null) => lora !== null && lora.modules.some((m) => m.tower === 'vision');

/** Progress on stderr: a line per phase, rewritten in place on a terminal. */
function progress(label: string) {
  const tty = stderrIsTty();
  let last = 0;
  return (phase: string, done: number, total: number) => {
    const now = Date.now();
    const end = done >= total;
    if (!end && now - last < 1000) return;
    last = now;
    const line = `eval: ${label}: ${phase} ${done}/${total}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K${end ? '\n' : ''}`);
    else if (end) process.stderr.write(`${line}\n`);
  };
}

interface Entry {
  model: string;
  adapter: string | undefined;
}

await runCli('eval', 'usage: node dist/eval.js --model DIR [--adapter DIR] (--data DIR [--split test] | --negbench-mcq FILE.csv | --negbench-retrieval FILE.csv | --nast-mcq FILE.json) [--out report.json] [--compare DIR2 [--compare-adapter DIR]]',
  'Evaluates CLIP on built negation data: retrieval R@1/R@5, claim accuracy, NegBench MCQ accuracy per template type, paired negated/affirmative accuracy and gap, affirmative-only subsets.',
  FLAGS, async (f) => {
    const model = f.model as string | undefined;
    const data = f.data as string | undefined;
    if (!model) throw new UsageError('--model is required (a CLIP folder or .safetensors file)');
    if (f.out !== undefined) {
      prepareOutputFolder('out', f.out as string);
      // Per report file: evaluations into one folder (the working directory, say) may run side by side.
      lockOutput(dirname(resolve(f.out as string)), 'eval.js', (line) => process.stderr.write(`eval: ${line}\n`), `.${basename(f.out as string)}.lock`);
    }
    const benchFiles = { negbenchMcq: f['negbench-mcq'] as string | undefined, negbenchRetrieval: f['negbench-retrieval'] as string | undefined, nastMcq: f['nast-mcq'] as string | undefined, imageRoot: f['image-root'] as string | undefined };
    const anyBench = Boolean(benchFiles.negbenchMcq || benchFiles.negbenchRetrieval || benchFiles.nastMcq);
    for (const flag of ['config', 'negbench-mcq', 'negbench-retrieval', 'nast-mcq']) requireInputFiles(flag, f[flag] as string | undefined);
    if (!data && !anyBench) throw new UsageError('--data is required (a folder written by node dist/data.js build), or a benchmark file (--negbench-mcq, --negbench-retrieval, --nast-mcq)');
    if (benchFiles.imageRoot && !(existsSync(benchFiles.imageRoot) && statSync(benchFiles.imageRoot).isDirectory())) throw new UsageError(`--image-root ${benchFiles.imageRoot}: no such folder`);
    if (f.probe && !data) throw new UsageError('--probe needs --data (the probe is fitted on a data folder\'s train split)');
    let split: SplitName | undefined;
    try {
      split = f.split === undefined ? undefined : parseSplitName(f.split as string);
    } catch (e) {
      throw new UsageError(`--split: ${(e as Error).message}`);
    }
    const batchSize = f['batch-size'] as number;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError(`--batch-size: expected a positive integer, got ${batchSize}`);
    const entries: Entry[] = [{ model, adapter: f.adapter as string | undefined }];
    const compare = f.compare as string | undefined;
    const compareAdapter = f['compare-adapter'] as string | undefined;
    if (compare !== undefined || compareAdapter !== undefined) {
      entries.push({ model: compare ?? model, adapter: compareAdapter });
      if (resolve(entries[1]!.model) === resolve(model) && (entries[1]!.adapter && resolve(entries[1]!.adapter)) === (entries[0]!.adapter && resolve(entries[0]!.adapter))) {
        throw new UsageError('--compare names the same model and adapter as --model; give another model or --compare-adapter');
      }
    }
    for (const e of entries) if (!existsSync(e.model)) throw new Error(`${e.model}: no such model file or folder`);

    // Data first: its errors are cheap and need no GPU.
    const bench: BenchmarkSet | null = anyBench ? readBenchmarkFiles(benchFiles, f.strict as boolean) : null;
    if (bench && f['benchmark-name']) bench.prefix = f['benchmark-name'] as string;
    if (bench) for (const s of bench.skipped) process.stderr.write(`eval: ${s.file}:${s.line}: skipped: ${s.reason}\n`);
    const ds = data ? await openDatasetSplit(data, split) : null;
    const records = ds ? await ds.readRecords() : [];
    const plan = planEvaluation(records);
    if (ds) {
      const where = ds.dir;
      if (records.length === 0) throw new Error(`${where}: ${ds.split ? `the ${ds.split} split` : 'the split'} is empty (0 records)`);
      if (planIsEmpty(plan)) {
        throw new Error(`${where}: nothing to evaluate: no captions, claim sets or MCQs (records: ${Object.entries(plan.kinds).map(([k, n]) => `${k} ${n}`).join(', ')})`);
      }
      await checkImagesExist(ds, plan.images);
    }

    // The probe is fitted on the train split of the same data folder.
    let probeTrain: Awaited<ReturnType<typeof openDatasetSplit>> | null = null;
    if (f.probe && ds && data) {
      const root = existsSync(join(data, 'dataset.json')) ? data : dirname(resolve(ds.dir));
      if (!existsSync(join(root, 'dataset.json'))) throw new UsageError(`--probe: ${data} is a split folder outside a data folder; pass the data folder (its train split fits the probe)`);
      probeTrain = await openDatasetSplit(root, 'train');
    }

    const ctx = await nodeContext();
    const rows: { name: string; model: string; adapter: string | null; seconds: number; report: EvalReport | null; benchmarks?: BenchmarkResults }[] = [];
    let probe: (ProbeReport & { trainImages: number; testImages: number }) | null = null;
    let clip: ClipModel | null = null;
    let clipPath = '';
    // Image embeddings of the loaded model without vision adapters: the same for every text-only adapter.
    let cachedImages: Float32Array | undefined;
    try {
      for (const e of entries) {
        const t0 = Date.now();
        const path = resolve(e.model);
        if (clip === null || clipPath !== path) {
          clip?.dispose();
          clip = null;
          cachedImages = undefined;
          clip = await loadClip(ctx, e.model, { configPath: f.config as string | undefined, weights: 'auto' });
          clipPath = path;
        }
        const tokenizer = tokenizerFor(e.model, f.tokenizer as string | undefined);
        if (tokenizer.vocabSize > clip.config.text.vocabSize) {
          throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but ${e.model} has a vocabulary of ${clip.config.text.vocabSize}: pass the model's tokenizer with --tokenizer`);
        }
        const lora = e.adapter ? await loadLora(clip, e.adapter) : null;
        try {
          const name = basename(e.model) + (e.adapter ? ` + ${basename(resolve(e.adapter))}` : '');
          const reuse = hasVision(lora) ? undefined : cachedImages;
          const cfg = clip.config;
          const imageConfig = imageConfigFor(e.model, cfg);
          let report: EvalReport | null = null;
          if (ds) {
            const result = await evaluateClip(clip, records, {
              tokenizer,
              batchSize,
              ...(reuse ? { imageEmbeds: reuse } : { loadPixels: (refs: readonly string[]) => loadPixels(refs.map(ds.resolveImage), imageConfig, cfg.vision.imageSize) }),
              onProgress: progress(name),
            });
            if (!hasVision(lora)) cachedImages = result.imageEmbeds;
            if (probeTrain && probe === null) {
              process.stderr.write(`eval: ${name}: linear probes of the image embeddings (fitted on ${probeTrain.dir})\n`);
              probe = await probeImageTower(clip, imageConfig, probeTrain, ds);
            }
            report = result.report;
          }
          const benchmarks = bench ? await runBenchmarks(clip, tokenizer, imageConfig, bench, batchSize) : undefined;
          rows.push({ name, model: e.model, adapter: e.adapter ?? null, seconds: (Date.now() - t0) / 1000, report, ...(benchmarks ? { benchmarks } : {}) });
        } finally {
          lora?.dispose();
        }
      }
    } finally {
      (clip as ClipModel | null)?.dispose();
    }
    // Two rows with the same label (e.g. two adapters both called "adapter") stay apart.
    const seen = new Map<string, number>();
    for (const r of rows) {
      const n = (seen.get(r.name) ?? 0) + 1;
      seen.set(r.name, n);
      if (n > 1) r.name = `${r.name} (${n})`;
    }

    const title = (f.title as string | undefined) ?? (ds ? evalTitle(ds.dir, ds.split) : 'Benchmark evaluation');
    const probeReport = probe as (ProbeReport & { trainImages: number; testImages: number }) | null;
    const dataRows = rows.filter((r): r is typeof r & { report: EvalReport } => r.report !== null);
    const md = (dataRows.length ? reportMarkdown(dataRows, title) : `## ${title}\n\n`)
      + (probeReport ? `\n${probeMarkdown(probeReport, `${rows[0]!.name}, fitted on ${probeReport.trainImages} train images, scored on ${probeReport.testImages}`)}` : '')
      + (bench ? `\n${benchmarkMarkdown(rows.map((r) => ({ name: r.name, bench: r.benchmarks! })), bench)}` : '');
    process.stdout.write(md);
    const out = f.out as string | undefined;
    if (out) {
      const json = evalFileJson(ds ? { dir: ds.dir, split: ds.split ?? null, records: records.length, kinds: plan.kinds } : null, rows, {
        ...(probeReport ? { probe: { model: rows[0]!.name, ...probeReport } } : {}),
        // The first model's benchmark results at the top level (each model's are in models[]).
        ...(bench ? { negbench: rows[0]!.benchmarks!.negbench, ...(rows[0]!.benchmarks!.nast_mcq ? { nast_mcq: rows[0]!.benchmarks!.nast_mcq } : {}), skipped_rows: bench.skipped } : {}),
      });
      const mdPath = evalMarkdownPath(out);
      mkdirSync(dirname(resolve(out)), { recursive: true });
      await writeFileAtomic(out, JSON.stringify(json, null, 2) + '\n');
      await writeFileAtomic(mdPath, md);
      if (bench) {
        // NegBench's own results.jsonl beside the report: one line per model, their key names.
        // Appended, as NegBench appends: a second evaluation into the folder loses nothing. One
        // O_APPEND write, so evaluations finishing side by side do not overwrite each other.
        const lines = rows.map((r) => JSON.stringify({ model: r.name, ...r.benchmarks!.results_line })).join('\n');
        const file = join(dirname(out), 'results.jsonl');
        const before = existsSync(file) ? regularFileSize(file) : 0;
        await appendFile(file, `${lines}\n`);
        if (before > 0) process.stderr.write(`eval: appended to ${file}, which already held results\n`);
      }
      process.stderr.write(`eval: wrote ${out}${bench ? `, ${join(dirname(out), 'results.jsonl')}` : ''} and ${mdPath}\n`);
    }
  });
