/**
 * Kernel microbenchmarks. `npm run bench` prints a table and writes bench/results/<time>.json;
 * `--only WORD` keeps kernels whose name contains WORD; `--json` prints only the JSON rows.
 *
 * Times are medians over iterations that each encode the case once. `wallMs` is the time
 * from encoding to the host seeing the work done, one iteration at a time. Where the adapter
 * has timestamp queries, `ms` (and the rate) is the GPU time of an iteration (`gpuMs`, from
 * iterations queued back to back while the host sleeps; `gpuBestMs` is the shortest), else
 * the wall time.
 */
import { Bench } from 'tinybench';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeContext } from '../src/engine/node-gpu.js';
import type { GpuContext } from '../src/engine/context.js';
import { GpuTimer } from '../src/engine/gpu-timer.js';
import { describeTuning } from '../src/engine/tuning.js';
import type { BenchCase, CaseFactory } from './case.js';
import { FACTORIES } from './cases/index.js';

interface Row {
  kernel: string;
  shape: string;
  ms: number;
  gflops?: number;
  gbps?: number;
  wallMs: number;
  gpuMs?: number;
  gpuBestMs?: number;
  /** The kernel this row is compared with, and how many times faster this row is. */
  baseline?: string;
  speedup?: number;
  note?: string;
}

interface Args {
  only: string | null;
  json: boolean;
  time: number;
}

const USAGE = `usage: npm run bench -- [--only WORD] [--json] [--time MS]
  --only WORD  only kernels whose name contains WORD
  --json       print only a JSON array of {kernel, shape, ms, gflops|gbps, wallMs, gpuMs, ...}
  --time MS    minimum measuring time per case (default 400)`;

function parseArgs(argv: string[]): Args {
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
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument '${a}' (try --help)`);
  }
  if (!Number.isFinite(time) || time <= 0) throw new Error('--time needs a positive number of milliseconds');
  return { only, json, time };
}

/** GPU-timed iterations per case at most (a tiny kernel would otherwise queue thousands). */
const GPU_ITERATIONS_MAX = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Timing {
  /** Median wall time of an iteration. */
  wallMs: number;
  /** Median and shortest GPU time of an iteration; null without timestamp queries. */
  gpu: { median: number; best: number } | null;
}

/**
 * Wall time: each iteration encodes the case, submits it and waits for it (tinybench).
 * GPU time: iterations queued back to back, each between two timestamps, then one wait, so
 * that the host sleeps while the adapter works (on a CPU adapter it shares the cores).
 */
async function measure(c: BenchCase, ctx: GpuContext, timer: GpuTimer | null, time: number): Promise<Timing> {
  // Warm-up: the first dispatch JIT-compiles the shader.
  c.run();
  await ctx.sync();
  const bench = new Bench({
    time: c.iterations ? 0 : time,
    iterations: c.iterations ?? 3,
    warmup: false,
    throws: true,
  });
  bench.add(c.kernel, async () => {
    c.run();
    await ctx.sync();
  });
  await bench.run();
  const r = bench.tasks[0].result as unknown as { latency?: { p50?: number; mean: number } };
  const wallMs = r.latency?.p50 ?? r.latency?.mean ?? NaN;
  if (!timer) return { wallMs, gpu: null };
  const n = c.iterations ?? Math.min(GPU_ITERATIONS_MAX, Math.max(3, Math.round(time / wallMs)));
  const queued = performance.now();
  for (let i = 0; i < n; i++) {
    timer.begin();
    c.run();
    timer.end();
  }
  // Sleep through most of the queued work: the wait that follows polls, which costs cycles.
  await sleep(n * wallMs * 0.85 - (performance.now() - queued));
  // A span that reads zero or less was rounded away: no time to report.
  const spans = (await timer.take()).filter((ms) => ms > 0);
  return { wallMs, gpu: spans.length > 0 ? { median: median(spans), best: Math.min(...spans) } : null };
}

/** GFLOP/s or GB/s of the case at `ms` per iteration. */
function rateOf(c: BenchCase, ms: number): number | undefined {
  const units = c.flops ?? c.bytes;
  return units ? units / (ms * 1e6) : undefined;
}

function rowFor(c: BenchCase, t: Timing, rows: Row[]): Row {
  const ms = t.gpu?.median ?? t.wallMs;
  const row: Row = {
    kernel: c.kernel,
    shape: c.shape,
    ms: round(ms, 4),
    ...(c.flops ? { gflops: round(c.flops / (ms * 1e6), 2) } : c.bytes ? { gbps: round(c.bytes / (ms * 1e6), 2) } : {}),
    wallMs: round(t.wallMs, 4),
    ...(t.gpu ? { gpuMs: round(t.gpu.median, 4), gpuBestMs: round(t.gpu.best, 4) } : {}),
  };
  if (c.baseline) {
    const base = rows.find((b) => b.kernel === c.baseline && b.shape === c.shape);
    if (base) {
      row.baseline = base.kernel;
      row.speedup = round(base.ms / ms, 1);
    }
  }
  if (c.note) row.note = c.note;
  return row;
}

/** One table line: GPU figures first where there are some, then wall, then remarks. */
function describe(c: BenchCase, t: Timing, row: Row, rows: Row[]): string {
  const unit = c.flops ? 'GFLOP/s' : 'GB/s';
  const fmt = (ms: number) => {
    const r = rateOf(c, ms);
    return r === undefined ? '' : `${r.toFixed(2)} ${unit}`;
  };
  const parts = [`${c.kernel.padEnd(26)} ${c.shape.padEnd(26)} ${row.ms.toFixed(3).padStart(10)} ms ${fmt(row.ms).padStart(16)}`];
  if (t.gpu) parts.push(`best ${fmt(t.gpu.best)}`, `wall ${t.wallMs.toFixed(3)} ms ${fmt(t.wallMs)}`);
  const remarks: string[] = [];
  if (row.speedup !== undefined) {
    const base = rows.find((b) => b.kernel === row.baseline && b.shape === row.shape)!;
    remarks.push(`x${row.speedup} vs ${base.kernel} at ${fmt(base.ms)}`);
  } else if (c.baseline) remarks.push(`${c.baseline} not run`);
  if (c.note) remarks.push(c.note);
  if (remarks.length > 0) parts.push(`(${remarks.join('; ')})`);
  return parts.join('  ');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ctx = await nodeContext();
  const log = (s: string) => {
    if (!args.json) console.log(s);
  };
  const timer = GpuTimer.create(ctx, GPU_ITERATIONS_MAX);
  log(`adapter: ${ctx.adapterInfo()}`);
  log(`tuning: ${describeTuning(ctx.tuning)}${Object.keys(ctx.tuningOverride).length ? ` (forced: ${JSON.stringify(ctx.tuningOverride)})` : ''}`);
  log(timer
    ? 'ms and rate: median GPU time (timestamp queries); best: shortest GPU time; wall: median from encode to the host seeing it done'
    : 'ms and rate: median wall time from encode to the host seeing it done (no timestamp-query feature)');
  const rows: Row[] = [];
  for (const factory of FACTORIES as CaseFactory[]) {
    // Expensive factories name their kernels up front so --only can skip building them.
    if (args.only && factory.kernels && !factory.kernels.some((k) => k.includes(args.only!))) continue;
    const cases = await factory(ctx);
    for (const c of cases) {
      if (args.only && !c.kernel.includes(args.only)) {
        c.dispose();
        continue;
      }
      const t = await measure(c, ctx, timer, args.time);
      const row = rowFor(c, t, rows);
      rows.push(row);
      log(describe(c, t, row, rows));
      c.dispose();
    }
  }
  timer?.destroy();
  if (args.json) {
    console.log(JSON.stringify(rows));
  } else {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    const timing = timer ? 'gpu-timestamps' : 'wall';
    writeFileSync(`${file}.tmp`, JSON.stringify({ adapter: ctx.adapterInfo(), date: new Date().toISOString(), timing, rows }, null, 2));
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
