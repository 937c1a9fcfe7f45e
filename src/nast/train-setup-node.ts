/**
 * A fine-tuning run of train.js, set up: flags checked against each other, the data read, the
 * model, adapter and per-layer scales loaded, a checkpoint's state restored on --resume, the
 * training images embedded once (the vision tower is frozen) and the accuracy checks prepared.
 * Node-only (files, the Dawn context).
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { nodeContext } from '../engine/node-gpu.js';
import { concat, inference, type GpuContext, type Tensor } from '../engine/index.js';
import { loadClip, loadClipTokenizer } from '../models/load-node.js';
import { attachLora, type LoraSet, type LoraTarget } from '../models/lora.js';
import { loadLora } from '../models/peft-node.js';
import { recomputePays, type ClipModel } from '../models/clip.js';
import type { Tokenizer } from '../models/tokenizer/index.js';
import { asUsage, UsageError, type ParsedFlags } from '../cli/args.js';
import { imageConfigFor, loadPixels } from '../cli/images-node.js';
import { requireInputFiles } from '../cli/input-file-node.js';
import { MAX_CONFIG_BYTES, readRegularFileSync } from '../io/read-file-node.js';
import { lockOutput } from '../cli/run-lock-node.js';
import { dataIdentity, modelIdentity, scalesIdentity } from './run-identity-node.js';
import { compareResume, type RunSettings } from './resume-check.js';
import { checkRunFolder, keepMetricsUpTo, removeRunOutputs } from './run-folder-node.js';
import { openShards } from '../data/shards-node.js';
import { checkImagesExist, DATASET_FILE, openDatasetSplit, parseSplitName, trainingSplits, type DatasetSplit } from '../data/dataset-node.js';
import { makeRng, shuffle } from '../data/rng.js';
import type { EvalRecord } from '../data/records.js';
import { cteLayerScales } from './train-bounds.js';
import { cteUpgradeNote, parseCteReport } from './cte-report-parse.js';
import { Trainer } from './trainer.js';
import { fullTextGroups } from './param-groups.js';
import { CAPTION_KINDS, ExampleBatcher, readExamples, type BatchState, type CaptionKind } from './train-data.js';
import { hasCheckpoint, loadCheckpointState } from './checkpoint-node.js';
import { evaluateClip, planEvaluation, planIsEmpty, type EvaluateResult } from './evaluate.js';
import type { SplitName } from '../data/splits.js';
import { recipeNamed, type Recipe } from './recipe.js';

export interface Accuracies {
  claim: number | null;
  mcq: number | null;
}

/** A split whose claim sets (and MCQs) are scored during training; its image embeddings are kept after the first time. */
export interface AccuracyCheck {
  name: 'val' | 'train';
  dir: string;
  records: EvalRecord[];
  embeds?: Float32Array;
}

/** Everything a run needs, made by `setUpTraining`; `release` frees its GPU memory. */
export interface TrainSetup {
  recipe: Recipe;
  uniform: boolean;
  fullText: boolean;
  lambda: number;
  modelPath: string;
  configPath: string | undefined;
  out: string;
  ckptDir: string;
  ctx: GpuContext;
  model: ClipModel;
  tok: Tokenizer;
  lora: LoraSet | null;
  layers: number;
  scales: number[] | null;
  cteLayer: number[] | null;
  examples: number;
  batcher: ExampleBatcher;
  steps: number;
  accumulate: number;
  imageTable: Tensor;
  checks: AccuracyCheck[];
  measure(c: AccuracyCheck): Promise<Accuracies>;
  trainer: Trainer;
  /** What a checkpoint records of the run, compared on --resume. */
  hparams: Record<string, string | number | boolean>;
  /** Where every trained text weight started (a fresh --full-text run), for its update norms. */
  start: Map<string, Float32Array> | null;
  /** The step a resumed run restarted at (0 for a fresh one). */
  resumedAt: number;
  /** --eval-split: the split scored after the last step (checked, with its images, before any training). */
  finalEval: FinalEval | null;
  release(): void;
}

/** The split `--eval-split` names, read and checked at set-up; `run` scores the model as it is then. */
export interface FinalEval {
  data: DatasetSplit;
  records: EvalRecord[];
  run(): Promise<EvaluateResult>;
}

/**
 * Checks the flags of a fine-tuning run and builds it. `given(name)` says whether the user passed
 * a flag (a default is not a wish: --resume compares only what was given where the checkpoint
 * decides).
 */
export async function setUpTraining(f: ParsedFlags, given: (name: string) => boolean): Promise<TrainSetup> {
  const modelPath = f.model as string;
  const recipe = asUsage(() => recipeNamed(f.recipe as string));
  const fullText = f['full-text'] as boolean;
  if (!recipe.layerScales && f.cte) throw new UsageError(`--cte does not apply to --recipe ${recipe.name} (${recipe.label} trains every layer at the same rate)`);
  if (recipe.layerScales && !f.cte && !f.uniform) throw new UsageError('--cte is required (or --uniform for the baseline)');
  if (fullText && f['export-merged']) throw new UsageError('--export-merged merges a LoRA adapter; a --full-text run writes the fine-tuned model to OUT/model itself');
  const initAdapter = f['init-adapter'] as string | undefined;
  if (initAdapter && fullText) throw new UsageError('--init-adapter starts LoRA weights; a --full-text run trains the model\'s own weights');
  if (initAdapter && f.resume) throw new UsageError('--init-adapter starts a run; --resume continues from OUT/checkpoint (drop one of them)');
  if (fullText && recipe.layerScales && !f.uniform) throw new UsageError('--full-text trains every text weight: use it with --recipe negbench or --uniform (CTE scales are defined for LoRA layers)');
  const uniform = !recipe.layerScales || (f.uniform as boolean);
  const lambda = f.lambda as number;
  if (!(lambda >= 0 && lambda <= 1)) throw new UsageError(`--lambda must be in [0, 1], got ${lambda}`);
  const scaleMode = f['scale-mode'] as string;
  if (scaleMode !== 'update' && scaleMode !== 'gradient') throw new UsageError(`--scale-mode must be update or gradient, got ${scaleMode}`);
  const schedule = f.schedule as string;
  if (schedule !== 'cosine' && schedule !== 'constant') throw new UsageError(`--schedule must be cosine or constant, got ${JSON.stringify(schedule)}`);
  const trainChecks = f['train-checks'] as string;
  if (trainChecks !== 'every' && trainChecks !== 'last') throw new UsageError(`--train-checks must be every or last, got ${JSON.stringify(trainChecks)}`);
  const batch = f['batch-size'] as number;
  const acc = f.accumulate as number;
  if (batch < 2 || batch % acc !== 0) throw new UsageError(`--batch-size ${batch} must be >= 2 and divisible by --accumulate ${acc}`);
  const clipBatch = (f['clip-batch'] as number | undefined) ?? batch;
  if (clipBatch < batch) throw new UsageError(`--clip-batch ${clipBatch} is smaller than --batch-size ${batch}: every image of a step's choice sets is in its CLIP batch`);
  if (clipBatch % acc !== 0) throw new UsageError(`--clip-batch ${clipBatch} must be divisible by --accumulate ${acc}`);
  if (clipBatch > batch && !((f.lambda as number) > 0)) throw new UsageError(`--clip-batch ${clipBatch} sizes the L_CLIP term, which --lambda ${f.lambda} switches off`);
  if (f.recompute && f['no-recompute']) throw new UsageError('--recompute and --no-recompute contradict each other: give one');
  requireInputFiles('cte', f.cte as string | undefined);
  requireInputFiles('config', f.config as string | undefined);
  const out = f.out as string;
  const ckptDir = join(out, 'checkpoint');
  if (f.resume && f.overwrite) throw new UsageError('--resume continues the run in --out, --overwrite replaces it: give one');
  lockOutput(out, 'train.js', (line) => process.stderr.write(`train: ${line}\n`));
  const replaced = f.resume ? [] : checkRunFolder(out, f.overwrite as boolean);

  const { train: folder, validation: valDir } = await trainingSplits(f.data as string);
  const trainRecords = (await (await openShards(folder)).readAll()) as EvalRecord[];
  const clipCaptions = f['clip-captions'] as string;
  if (!(CAPTION_KINDS as readonly string[]).includes(clipCaptions)) throw new UsageError(`--clip-captions must be one of ${CAPTION_KINDS.join(', ')}, got ${JSON.stringify(clipCaptions)}`);
  const examples = readExamples(trainRecords, recipe, folder, clipCaptions as CaptionKind);
  if ((f.resume as boolean) && !hasCheckpoint(ckptDir)) {
    throw new UsageError(`--resume: no checkpoint in ${ckptDir} (no trainer_state.json); run without --resume to start afresh`);
  }
  // --eval-split: a missing split, an empty one or a missing image is found now, not after training.
  let evalData: { data: DatasetSplit; records: EvalRecord[] } | null = null;
  if (f['eval-split'] !== undefined) {
    let split: SplitName;
    try {
      split = parseSplitName(f['eval-split'] as string);
    } catch (e) {
      throw new UsageError(`--eval-split: ${(e as Error).message}`);
    }
    // A bare shard folder would be "evaluated" as whatever split was named: the very records trained on.
    if (!existsSync(join(f.data as string, DATASET_FILE))) throw new UsageError(`--eval-split needs a data folder built by node dist/data.js build (with ${DATASET_FILE}); ${f.data} has none`);
    const data = await openDatasetSplit(f.data as string, split);
    const records = await data.readRecords();
    const plan = planEvaluation(records);
    if (planIsEmpty(plan)) throw new Error(`${data.dir}: --eval-split ${split}: nothing to evaluate (${records.length} records, no captions, claim sets or MCQs)`);
    await checkImagesExist(data, plan.images);
    evalData = { data, records };
  }
  const resume = f.resume as boolean;
  const checkpoint = resume ? await loadCheckpointState(ckptDir) : null;
  const cteBytes = uniform ? null : readRegularFileSync(f.cte as string, MAX_CONFIG_BYTES, 'a cte.json');
  const cte = cteBytes ? parseCteReport(new TextDecoder().decode(cteBytes), f.cte as string) : null;
  const beta = cte ? (f.beta as number | undefined) ?? cte.beta : null;
  // What a checkpoint records of the run, compared on --resume.
  const hparams: Record<string, string | number | boolean> = {
    recipe: recipe.name, 'batch-size': batch, 'clip-batch': clipBatch, lambda: f.lambda as number, lr: f.lr as number, rank: f.rank as number, alpha: f.alpha as number,
    targets: f.targets as string, 'full-text': fullText, seed: f.seed as number,
    model: modelIdentity(modelPath, f.config as string | undefined), model_path: resolve(modelPath),
    data: dataIdentity(folder), data_path: resolve(folder),
    scales: scalesIdentity(cteBytes, beta),
  };
  if (checkpoint) {
    const verdict = compareResume(checkpoint.hparams as RunSettings, hparams, given, ckptDir);
    if (verdict.errors.length > 0) throw new UsageError(verdict.errors.join('\n'));
    for (const n of verdict.notes) process.stderr.write(`train: ${n}\n`);
    await keepMetricsUpTo(join(out, 'metrics.jsonl'), checkpoint.loop.step);
  }
  const loopInit: BatchState = checkpoint ? checkpoint.loop : { step: 0, epoch: 0, cursor: 0, seed: f.seed as number };
  let batcher: ExampleBatcher;
  try {
    batcher = new ExampleBatcher(examples, batch, loopInit, clipBatch);
  } catch (e) {
    throw new Error(`${folder}: ${(e as Error).message} (--batch-size ${batch}${clipBatch !== batch ? `, --clip-batch ${clipBatch}` : ''})`);
  }
  const images = batcher.images;
  if (checkpoint && checkpoint.loop.cursor > images.length) {
    throw new Error(`${join(checkpoint.folder, 'trainer_state.json')}: cursor ${checkpoint.loop.cursor} is past the ${images.length} training images of ${folder}`);
  }
  const steps = (f.steps as number | undefined) ?? Math.max(1, Math.round(((f.epochs as number | undefined) ?? 1) * batcher.perEpoch));

  const ctx = await nodeContext();
  // A full-text run resumes from the weights it checkpointed; LoRA from its adapter.
  const configPath = f.config as string | undefined;
  // Frozen base weights in the adapter's choice of storage (f16 on GPUs with shader-f16); f32
  // where they are trained (--full-text) or merged (--export-merged).
  const weights = fullText || f['export-merged'] ? 'f32' : 'auto';
  const model = await loadClip(ctx, checkpoint && fullText ? join(checkpoint.folder, 'model') : modelPath, { configPath: resume && fullText ? undefined : configPath, weights });
  model.recompute = f.recompute ? true : f['no-recompute'] ? false : recomputePays(model.config);
  const tok = loadClipTokenizer(modelPath, f.tokenizer as string | undefined);
  const layers = model.config.text.layers;
  let scales: number[] | null = null;
  let cteLayer: number[] | null = null;
  if (cte) {
    const note = cteUpgradeNote(cte, f.cte as string);
    if (note) process.stderr.write(`train: ${note}\n`);
    scales = cteLayerScales(cte, layers, beta!, f.cte as string);
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
  process.stderr.write(`train: ${recipe.name} recipe, ${fullText ? 'every text-encoder weight' : 'LoRA'}, ${examples.length} examples over ${images.length} images; embedding them\n`);
  const imgCfg = imageConfigFor(modelPath, model.config);
  const chunks: Tensor[] = [];
  for (let i = 0; i < images.length; i += 32) {
    const paths = images.slice(i, i + 32).map((p) => (isAbsolute(p) ? p : resolve(folder, p)));
    const px = await loadPixels(paths, imgCfg, model.config.vision.imageSize);
    const r = inference(ctx, () => model.encodeImage(px, paths.length));
    r.pooled.dispose();
    chunks.push(r.embeds);
  }
  const imageTable = inference(ctx, () => concat(chunks, 0));
  for (const c of chunks) c.dispose();

  // Accuracy checks: the validation split's claim sets (and MCQs, where the recipe reports them),
  // and a fixed sample of the training split's (is the model fitting what it trains on, and does
  // that carry over?). A recipe that reports no MCQ accuracy skips scoring them: a quarter of
  // each check's texts.
  const valEvery = f['val-every'] as number;
  const checkMax = f['check-sets'] as number;
  const checks: AccuracyCheck[] = [];
  if (valEvery > 0) {
    if (valDir) {
      checks.push({ name: 'val', dir: valDir, records: checkRecords((await (await openShards(valDir)).readAll()) as EvalRecord[], checkMax, 1, recipe.reportsMcq) });
    }
    checks.push({ name: 'train', dir: folder, records: checkRecords(trainRecords, checkMax, 2, recipe.reportsMcq) });
  }
  const measure = async (c: AccuracyCheck): Promise<Accuracies> => {
    if (c.records.length === 0) return { claim: null, mcq: null };
    const r = await evaluateClip(model, c.records, {
      tokenizer: tok, imageEmbeds: c.embeds,
      loadPixels: (paths) => loadPixels(paths.map((p) => (isAbsolute(p) ? p : resolve(c.dir, p))), imgCfg, model.config.vision.imageSize),
    });
    c.embeds = r.imageEmbeds;
    const rate = (x: { n: number; accuracy: number }) => (x.n > 0 ? x.accuracy : null);
    return { claim: rate(r.report.claims), mcq: rate(r.report.mcq.overall) };
  };

  const finalEval: FinalEval | null = evalData && {
    ...evalData,
    run: () => evaluateClip(model, evalData.records, {
      tokenizer: tok,
      loadPixels: (paths) => loadPixels(paths.map(evalData.data.resolveImage), imgCfg, model.config.vision.imageSize),
    }),
  };

  const trainer = new Trainer(model, groups ?? lora!, {
    lambda, lr: f.lr as number, weightDecay: f['weight-decay'] as number, warmupSteps: f.warmup as number, totalSteps: steps,
    maxGradNorm: f['max-grad-norm'] as number | undefined, layerScales: scales, scaleMode, schedule,
  });
  const loop = batcher.state;
  if (checkpoint) {
    trainer.optimizer.loadState(checkpoint.optimizer);
    process.stderr.write(`train: resumed at step ${loop.step} (epoch ${loop.epoch}, position ${loop.cursor})\n`);
  }
  if (replaced.length > 0) {
    process.stderr.write(`train: --overwrite: replacing the previous run's ${replaced.join(', ')} in ${out}\n`);
    removeRunOutputs(out, replaced);
  }
  return {
    recipe, uniform, fullText, lambda, modelPath, configPath, out, ckptDir, ctx, model, tok, lora, layers, scales, cteLayer,
    examples: examples.length, batcher, steps, accumulate: acc, imageTable, checks, measure, trainer, hparams, start,
    resumedAt: checkpoint ? checkpoint.loop.step : 0,
    finalEval,
    release: () => {
      imageTable.dispose();
      trainer.dispose();
      lora?.dispose();
      model.dispose();
    },
  };
}


/** Claim sets (and MCQs, with `mcqs`) of a split for accuracy checks: at most `max` of each, a seeded sample. */
export function checkRecords(records: readonly EvalRecord[], max: number, seed: number, mcqs: boolean): EvalRecord[] {
  const pick = (kind: string) => {
    const all = records.filter((r) => r.kind === kind);
    return all.length <= max ? all : shuffle(makeRng(seed), all).slice(0, max);
  };
  return [...pick('claim-set'), ...(mcqs ? pick('negbench-mcq') : [])];
}

/** Host copies of the text tower's weights (and the projection), by name; `dispose` frees the model after. */
export async function textSnapshot(model: ClipModel, dispose = false): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of model.params) {
    if (k.startsWith('text_model.') || k === 'text_projection.weight') out.set(k, (await t.toArray()) as Float32Array);
  }
  if (dispose) model.dispose();
  return out;
}

/** Per block, the Frobenius norm of the change of all its weights (a full fine-tune's counterpart of loraUpdateNorms). */
export function layerUpdateNorms(before: Map<string, Float32Array>, after: Map<string, Float32Array>, layers: number): number[] {
  const sq = new Array<number>(layers).fill(0);
  for (const [k, a] of after) {
    const m = /^text_model\.encoder\.layers\.(\d+)\./.exec(k);
    if (!m) continue;
    const b = before.get(k)!;
    for (let i = 0; i < a.length; i++) sq[Number(m[1])] += (a[i] - b[i]) ** 2;
  }
  return sq.map(Math.sqrt);
}

