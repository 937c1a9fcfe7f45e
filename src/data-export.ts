/**
 * `node dist/data.js export --data DATA --format negbench|jsonl --out DIR`:
 *   negbench  a built split in NegBench's formats: DIR/mcq.csv (its NegBench MCQs),
 *             DIR/retrieval.csv (each image's affirmative caption) and DIR/retrieval-neg.csv (its
 *             Retrieval-Neg captions: the caption with "There is no X in the image.");
 *   jsonl     the fine-tuning examples train.js would draw (a recipe's choice sets, each with a
 *             caption of its image), one JSON line each, with token ids when --model is given:
 *             DIR/{split}.jsonl per split, DIR/export.json (what was exported and how), and with
 *             --steps DIR/order.jsonl (train.js's batches for --batch-size and --seed).
 *             interop/torch/nast_torchrun.py trains on them.
 * Image paths are written absolute, so the files work from anywhere.
 */
import { join, resolve } from 'node:path';
import { asUsage, runCli, UsageError, type FlagTable, type ParsedFlags } from './cli/args.js';
import { openDatasetSplit, parseSplitName, type DatasetSplit } from './data/dataset-node.js';
import { negBenchMcqCsv, negBenchRetrievalCsv } from './data/export-negbench.js';
import type { NegBenchMcq } from './data/mcq.js';
import type { SplitName } from './data/splits.js';
import { writeAtomicWith, writeFileAtomic } from './io/atomic-write-node.js';
import { makeFolderSync } from './io/fs-errors-node.js';
import { clipConfigFor, loadClipTokenizer } from './models/load-node.js';
import { CAPTION_KINDS, readExamples, type CaptionKind } from './nast/train-data.js';
import { recipeNamed } from './nast/recipe.js';
import { orderDrawer, trainJsonl, TRAIN_JSONL_FORMAT, TRAIN_JSONL_VERSION, type JsonlTokenizer } from './nast/train-jsonl.js';

const FORMATS = ['negbench', 'jsonl'] as const;

const FLAGS: FlagTable = {
  data: { kind: 'string', meta: 'DIR', help: 'data folder from node dist/data.js build (or one of its split folders)' },
  split: { kind: 'string', meta: 'SPLIT[,SPLIT]', help: 'train, validation or test (default: test for negbench, train for jsonl; jsonl takes a comma list)' },
  format: { kind: 'string', default: 'negbench', help: 'negbench: NegBench\'s MCQ and retrieval CSVs; jsonl: fine-tuning examples for interop/torch' },
  out: { kind: 'string', meta: 'DIR', help: 'folder to write the files into (created)' },
  recipe: { kind: 'string', default: 'nast', help: 'jsonl: nast (claim sets) or negbench (NegBench MCQs), as train.js --recipe' },
  'clip-captions': { kind: 'string', default: 'negated', help: 'jsonl: captions of the L_CLIP term, as train.js --clip-captions' },
  model: { kind: 'string', meta: 'DIR|FILE', help: 'jsonl: also write token ids, tokenised as this model\'s tokenizer and context length do' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'jsonl: tokenizer file or folder (default: the model folder)' },
  steps: { kind: 'int', min: 1, help: 'jsonl: also write order.jsonl, the first STEPS batches train.js draws from the train split' },
  'batch-size': { kind: 'int', min: 2, default: 32, help: 'jsonl: images per batch of order.jsonl (train.js --batch-size)' },
  seed: { kind: 'int', min: 0, default: 0, help: 'jsonl: seed of order.jsonl (train.js --seed)' },
};

function splitName(raw: string): SplitName {
  try {
    return parseSplitName(raw.trim());
  } catch (e) {
    throw new UsageError(`--split: ${(e as Error).message}`);
  }
}

async function exportNegBench(ds: DatasetSplit, out: string): Promise<void> {
  const records = await ds.readRecords();
  const mcqs = records.filter((r) => r.kind === 'negbench-mcq') as NegBenchMcq[];
  const caption = (kind: string) => records.filter((r) => r.kind === kind) as unknown as { image: string; caption: string }[];
  if (mcqs.length === 0 && caption('caption').length === 0) throw new Error(`${ds.dir}: no NegBench MCQs or captions to export (build them with --kind mcq,captions)`);
  makeFolderSync(out);
  const written: string[] = [];
  const write = async (name: string, text: string, rows: number) => {
    if (rows === 0) return;
    await writeFileAtomic(join(out, name), text);
    written.push(`${name} (${rows} rows)`);
  };
  await write('mcq.csv', negBenchMcqCsv(mcqs, ds.resolveImage), mcqs.length);
  const aff = caption('caption');
  const neg = caption('retrieval-neg-caption');
  await write('retrieval.csv', negBenchRetrievalCsv(aff, ds.resolveImage), new Set(aff.map((c) => c.image)).size);
  await write('retrieval-neg.csv', negBenchRetrievalCsv(neg, ds.resolveImage), new Set(neg.map((c) => c.image)).size);
  console.log(`wrote ${out}: ${written.join(', ')}`);
}

async function exportJsonl(f: ParsedFlags, data: string, out: string): Promise<void> {
  const recipe = asUsage(() => recipeNamed(f.recipe as string));
  const captions = f['clip-captions'] as string;
  if (!(CAPTION_KINDS as readonly string[]).includes(captions)) throw new UsageError(`--clip-captions must be one of ${CAPTION_KINDS.join(', ')}, got ${JSON.stringify(captions)}`);
  const splits = [...new Set(((f.split as string | undefined) ?? 'train').split(',').map(splitName))];
  const steps = f.steps as number | undefined;
  if (steps !== undefined && !splits.includes('train')) throw new UsageError('--steps writes the train split\'s batch order: include train in --split');
  let tok: JsonlTokenizer | undefined;
  let tokInfo: Record<string, unknown> = {};
  const modelPath = f.model as string | undefined;
  if (modelPath) {
    const cfg = (await clipConfigFor(modelPath)).text;
    const t = loadClipTokenizer(modelPath, f.tokenizer as string | undefined);
    if (cfg.eosTokenId !== null && cfg.eosTokenId !== t.eotId) {
      throw new Error(`${modelPath}: the model pools at eos_token_id ${cfg.eosTokenId} but its tokenizer ends texts with id ${t.eotId}`);
    }
    // Truncated like train.js, so the ids are what training feeds.
    tok = { eotId: t.eotId, contextLength: cfg.maxPositions, tokenize: (texts) => t.tokenize(texts, { contextLength: cfg.maxPositions, truncate: true }) };
    tokInfo = { model: resolve(modelPath), context_length: cfg.maxPositions, sot_token_id: t.sotId, eot_token_id: t.eotId };
  } else if (f.tokenizer) {
    throw new UsageError('--tokenizer needs --model (the context length comes from the model\'s config)');
  }
  makeFolderSync(out);
  const written: string[] = [];
  const counts: Record<string, { examples: number; images: number }> = {};
  for (const split of splits) {
    const ds = await openDatasetSplit(data, split);
    const examples = readExamples(await ds.readRecords(), recipe, ds.dir, captions as CaptionKind);
    await writeFileAtomic(join(out, `${split}.jsonl`), trainJsonl(examples, ds.resolveImage, tok));
    const images = new Set(examples.map((e) => e.image)).size;
    counts[split] = { examples: examples.length, images };
    written.push(`${split}.jsonl (${examples.length} examples, ${images} images)`);
    if (split === 'train' && steps !== undefined) {
      const batch = f['batch-size'] as number;
      let next;
      try {
        next = orderDrawer(examples, batch, f.seed as number);
      } catch (e) {
        throw new UsageError(`--batch-size ${batch}: ${(e as Error).message}`);
      }
      // Streamed in chunks: --steps is bounded by the disk, not by the heap.
      await writeAtomicWith(join(out, 'order.jsonl'), async (fh) => {
        let chunk = '';
        for (let s = 0; s < steps; s++) {
          chunk += `${JSON.stringify(next())}\n`;
          if (chunk.length >= 1 << 20) {
            await fh.write(chunk);
            chunk = '';
          }
        }
        if (chunk) await fh.write(chunk);
      });
      written.push(`order.jsonl (${steps} batches of ${batch})`);
    }
  }
  const meta = {
    format: TRAIN_JSONL_FORMAT, version: TRAIN_JSONL_VERSION, data: resolve(data), recipe: recipe.name, clip_captions: captions, splits: counts,
    ...tokInfo,
    ...(steps !== undefined ? { order: { steps, batch_size: f['batch-size'], seed: f.seed } } : {}),
  };
  await writeFileAtomic(join(out, 'export.json'), JSON.stringify(meta, null, 1) + '\n');
  console.log(`wrote ${out}: ${written.join(', ')}, export.json`);
}

export async function exportCommand(): Promise<void> {
  await runCli('data export', 'usage: node dist/data.js export --data DIR [--split SPLIT] --format negbench|jsonl --out DIR [--model DIR] [--steps N --batch-size B --seed S]',
    'Writes a built split in the benchmark formats of the papers (NegBench MCQ and retrieval CSVs), or its fine-tuning examples as JSON lines for interop/torch.', FLAGS, async (f) => {
      const data = f.data as string | undefined;
      const out = f.out as string | undefined;
      if (!data) throw new UsageError('--data is required (a folder written by node dist/data.js build)');
      if (!out) throw new UsageError('--out is required (the folder to write)');
      const format = f.format as string;
      if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format: one of ${FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
      if (format === 'jsonl') return exportJsonl(f, data, out);
      for (const k of ['model', 'tokenizer', 'steps'] as const) if (f[k] !== undefined) throw new UsageError(`--${k} applies to --format jsonl only`);
      const raw = (f.split as string | undefined) ?? 'test';
      if (raw.includes(',')) throw new UsageError('--split: --format negbench exports one split');
      await exportNegBench(await openDatasetSplit(data, splitName(raw)), out);
    });
}
