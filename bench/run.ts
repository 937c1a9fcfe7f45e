/**
 * Kernel microbenchmarks. `npm run bench` prints a table and writes bench/results/<time>.json;
 * `--only WORD` keeps kernels whose name contains WORD; `--json` prints only the JSON rows.
 */
import { Bench } from 'tinybench';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeContext } from '../src/engine/node-gpu.js';
import type { BenchCase, CaseFactory } from './case.js';
import { FACTORIES } from './cases/index.js';

interface Row {
  kernel: string;
  shape: string;
  ms: number;
  gflops?: number;
  gbps?: number;
  note?: string;
}

function parseArgs(argv: string[]): { only: string | null; json: boolean; time: number } {
  let only: string | null = null;
  let json = false;
  let time = 400;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') {
      only = argv[++i];
      if (!only) throw new Error('--only needs a word (e.g. --only matmul)');
    } else if (a === '--json') json = true;
    else if (a === '--time') time = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [--only WORD] [--json] [--time MS]\n  --only WORD  only kernels whose name contains WORD\n  --json       print only a JSON array of {kernel, shape, ms, gflops|gbps}\n  --time MS    minimum measuring time per case (default 400)');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}' (try --help)`);
  }
  if (!Number.isFinite(time) || time <= 0) throw new Error('--time needs a positive number of milliseconds');
  return { only, json, time };
}

async function measure(c: BenchCase, ctx: Awaited<ReturnType<typeof nodeContext>>, time: number): Promise<number> {
  // Warm-up: the first dispatch JIT-compiles the shader.
  c.run();
  await ctx.sync();
  const bench = new Bench({ time, iterations: 3, warmupIterations: 1 });
  bench.add(c.kernel, async () => {
    c.run();
    await ctx.sync();
  });
  await bench.run();
  const r = bench.tasks[0].result as unknown as { latency?: { p50?: number; mean: number }; mean?: number };
  return r.latency?.p50 ?? r.latency?.mean ?? r.mean ?? NaN;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ctx = await nodeContext();
  const log = (s: string) => { if (!args.json) console.log(s); };
  log(`adapter: ${ctx.adapterInfo()}`);
  const rows: Row[] = [];
  for (const factory of FACTORIES as CaseFactory[]) {
    const cases = await factory(ctx);
    for (const c of cases) {
      if (args.only && !c.kernel.includes(args.only)) {
        c.dispose();
        continue;
      }
      const ms = await measure(c, ctx, args.time);
      const row: Row = { kernel: c.kernel, shape: c.shape, ms: round(ms, 4) };
      if (c.flops) row.gflops = round(c.flops / (ms * 1e6), 2);
      if (c.bytes) row.gbps = round(c.bytes / (ms * 1e6), 2);
      if (c.note) row.note = c.note;
      rows.push(row);
      log(`${c.kernel.padEnd(28)} ${c.shape.padEnd(26)} ${ms.toFixed(3).padStart(10)} ms  ${row.gflops !== undefined ? `${row.gflops} GFLOP/s` : `${row.gbps} GB/s`}${c.note ? `  (${c.note})` : ''}`);
      c.dispose();
    }
  }
  if (args.json) {
    console.log(JSON.stringify(rows));
  } else {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify({ adapter: ctx.adapterInfo(), date: new Date().toISOString(), rows }, null, 2));
    renameSync(`${file}.tmp`, file);
    log(`wrote ${file}`);
  }
  process.exit(0);
}

function round(x: number, d: number): number {
  const p = 10 ** d;
  return Math.round(x * p) / p;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
