/**
 * `node dist/data.js export --data DATA [--split test] --format negbench --out DIR`: a built split
 * in NegBench's formats: DIR/mcq.csv (its NegBench MCQs), DIR/retrieval.csv (each image's
 * affirmative caption) and DIR/retrieval-neg.csv (its Retrieval-Neg captions: the caption with
 * "There is no X in the image."). Image paths are written absolute, so the files work from anywhere.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, UsageError, type FlagTable } from './cli/args.js';
import { openDatasetSplit, parseSplitName } from './data/dataset-node.js';
import { negBenchMcqCsv, negBenchRetrievalCsv } from './data/export-negbench.js';
import type { NegBenchMcq } from './data/mcq.js';
import { writeFileAtomic } from './io/atomic-write-node.js';

const FLAGS: FlagTable = {
  data: { kind: 'string', meta: 'DIR', help: 'data folder from node dist/data.js build (or one of its split folders)' },
  split: { kind: 'string', default: 'test', meta: 'SPLIT', help: 'train, val or test' },
  format: { kind: 'string', default: 'negbench', help: 'negbench: NegBench\'s MCQ and retrieval CSVs' },
  out: { kind: 'string', meta: 'DIR', help: 'folder to write the files into (created)' },
};

export async function exportCommand(): Promise<void> {
  await runCli('data export', 'usage: node dist/data.js export --data DIR [--split test] --format negbench --out DIR',
    'Writes a built split in the benchmark formats of the papers (NegBench MCQ and retrieval CSVs).', FLAGS, async (f) => {
      const data = f.data as string | undefined;
      const out = f.out as string | undefined;
      if (!data) throw new UsageError('--data is required (a folder written by node dist/data.js build)');
      if (!out) throw new UsageError('--out is required (the folder to write)');
      if (f.format !== 'negbench') throw new UsageError(`--format: only negbench is written, got ${JSON.stringify(f.format)}`);
      let split;
      try {
        split = parseSplitName(f.split as string);
      } catch (e) {
        throw new UsageError(`--split: ${(e as Error).message}`);
      }
      const ds = await openDatasetSplit(data, split);
      const records = await ds.readRecords();
      const mcqs = records.filter((r) => r.kind === 'negbench-mcq') as NegBenchMcq[];
      const caption = (kind: string) => records.filter((r) => r.kind === kind) as unknown as { image: string; caption: string }[];
      if (mcqs.length === 0 && caption('caption').length === 0) throw new Error(`${ds.dir}: no NegBench MCQs or captions to export (build them with --kind mcq,captions)`);
      mkdirSync(out, { recursive: true });
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
    });
}
