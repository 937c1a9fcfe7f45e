/**
 * `node dist/train.js --model DIR --data DIR --cte cte.json`: NAST fine-tuning of LoRA adapters
 * on the text encoder (or `--uniform` for the baseline), with checkpoints, exact resume and the
 * per-layer update analysis.
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { nodeContext } from './engine/node-gpu.js';
import { concat, noGrad, type Tensor } from './engine/index.js';
import { loadClip, loadClipTokenizer } from './models/load-node.js';
import { attachLora, type LoraTarget } from './models/lora.js';
import { loadLora, saveLora } from './models/peft-node.js';
import { saveClip } from './models/save-node.js';
import { runCli, UsageError, type FlagTable, type ParsedFlags } from './cli/args.js';
import { StopRequests, stopExitCode, stopName } from './cli/stop-signals-node.js';
import { defaultRun, type SweepSpec } from './nast/default-run-node.js';
import { imageConfigFor, loadPixels } from './cli/images-node.js';
import { openShards, writeFileAtomic } from './data/shards-node.js';
import { trainingSplits } from './data/dataset-node.js';
import { layerScales } from './nast/cte.js';
import { cteUpgradeNote, parseCteReport } from './nast/cte-report-parse.js';
import { fullTextGroups, loraUpdateNorms, NastTrainer } from './nast/train-loop.js';
import { NastRun, NonFiniteLossError } from './nast/nast-run.js';
import { CAPTION_KINDS, ExampleBatcher, RECIPES, readExamples, type BatchState, type CaptionKind, type Recipe } from './nast/train-data.js';
import { recomputePays, type ClipModel } from './models/clip.js';
import { updateShares } from './nast/update-shares.js';
import { hasCheckpoint, loadCheckpointState, saveCheckpoint } from './nast/checkpoint-node.js';
import { makeRng, shuffle } from './data/rng.js';
import { evaluateClip } from './nast/evaluate.js';
import type { EvalRecord } from './data/records.js';

/** The default run's fine-tuning settings where the user gives none (the tiny model's). */
const DEFAULT_RUN_TRAIN: [string, string][] = [
  ['batch-size', '16'], ['lr', '2e-3'], ['schedule', 'constant'], ['targets', 'q_proj,k_proj,v_proj,out_proj,fc1,fc2'], ['rank', '16'], ['alpha', '32'],
  ['clip-captions', 'retrieval-neg'], ['log-every', '20'], ['val-every', '1000000'], ['check-sets', '200'],
];
const DEFAULT_RUN_STEPS = 240;

const FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'base CLIP checkpoint (frozen): Hugging Face folder (safetensors or pytorch_model.bin), OpenAI-layout .safetensors, or a PyTorch / open_clip / NegBench .pt (with --config)' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use instead of the one beside the weights' },
  data: { kind: 'string', meta: 'DIR', help: 'dataset folder from dist/data.js (claim sets + negated captions; a train/ subfolder is used when present)' },
  cte: { kind: 'string', meta: 'FILE', help: 'cte.json from dist/trace.js: per-layer CTE scales (required unless --uniform)' },
  recipe: { kind: 'string', default: 'nast', help: 'nast: claim sets + negated captions, CTE-scaled LoRA (or --uniform); negbench: NegBench MCQs + negated captions, every layer at the same rate' },
  uniform: { kind: 'boolean', help: 'baseline: every layer scale 1 (no CTE weighting)' },
  'clip-captions': { kind: 'string', default: 'negated', help: 'captions of the L_CLIP term: negated (the builders\' negated captions), retrieval-neg (the image\'s caption + "There is no X in the image."), affirmative, or all in turn' },
  'full-text': { kind: 'boolean', help: 'train every text-encoder weight instead of LoRA (NegBench fine-tunes the model itself); writes OUT/model' },
  beta: { kind: 'number', min: 0, help: 'sharpness: layer scale alpha_l^beta (default: the beta in cte.json)' },
  lambda: { kind: 'number', default: 0.5, help: 'loss = lambda * L_CLIP + (1 - lambda) * L_claim (L_MCQ with --recipe negbench, where lambda is NegBench\'s alpha)' },
  rank: { kind: 'int', min: 1, default: 8, help: 'LoRA rank r' },
  alpha: { kind: 'number', above: 0, default: 16, help: 'LoRA alpha (branch scaled by alpha / r)' },
  targets: { kind: 'string', default: 'q_proj,k_proj,v_proj,out_proj', help: 'comma-separated LoRA targets (q_proj,k_proj,v_proj,out_proj,fc1,fc2)' },
  lr: { kind: 'number', above: 0, default: 5e-4, help: 'peak learning rate' },
  'weight-decay': { kind: 'number', min: 0, default: 0.01, help: 'AdamW weight decay on the LoRA weights' },
  warmup: { kind: 'int', min: 0, default: 10, help: 'linear warm-up steps' },
  schedule: { kind: 'string', default: 'cosine', help: 'after the warm-up: cosine (decay to zero at the last step) or constant (the full rate throughout)' },
  'batch-size': { kind: 'int', min: 1, default: 32, help: 'images per optimizer step' },
  accumulate: { kind: 'int', min: 1, default: 1, help: 'micro-batches per step (batch-size must divide by it)' },
  steps: { kind: 'int', min: 1, help: 'optimizer steps (default: one epoch)' },
  epochs: { kind: 'number', above: 0, help: 'train this many epochs instead of --steps' },
  'max-grad-norm': { kind: 'number', above: 0, help: 'clip the global gradient norm' },
  'scale-mode': { kind: 'string', default: 'update', help: 'update: CTE scales each layer\'s learning rate; gradient: scales its gradient (Adam mostly cancels it)' },
  seed: { kind: 'int', min: 0, default: 0, help: 'seed of LoRA init and data order' },
  out: { kind: 'string', meta: 'DIR', default: 'train-out', help: 'output folder: adapter/, checkpoint/, metrics.jsonl, report.json' },
  'val-every': { kind: 'int', min: 0, default: 50, help: 'claim (and MCQ) accuracy on the validation split and on a sample of the training split every N steps (0: never)' },
  'check-sets': { kind: 'int', min: 1, default: 400, help: 'claim sets (and MCQs) per split in those accuracy checks, a seeded sample' },
  'log-every': { kind: 'int', min: 1, default: 10, help: 'read the loss back and log every N steps' },
  'save-every': { kind: 'int', min: 1, default: 100, help: 'write a checkpoint every N steps' },
  'stop-after': { kind: 'int', min: 0, help: 'stop (with a checkpoint, as on Ctrl-C) once this many steps are done; --resume continues' },
  'export-merged': { kind: 'string', meta: 'DIR', help: 'also write the base model with the adapter merged in (W + scale * B A) as a Hugging Face folder' },
  resume: { kind: 'boolean', help: 'continue from OUT/checkpoint exactly where it stopped' },
  'init-adapter': { kind: 'string', meta: 'DIR', help: 'start the LoRA weights from this PEFT adapter folder (e.g. one interop/torch wrote) instead of a fresh init; rank, alpha and targets are the adapter\'s' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'tokenizer file or folder (default: the model folder)' },
  recompute: { kind: 'boolean', help: 'recompute each transformer block in backward from its input: same gradients, a fraction of the activation memory, one extra forward pass per step (default: on where the text tower is 512 wide or more, CLIP ViT-B and up)' },
  'no-recompute': { kind: 'boolean', help: 'keep every block\'s activations for backward (faster where memory allows)' },
  quiet: { kind: 'boolean', help: 'no progress bar' },
  seeds: { kind: 'string', default: '0,1,2', help: 'default run only: comma-separated seeds, one NegBench, one uniform and one NAST run each' },
  'world-count': { kind: 'int', min: 1, default: 1500, help: 'default run only: miniature-world images to build' },
  'trace-pairs': { kind: 'int', min: 1, default: 200, help: 'default run only: probe pairs to trace' },
  short: { kind: 'boolean', help: 'default run only: a quick check (1 seed, few images and steps) for CI' },
  jobs: { kind: 'int', min: 1, default: 2, help: 'default run only: fine-tuning runs side by side' },
  sweep: { kind: 'string', meta: 'PARAM=V1,V2,...', help: 'default run only: also run the NAST arm for each value of beta, lambda or lr (e.g. beta=0.5,1,2,4) and write the sweep table' },
};

/** Flags of the fine-tuning runs that the default run passes through when the user gives them. */
const PASS_THROUGH = ['clip-captions', 'schedule', 'lambda', 'rank', 'alpha', 'targets', 'lr', 'weight-decay', 'warmup', 'batch-size', 'accumulate', 'max-grad-norm', 'log-every', 'val-every', 'check-sets', 'recompute', 'no-recompute', 'quiet'];
/** ... and those that only the NAST arm takes. */
const NAST_ONLY = ['beta', 'scale-mode'];
const SWEEPABLE = ['beta', 'lambda', 'lr'] as const;

function given(name: string): boolean {
  return process.argv.slice(2).some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

function passed(f: ParsedFlags, names: readonly string[]): string[] {
  const out: string[] = [];
  for (const k of names) {
    if (!given(k)) continue;
    out.push(`--${k}`);
    if (FLAGS[k].kind !== 'boolean') out.push(String(f[k]));
  }
  return out;
}

/** `--sweep beta=0.5,1,2,4`: the NAST arm once per value. */
function parseSweep(raw: string): SweepSpec {
  const m = /^\s*([a-z-]+)\s*=\s*(.+)$/.exec(raw);
  if (!m) throw new UsageError(`--sweep: expected PARAM=V1,V2,... (PARAM one of ${SWEEPABLE.join(', ')}), got ${JSON.stringify(raw)}`);
  const param = m[1] as SweepSpec['param'];
  if (!(SWEEPABLE as readonly string[]).includes(param)) throw new UsageError(`--sweep: ${param} cannot be swept (one of ${SWEEPABLE.join(', ')})`);
  const values = m[2].split(',').map((x) => {
    const v = Number(x.trim());
    if (x.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--sweep: ${JSON.stringify(x)} is not a number`);
    return v;
  });
  return { param, values };
}

async function embeddedDefault(f: ParsedFlags): Promise<void> {
  const short = f.short as boolean;
  const seeds = (short && !given('seeds') ? '0' : (f.seeds as string)).split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n)) throw new UsageError(`--seeds: ${JSON.stringify(x)} is not an integer`);
    return n;
  });
  const trainFlags = passed(f, PASS_THROUGH);
  for (const [k, v] of DEFAULT_RUN_TRAIN) if (!given(k)) trainFlags.push(`--${k}`, v);
  await defaultRun({
    out: given('out') ? (f.out as string) : 'default-run',
    jobs: f.jobs as number,
    seeds,
    steps: given('steps') ? (f.steps as number) : short ? 6 : DEFAULT_RUN_STEPS,
    worldCount: given('world-count') ? (f['world-count'] as number) : short ? 200 : (f['world-count'] as number),
    tracePairs: given('trace-pairs') ? (f['trace-pairs'] as number) : short ? 16 : (f['trace-pairs'] as number),
    trainFlags,
    nastFlags: passed(f, NAST_ONLY),
    ...(f.sweep ? { sweep: parseSweep(f.sweep as string) } : {}),
  });
}

/** Tokenizer and preprocessing files travel with a merged export (the weights are written anew). */
function copyModelFiles(modelPath: string, dir: string): void {
  const from = statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'bpe_simple_vocab_16e6.txt.gz', 'word_tokenizer.json', 'preprocessor_config.json']) {
    if (existsSync(join(from, name))) copyFileSync(join(from, name), join(dir, name));
  }
}

/** Host copies of the text tower's weights (and the projection), by name; `dispose` frees the model after. */
async function textSnapshot(model: ClipModel, dispose = false): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of model.params) {
    if (k.startsWith('text_model.') || k === 'text_projection.weight') out.set(k, (await t.toArray()) as Float32Array);
  }
  if (dispose) model.dispose();
  return out;
}

/** Per block, the Frobenius norm of the change of all its weights (a full fine-tune's counterpart of loraUpdateNorms). */
function layerUpdateNorms(before: Map<string, Float32Array>, after: Map<string, Float32Array>, layers: number): number[] {
  const sq = new Array<number>(layers).fill(0);
  for (const [k, a] of after) {
    const m = /^text_model\.encoder\.layers\.(\d+)\./.exec(k);
    if (!m) continue;
    const b = before.get(k)!;
    for (let i = 0; i < a.length; i++) sq[Number(m[1])] += (a[i] - b[i]) ** 2;
  }
  return sq.map(Math.sqrt);
}

function bar(done: number, total: number): string {
  const w = 24;
  const f = Math.round((done / total) * w);
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`;
}

/** Claim sets (and MCQs) of a split for accuracy checks: at most `max`, a seeded sample, their images resolved. */
function checkRecords(records: EvalRecord[], max: number, seed: number): EvalRecord[] {
  const pick = (kind: string) => {
    const all = records.filter((r) => r.kind === kind);
    return all.length <= max ? all : shuffle(makeRng(seed), all).slice(0, max);
  };
  return [...pick('claim-set'), ...pick('negbench-mcq')];
}

interface Accuracies {
  claim: number | null;
  mcq: number | null;
}

await runCli('train', 'usage: node dist/train.js --model DIR --data DIR [--recipe nast|negbench] [--cte cte.json | --uniform] [--beta 1] [--lambda 0.5] [--rank 8] [--alpha 16] [--full-text] [--init-adapter DIR] [--lr] [--batch-size] [--steps|--epochs] [--out DIR] [--resume]',
  'Fine-tuning of the CLIP text encoder on negation data, loss lambda * L_CLIP + (1 - lambda) * L_choice, AdamW.\n' +
  '--recipe nast (default): LoRA with per-layer CTE scales (or --uniform), choices = claim sets (L_claim). --recipe negbench: NegBench\'s recipe, every layer at the same rate, choices = NegBench MCQs (L_MCQ, lambda = NegBench\'s alpha); --full-text trains every text-encoder weight instead of LoRA.\n' +
  'With neither --model nor --data: the embedded default run (miniature world, tiny CLIP in models/tiny-world, trace, base / NegBench / uniform / NAST over --seeds, evaluation table in default-run/).', FLAGS, async (f) => {
    const modelPath = f.model as string | undefined;
    if (!modelPath && !f.data) return embeddedDefault(f);
    if (!modelPath) throw new UsageError('--model is required');
    if (!f.data) throw new UsageError('--data is required');
    const recipe = f.recipe as string;
    if (!(RECIPES as readonly string[]).includes(recipe)) throw new UsageError(`--recipe must be one of ${RECIPES.join(', ')}, got ${JSON.stringify(recipe)}`);
    const negbench = recipe === 'negbench';
    const fullText = f['full-text'] as boolean;
    if (negbench && f.cte) throw new UsageError('--cte does not apply to --recipe negbench (NegBench trains every layer at the same rate)');
    if (!negbench && !f.cte && !f.uniform) throw new UsageError('--cte is required (or --uniform for the baseline)');
    if (fullText && f['export-merged']) throw new UsageError('--export-merged merges a LoRA adapter; a --full-text run writes the fine-tuned model to OUT/model itself');
    const initAdapter = f['init-adapter'] as string | undefined;
    if (initAdapter && fullText) throw new UsageError('--init-adapter starts LoRA weights; a --full-text run trains the model\'s own weights');
    if (initAdapter && f.resume) throw new UsageError('--init-adapter starts a run; --resume continues from OUT/checkpoint (drop one of them)');
    if (fullText && !negbench && !f.uniform) throw new UsageError('--full-text trains every text weight: use it with --recipe negbench or --uniform (CTE scales are defined for LoRA layers)');
    const uniform = negbench || (f.uniform as boolean);
    const lambda = f.lambda as number;
    if (!(lambda >= 0 && lambda <= 1)) throw new UsageError(`--lambda must be in [0, 1], got ${lambda}`);
    const scaleMode = f['scale-mode'] as string;
    if (scaleMode !== 'update' && scaleMode !== 'gradient') throw new UsageError(`--scale-mode must be update or gradient, got ${scaleMode}`);
    const schedule = f.schedule as string;
    if (schedule !== 'cosine' && schedule !== 'constant') throw new UsageError(`--schedule must be cosine or constant, got ${JSON.stringify(schedule)}`);
    const batch = f['batch-size'] as number;
    const acc = f.accumulate as number;
    if (batch < 2 || batch % acc !== 0) throw new UsageError(`--batch-size ${batch} must be >= 2 and divisible by --accumulate ${acc}`);
    const out = f.out as string;
    const ckptDir = join(out, 'checkpoint');

    const { train: folder, validation: valDir } = await trainingSplits(f.data as string);
    const trainRecords = (await (await openShards(folder)).readAll()) as EvalRecord[];
    const clipCaptions = f['clip-captions'] as string;
    if (!(CAPTION_KINDS as readonly string[]).includes(clipCaptions)) throw new UsageError(`--clip-captions must be one of ${CAPTION_KINDS.join(', ')}, got ${JSON.stringify(clipCaptions)}`);
    const examples = readExamples(trainRecords, recipe as Recipe, folder, clipCaptions as CaptionKind);
    if ((f.resume as boolean) && !hasCheckpoint(ckptDir)) {
      throw new UsageError(`--resume: no checkpoint in ${ckptDir} (no trainer_state.json); run without --resume to start afresh`);
    }
    const resume = f.resume as boolean;
    const checkpoint = resume ? await loadCheckpointState(ckptDir) : null;
    // What a checkpoint records of the run, compared on --resume.
    const hparams: Record<string, string | number | boolean> = {
      recipe, 'batch-size': batch, lambda: f.lambda as number, lr: f.lr as number, rank: f.rank as number, alpha: f.alpha as number,
      targets: f.targets as string, 'full-text': fullText, seed: f.seed as number,
    };
    if (checkpoint) {
      // The adapter's shape comes from the checkpoint, so rank, alpha and targets matter only
      // when given; the data order depends on the others, given or defaulted.
      const adapterShape = ['rank', 'alpha', 'targets'];
      const dataOrder = ['recipe', 'full-text', 'seed', 'batch-size'];
      for (const [k, was] of Object.entries(checkpoint.hparams)) {
        const now = hparams[k];
        if (now === undefined || now === was) continue;
        if (adapterShape.includes(k) && !given(k)) continue;
        if (adapterShape.includes(k) || dataOrder.includes(k)) {
          throw new UsageError(`--resume: --${k} ${now} differs from the checkpoint's ${was} (${ckptDir}); it cannot change mid-run${given(k) ? '' : ` (pass --${k} ${was} as the run did)`}`);
        }
        process.stderr.write(`train: --resume: --${k} is now ${now} (the checkpoint's run had ${was})\n`);
      }
    }
    const loopInit: BatchState = checkpoint ? checkpoint.loop : { step: 0, epoch: 0, cursor: 0, seed: f.seed as number };
    let batcher: ExampleBatcher;
    try {
      batcher = new ExampleBatcher(examples, batch, loopInit);
    } catch (e) {
      throw new Error(`${folder}: ${(e as Error).message} (--batch-size ${batch})`);
    }
    const images = batcher.images;
    if (checkpoint && checkpoint.loop.cursor > images.length) {
      throw new Error(`${join(checkpoint.folder, 'trainer_state.json')}: cursor ${checkpoint.loop.cursor} is past the ${images.length} training images of ${folder}`);
    }
    const steps = (f.steps as number | undefined) ?? Math.max(1, Math.round(((f.epochs as number | undefined) ?? 1) * batcher.perEpoch));

    const ctx = await nodeContext();
    // A full-text run resumes from the weights it checkpointed; LoRA from its adapter.
    const configPath = f.config as string | undefined;
    const model = await loadClip(ctx, checkpoint && fullText ? join(checkpoint.folder, 'model') : modelPath, { configPath: resume && fullText ? undefined : configPath });
    if (f.recompute && f['no-recompute']) throw new UsageError('--recompute and --no-recompute contradict each other: give one');
    model.recompute = f.recompute ? true : f['no-recompute'] ? false : recomputePays(model.config);
    const tok = loadClipTokenizer(modelPath, f.tokenizer as string | undefined);
    const layers = model.config.text.layers;
    let scales: number[] | null = null;
    let cteLayer: number[] | null = null;
    if (!uniform) {
      const cte = parseCteReport(readFileSync(f.cte as string, 'utf8'), f.cte as string);
      const note = cteUpgradeNote(cte, f.cte as string);
      if (note) process.stderr.write(`train: ${note}\n`);
      if (cte.layers !== layers) throw new Error(`${f.cte}: traced a text encoder of ${cte.layers} layers, the model has ${layers}`);
      scales = layerScales(cte.alpha, (f.beta as number | undefined) ?? cte.beta);
      if (scales.every((x) => x === 0)) {
        throw new Error(`${f.cte}: alpha is 0 for every layer (${cte.alpha.join(', ')}), so no layer would train; re-trace, or train with --uniform`);
      }
      cteLayer = cte.cte_layer;
    }
    const lora = fullText ? null : resume
      ? await loadLora(model, checkpoint!.folder)
      : initAdapter ? await loadLora(model, initAdapter)
        : attachLora(model, { rank: f.rank as number, alpha: f.alpha as number, targets: (f.targets as string).split(',').map((s) => s.trim()) as LoraTarget[], seed: f.seed as number });
    if (initAdapter && lora) {
      // The adapter decides the shape; a flag that says otherwise is a mistake, not a wish.
      const spec = lora.spec;
      const has: Record<string, string | number> = { rank: spec.rank, alpha: spec.alpha, targets: spec.targets.join(',') };
      for (const k of ['rank', 'alpha', 'targets'] as const) {
        if (given(k) && String(f[k]).replace(/\s/g, '') !== String(has[k])) {
          throw new UsageError(`--${k} ${f[k]} differs from the adapter's ${has[k]} (${initAdapter}); drop --${k}, the adapter's is used`);
        }
        hparams[k] = has[k];
      }
    }
    const groups = fullText ? fullTextGroups(model, f['weight-decay'] as number) : null;
    // Where every trained text weight started, for the per-layer update norms of a full fine-tune.
    const start = groups && !resume ? await textSnapshot(model) : null;

    // The vision tower is frozen: embed every training image once.
    process.stderr.write(`train: ${recipe} recipe, ${fullText ? 'every text-encoder weight' : 'LoRA'}, ${examples.length} examples over ${images.length} images; embedding them\n`);
    const imgCfg = imageConfigFor(modelPath, model.config);
    const chunks: Tensor[] = [];
    for (let i = 0; i < images.length; i += 32) {
      const paths = images.slice(i, i + 32).map((p) => (isAbsolute(p) ? p : resolve(folder, p)));
      const px = await loadPixels(paths, imgCfg, model.config.vision.imageSize);
      const r = noGrad(() => model.encodeImage(px, paths.length));
      r.pooled.dispose();
      chunks.push(r.embeds);
    }
    const imageTable = noGrad(() => concat(chunks, 0));
    for (const c of chunks) c.dispose();

    // Accuracy checks: the validation split's claim sets and MCQs, and a fixed sample of the
    // training split's (is the model fitting what it trains on, and does that carry over?).
    const valEvery = f['val-every'] as number;
    const checkMax = f['check-sets'] as number;
    const checks: { name: 'val' | 'train'; dir: string; records: EvalRecord[]; embeds?: Float32Array }[] = [];
    if (valEvery > 0) {
      if (valDir) {
        checks.push({ name: 'val', dir: valDir, records: checkRecords((await (await openShards(valDir)).readAll()) as EvalRecord[], checkMax, 1) });
      }
      checks.push({ name: 'train', dir: folder, records: checkRecords(trainRecords, checkMax, 2) });
    }
    const measure = async (c: (typeof checks)[number]): Promise<Accuracies> => {
      if (c.records.length === 0) return { claim: null, mcq: null };
      const r = await evaluateClip(model, c.records, {
        tokenizer: tok, imageEmbeds: c.embeds,
        loadPixels: (paths) => loadPixels(paths.map((p) => (isAbsolute(p) ? p : resolve(c.dir, p))), imgCfg, model.config.vision.imageSize),
      });
      c.embeds = r.imageEmbeds;
      const rate = (x: { n: number; accuracy: number }) => (x.n > 0 ? x.accuracy : null);
      return { claim: rate(r.report.claims), mcq: rate(r.report.mcq.overall) };
    };

    const trainer = new NastTrainer(model, groups ?? lora!, {
      lambda, lr: f.lr as number, weightDecay: f['weight-decay'] as number, warmupSteps: f.warmup as number, totalSteps: steps,
      maxGradNorm: f['max-grad-norm'] as number | undefined, layerScales: scales, scaleMode, schedule,
    });
    const loop = batcher.state;
    if (checkpoint) {
      trainer.optimizer.loadState(checkpoint.optimizer);
      process.stderr.write(`train: resumed at step ${loop.step} (epoch ${loop.epoch}, position ${loop.cursor})\n`);
    }
    const ctxLen = model.config.text.maxPositions;
    const run = new NastRun(trainer, batcher, imageTable, (texts) => tok.tokenize(texts, { contextLength: ctxLen, truncate: true }), {
      steps, accumulate: acc, logEvery: f['log-every'] as number, saveEvery: f['save-every'] as number,
      valEvery: checks.length > 0 ? valEvery : 0, stopAfter: f['stop-after'] as number | undefined,
    });
    const saveCkpt = async () => {
      const writeExtra = fullText ? (folder: string) => saveClip(model, join(folder, 'model')) : undefined;
      await saveCheckpoint(ckptDir, lora, await trainer.optimizer.state(), loop, modelPath, hparams, { writeExtra });
    };

    await mkdir(out, { recursive: true });
    const metricsFile = join(out, 'metrics.jsonl');
    // Ctrl-C, SIGTERM, SIGHUP or the parent's death: finish the step, save a checkpoint, stop. A
    // later signal while that runs must not kill a half-written save: it is answered, not obeyed.
    const stops = new StopRequests({
      first: (cause) => process.stderr.write(`\ntrain: ${stopName(cause)}: finishing step ${loop.step + 1}, then saving a checkpoint\n`),
      repeat: (cause) => process.stderr.write(`\ntrain: ${stopName(cause)} again: still finishing the step and saving the checkpoint, please wait\n`),
    });
    const t0 = Date.now();
    let lastLoss = NaN;
    const last: Record<'val' | 'train', Accuracies> = { val: { claim: null, mcq: null }, train: { claim: null, mcq: null } };
    const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
    try {
      ({ lastLoss } = await run.run({
        shouldStop: () => stops.requested,
        onLog: async (log) => {
          const rec = { step: log.step, epoch: log.epoch, loss: log.loss, lr: log.lr, samples_per_s: log.samplesPerSec };
          await appendFile(metricsFile, JSON.stringify(rec) + '\n');
          if (!f.quiet) process.stderr.write(`\rtrain ${bar(log.step, steps)} loss ${log.loss.toFixed(4)} lr ${log.lr.toExponential(2)} ${log.samplesPerSec.toFixed(1)} samples/s   `);
        },
        onValidate: async (step) => {
          const rec: Record<string, number | null> = { step };
          for (const c of checks) {
            last[c.name] = await measure(c);
            rec[`${c.name}_claim_accuracy`] = last[c.name].claim;
            if (negbench) rec[`${c.name}_mcq_accuracy`] = last[c.name].mcq;
          }
          await appendFile(metricsFile, JSON.stringify(rec) + '\n');
          if (!f.quiet) {
            const mcq = negbench ? `; MCQ accuracy ${pct(last.val.mcq)} (train ${pct(last.train.mcq)})` : '';
            process.stderr.write(`\ntrain: step ${step}: claim accuracy validation ${pct(last.val.claim)}, train ${pct(last.train.claim)}${mcq}\n`);
          }
        },
        onCheckpoint: saveCkpt,
      }));
    } catch (e) {
      if (!(e instanceof NonFiniteLossError)) throw e;
      const kept = run.lastSaved > 0 ? `the last checkpoint (step ${run.lastSaved}) in ${ckptDir} is from before it` : 'no checkpoint was written';
      throw new Error(`${e.message}; stopped without writing an adapter; ${kept}`);
    }
    if (!f.quiet) process.stderr.write('\n');
    await saveCkpt();
    stops.dispose();
    const release = () => {
      imageTable.dispose();
      trainer.dispose();
      lora?.dispose();
      model.dispose();
    };
    if (loop.step < steps) {
      process.stderr.write(`train: ${stops.cause ? 'interrupted' : 'stopped'} at step ${loop.step} of ${steps}; checkpoint saved in ${ckptDir}, continue with --resume\n`);
      if (stops.cause) process.exitCode = stopExitCode(stops.cause);
      release();
      return;
    }
    let norms: number[];
    if (lora) {
      await saveLora(join(out, 'adapter'), lora, { baseModel: modelPath });
      norms = await loraUpdateNorms(lora, layers);
    } else {
      const dir = join(out, 'model');
      await saveClip(model, dir, { metadata: { fine_tuned_from: modelPath, recipe } });
      copyModelFiles(modelPath, dir);
      const base = start ?? await textSnapshot(await loadClip(ctx, modelPath, { configPath }), true);
      norms = layerUpdateNorms(base, await textSnapshot(model), layers);
    }
    const shares = cteLayer ? updateShares(norms, cteLayer) : null;
    const report = {
      steps: loop.step, epochs: loop.epoch + loop.cursor / images.length, final_loss: lastLoss, recipe, trained: fullText ? 'full-text' : 'lora',
      val_claim_accuracy: last.val.claim, train_claim_accuracy: last.train.claim,
      ...(negbench ? { val_mcq_accuracy: last.val.mcq, train_mcq_accuracy: last.train.mcq } : {}),
      lambda, mode: negbench ? 'negbench' : f.uniform ? 'uniform' : 'nast',
      scale_mode: scaleMode, layer_scales: scales, update_norms: norms, update_shares: shares, seconds: (Date.now() - t0) / 1000,
    };
    await writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 1) + '\n');
    console.log(`trained ${loop.step} steps (${negbench ? 'NegBench' : f.uniform ? 'uniform' : 'NAST'}${fullText ? ', full text encoder' : ', LoRA'}), final loss ${lastLoss.toFixed(4)}; ${lora ? `adapter in ${join(out, 'adapter')}` : `model in ${join(out, 'model')}`}`);
    if (last.train.claim !== null || last.val.claim !== null) console.log(`claim accuracy: train ${pct(last.train.claim)}, validation ${pct(last.val.claim)}`);
    console.log(`per-layer update norms: ${norms.map((x) => x.toExponential(2)).join(' ')}`);
    if (shares) console.log(`top-3 share ${(shares.top3 * 100).toFixed(1)}%, top-5 share ${(shares.top5 * 100).toFixed(1)}%`);
    if (f['export-merged'] && lora) {
      const dir = f['export-merged'] as string;
      lora.merge();
      await saveClip(model, dir, { metadata: { merged_adapter: join(out, 'adapter') } });
      copyModelFiles(modelPath, dir);
      console.log(`merged the adapter into the base weights: ${dir}`);
    }
    release();
  });
