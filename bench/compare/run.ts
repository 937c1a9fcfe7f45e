/**
 * Our engine beside its peers on this machine, in one run (`npm run bench:compare`):
 * kernels against TensorFlow.js's WebGPU backend on the same Dawn adapter, interleaved round
 * by round so machine noise hits both sides, and whole NAST steps against PyTorch on the CPU
 * (`torch_step.py`; skipped with a message when torch is missing). Prints a table and writes
 * bench/results/compare-<time>.json; `--json` prints only the JSON array of rows
 * {case, shape, ours_ms, peer, peer_ms, ratio} (ratio = peer / ours: > 1 means we are faster).
 *
 * Kernel times: wall time per run, `iterations` runs encoded back to back then one wait for
 * the device, median over rounds; both engines are timed exactly so (tfjs cannot share our
 * GPU timestamps, so neither side uses them).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeContext } from '../../src/engine/node-gpu.js';
import type { GpuContext } from '../../src/engine/context.js';
import { describeTuning } from '../../src/engine/tuning.js';
import { kernelCases, type KernelCase, type Runner } from './kernel-cases.js';
import { STEP_SHAPES, ourStep, shapeLabel, type StepShape } from './step-cases.js';
import { tfjsPeer, type TfPeer } from './peer-tfjs.js';
import { jaxMatmul } from './peer-jax.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Row {
  case: string;
  shape: string;
  ours_ms: number;
  peer: string;
  peer_ms: number | null;
  ratio: number | null;
  /** Rate of our side (GFLOP/s or GB/s) where the case counts its work. */
  ours_rate?: string;
  note?: string;
  dispatches_per_step?: number;
  peak_gpu_mib?: number;
  samples_per_s?: number;
  peer_samples_per_s?: number;
}

interface Args {
  json: boolean;
  only: string | null;
  rounds: number;
  torch: boolean;
  tfjs: boolean;
  stepsTiny: number;
  stepsVit: number;
}

const USAGE = `usage: npm run bench:compare -- [--json] [--only WORD] [--rounds N] [--no-torch] [--no-tfjs] [--steps N] [--vit-steps N]
  --json         print only the JSON array of {case, shape, ours_ms, peer, peer_ms, ratio, ...}
  --only WORD    only cases whose name contains WORD (e.g. matmul, step, ViT)
  --rounds N     interleaved rounds per kernel case (default 5)
  --no-torch     skip PyTorch (the whole-step rows then show ours alone)
  --no-tfjs      skip TensorFlow.js
  --steps N      timed steps of the tiny-world NAST step (default 8)
  --vit-steps N  timed steps of the ViT-B/32 text NAST step (default 2; 0 skips it: about a minute each here)`;

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, only: null, rounds: 5, torch: true, tfjs: true, stepsTiny: 8, stepsVit: 2 };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--json') a.json = true;
    else if (f === '--only') { a.only = argv[++i] ?? null; if (!a.only) throw new Error('--only needs a word'); }
    else if (f === '--rounds') a.rounds = int(f, argv[++i], 1);
    else if (f === '--no-torch') a.torch = false;
    else if (f === '--no-tfjs') a.tfjs = false;
    else if (f === '--steps') a.stepsTiny = int(f, argv[++i], 1);
    else if (f === '--vit-steps') a.stepsVit = int(f, argv[++i], 0);
    else if (f === '--help' || f === '-h') { console.log(USAGE); process.exit(0); }
    else throw new Error(`unknown argument '${f}' (try --help)`);
  }
  return a;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 3) => Number(x.toFixed(d));

/** Milliseconds per run: `n` runs encoded back to back, then one wait. */
async function timeRuns(r: Runner, sync: () => Promise<void>, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) r.run();
  await sync();
  return (performance.now() - t0) / n;
}

/** Runs per timing so that one timing takes about 150 ms (at least 1, at most 50). */
async function calibrate(r: Runner, sync: () => Promise<void>): Promise<number> {
  const ms = await timeRuns(r, sync, 1);
  return Math.max(1, Math.min(50, Math.round(150 / Math.max(ms, 1e-3))));
}

function rate(c: KernelCase, ms: number): string | undefined {
  if (c.flops) return `${(c.flops / (ms * 1e6)).toFixed(1)} GFLOP/s`;
  if (c.bytes) return `${(c.bytes / (ms * 1e6)).toFixed(1)} GB/s`;
  return undefined;
}

async function kernelRow(c: KernelCase, ctx: GpuContext, peer: TfPeer | null, rounds: number): Promise<Row> {
  const ourSync = () => ctx.sync();
  const ours = c.ours(ctx);
  const theirs = peer ? c.tfjs(peer.tf) : null;
  try {
    // Warm-up compiles both sides' shaders.
    await timeRuns(ours, ourSync, 1);
    if (theirs) await timeRuns(theirs, peer!.sync, 1);
    const nOurs = await calibrate(ours, ourSync);
    const nTheirs = theirs ? await calibrate(theirs, peer!.sync) : 0;
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < rounds; i++) {
      a.push(await timeRuns(ours, ourSync, nOurs));
      if (theirs) b.push(await timeRuns(theirs, peer!.sync, nTheirs));
    }
    const oursMs = median(a);
    const peerMs = theirs ? median(b) : null;
    return {
      case: c.case, shape: c.shape, ours_ms: round(oursMs), peer: peer ? `tfjs-webgpu ${peer.version}` : 'tfjs-webgpu (not run)',
      peer_ms: peerMs === null ? null : round(peerMs), ratio: peerMs === null ? null : round(peerMs / oursMs, 2),
      ...(rate(c, oursMs) ? { ours_rate: rate(c, oursMs) } : {}),
      ...(c.peerNote ? { note: c.peerNote } : {}),
    };
  } finally {
    ours.dispose();
    theirs?.dispose();
    await ctx.sync();
  }
}

interface TorchResult { case: string; ms: number; steps: number; threads: number; blas: string; torch: string }

/** Runs torch_step.py once for the chosen shapes; null with the reason when torch is missing. */
function torchSteps(shapes: StepShape[], steps: number, log: (s: string) => void): Map<string, TorchResult> | string {
  const script = join(ROOT, 'bench', 'compare', 'torch_step.py');
  const python = process.env.PYTHON ?? (spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0 ? '/usr/bin/python3' : 'python3');
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return `PyTorch not importable by ${python} (apt-get install python3-torch libopenblas0-pthread, or set PYTHON)`;
  const only = [...new Set(shapes.map((s) => s.torch))].flatMap((w) => ['--only', w]);
  log(`running ${script} (${shapes.map((s) => s.name).join(', ')}) ...`);
  const r = spawnSync(python, [script, '--steps', String(steps), ...only], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return `torch_step.py failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`;
  const out = new Map<string, TorchResult>();
  for (const line of r.stdout.trim().split('\n')) {
    const j = JSON.parse(line) as TorchResult;
    out.set(j.case, j);
  }
  return out;
}

async function stepRow(s: StepShape, ctx: GpuContext, steps: number, torch: Map<string, TorchResult> | string | null): Promise<Row> {
  ctx.pool.resetPeak();
  const runner = await ourStep(ctx, s);
  try {
    await runner.step();
    await runner.step();
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await runner.step();
      times.push(performance.now() - t0);
    }
    const ms = median(times);
    const t = torch instanceof Map ? torch.get(s.peerCase ?? s.name) ?? null : null;
    const samples = s.images;
    return {
      case: s.name, shape: shapeLabel(s), ours_ms: round(ms, 1),
      peer: t ? `pytorch ${t.torch} cpu, ${t.threads} threads, ${t.blas}` : 'pytorch (not run)',
      peer_ms: t ? round(t.ms, 1) : null, ratio: t ? round(t.ms / ms, 2) : null,
      dispatches_per_step: runner.dispatchesPerStep(),
      peak_gpu_mib: round(runner.peakBytes() / 2 ** 20, 1),
      samples_per_s: round((1000 * samples) / ms, 1),
      ...(t ? { peer_samples_per_s: round((1000 * samples) / t.ms, 1) } : {}),
      ...(typeof torch === 'string' ? { note: torch } : {}),
    };
  } finally {
    runner.dispose();
    await ctx.sync();
  }
}

function table(rows: Row[]): string {
  const head = ['case', 'shape', 'ours ms', 'peer ms', 'peer / ours', 'ours rate', 'peer'];
  const body = rows.map((r) => [r.case, r.shape, r.ours_ms.toString(), r.peer_ms?.toString() ?? '-', r.ratio === null ? '-' : `${r.ratio}x`,
    r.ours_rate ?? (r.samples_per_s !== undefined ? `${r.samples_per_s} samples/s, ${r.dispatches_per_step} dispatches, ${r.peak_gpu_mib} MiB` : ''),
    r.peer + (r.note ? `; ${r.note}` : '')]);
  const lines = [head, head.map(() => '---'), ...body].map((c) => `| ${c.join(' | ')} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string) => { if (!args.json) console.error(s); };
  const ctx = await nodeContext();
  log(`adapter: ${ctx.adapterInfo()}`);
  log(`tuning: ${describeTuning(ctx.tuning)}`);
  let peer: TfPeer | null = null;
  if (args.tfjs) {
    try {
      peer = await tfjsPeer();
      log(`peer: TensorFlow.js ${peer.version}, webgpu backend, same adapter`);
    } catch (e) {
      log(`TensorFlow.js not run: ${(e as Error).message}`);
    }
  }
  const rows: Row[] = [];
  const want = (name: string) => !args.only || name.toLowerCase().includes(args.only.toLowerCase());
  for (const c of kernelCases()) {
    const jaxBaseline = c.case === 'matmul' && c.shape.startsWith('1024x1024x1024') && want('jax');
    if (!want(`${c.case} ${c.shape}`) && !jaxBaseline) continue;
    const row = await kernelRow(c, ctx, peer, args.rounds);
    rows.push(row);
    log(`${row.case} ${row.shape}: ours ${row.ours_ms} ms${row.peer_ms !== null ? `, tfjs ${row.peer_ms} ms (${row.ratio}x)` : ''}`);
  }
  const shapes = STEP_SHAPES.filter((s) => want(s.name) && (s.torch !== 'vit' || args.stepsVit > 0) && (s.weights !== 'f16' || ctx.hasFeature('shader-f16')));
  const torch = shapes.length > 0 && args.torch ? torchSteps(shapes, args.stepsTiny, log) : null;
  if (typeof torch === 'string') log(`PyTorch rows skipped: ${torch}`);
  for (const s of shapes) {
    const row = await stepRow(s, ctx, s.torch === 'vit' ? args.stepsVit : args.stepsTiny, torch);
    rows.push(row);
    log(`${row.case}: ours ${row.ours_ms} ms/step (${row.samples_per_s} samples/s, ${row.dispatches_per_step} dispatches)${row.peer_ms !== null ? `, torch ${row.peer_ms} ms (${row.ratio}x)` : ''}`);
  }
  if (want('matmul 1024x1024x1024 square') || want('jax')) {
    const j = await jaxMatmul(1024);
    const mine = rows.find((r) => r.case === 'matmul' && r.shape.startsWith('1024x1024x1024'));
    rows.push({
      case: 'matmul', shape: '1024x1024x1024 square', ours_ms: mine?.ours_ms ?? NaN, peer: `jax-js ${j.version} webgpu`,
      peer_ms: j.matmulMs === null ? null : round(j.matmulMs), ratio: j.matmulMs !== null && mine ? round(j.matmulMs / mine.ours_ms, 2) : null,
      note: j.reason ?? 'jit(matmul), one run then blockUntilReady, median of 5',
    });
    log(`jax-js: ${j.matmulMs !== null ? `${round(j.matmulMs)} ms` : j.reason}`);
  }
  if (args.json) {
    console.log(JSON.stringify(rows));
  } else {
    console.log(`adapter: ${ctx.adapterInfo()}`);
    console.log('ratio = peer ms / ours ms (> 1: we are faster). Kernel rows: wall time per run, runs queued back to back, median of interleaved rounds.');
    console.log(table(rows));
  }
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ adapter: ctx.adapterInfo(), rows }, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  log(`wrote ${file}`);
}

main().catch((e) => {
  console.error(`bench:compare: ${(e as Error).message}`);
  process.exitCode = 1;
});
