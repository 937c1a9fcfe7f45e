/**
 * `node dist/pretrain.js [--out pretrain-out] [--steps N] ...`: pretrains a tiny CLIP from
 * scratch on affirmative captions of the miniature world (full-parameter training, symmetric CLIP
 * loss), writes it as a Hugging Face folder with its word tokenizer, and evaluates it on held-out
 * world images (retrieval and affirmation bias), recorded in pretrain.json beside the weights.
 *
 * The run writes into OUT.partial: every `--checkpoint-every` steps it gets the current weights
 * and pretrain_state.safetensors (optimizer moments and the step), so `--resume` continues an
 * interrupted run. Only a completed run is renamed to OUT, so a killed run never leaves a
 * half-trained model under the name a user (or the default run, for models/tiny-world) loads;
 * an existing model in OUT is replaced only with --overwrite.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { nodeContext } from './engine/node-gpu.js';
import type { OptimizerState } from './engine/index.js';
import { runCli, UsageError, type FlagTable, type ParsedFlags } from './cli/args.js';
import { lockOutput } from './cli/run-lock-node.js';
import { generateWorld, worldVocabulary } from './data/world/index.js';
import { WordTokenizer } from './models/tokenizer/word.js';
import { clipConfigFor, loadClip, UNFINISHED_MARK } from './models/load-node.js';
import { makeFolderSync } from './io/fs-errors-node.js';
import { replaceFolder } from './io/replace-folder-node.js';
import { saveClip } from './models/save-node.js';
import { writeJsonAtomic } from './io/atomic-write-node.js';
import { loadSafetensorsFile, openSafetensors, writeSafetensorsFile } from './models/safetensors-node.js';
import type { TensorToWrite } from './models/safetensors.js';
import { ClipPretrainer, type PretrainLog } from './world/pretrain-loop.js';
import { WorldBatcher } from './world/world-batches.js';
import { initTinyClip, isImageTowerWeight, tinyClipConfig } from './world/tiny-clip.js';
import { WORLD_HELD_OUT_START, affirmationBias, worldRetrieval } from './world/pretrain-eval.js';

const STATE_FILE = UNFINISHED_MARK;
const REPORT_FILE = 'pretrain.json';

const FLAGS: FlagTable = {
  out: { kind: 'string', meta: 'DIR', default: 'pretrain-out', help: 'model folder to write (Hugging Face layout + word_tokenizer.json + pretrain.json); the run works in DIR.partial and renames it to DIR when complete' },
  overwrite: { kind: 'boolean', help: 'replace the model already in --out (node dist/pretrain.js --out models/tiny-world --overwrite remakes the shipped one)' },
  steps: { kind: 'int', default: 2000, help: 'training steps' },
  'batch-size': { kind: 'int', default: 64, help: 'image-caption pairs per step (distinct scenes)' },
  lr: { kind: 'number', default: 0.002, help: 'peak learning rate (AdamW, linear warm-up then cosine decay to 0)' },
  warmup: { kind: 'int', default: 50, help: 'warm-up steps' },
  'weight-decay': { kind: 'number', default: 0.1, help: 'AdamW weight decay on weight matrices (none on biases, norms, embeddings, logit_scale)' },
  seed: { kind: 'int', default: 0, help: 'seed of the world, the initial weights and the batches' },
  images: { kind: 'int', default: 20000, help: 'training images (world records 0..N-1 of the seed)' },
  'max-objects': { kind: 'int', default: 3, help: 'objects per world image, 1..N (at most 4)' },
  size: { kind: 'int', default: 32, help: 'image size in pixels' },
  patch: { kind: 'int', default: 8, help: 'vision patch size' },
  layers: { kind: 'int', default: 12, help: 'transformer layers of the text tower (12, as in CLIP ViT-B/32)' },
  'vision-layers': { kind: 'int', default: 4, help: 'transformer layers of the vision tower (frozen when fine-tuning, its embeddings cached)' },
  context: { kind: 'int', default: 40, help: 'text context length (the world\'s longest built text is 38 tokens)' },
  width: { kind: 'int', default: 64, help: 'width of the text tower' },
  heads: { kind: 'int', default: 2, help: 'attention heads per text layer' },
  'vision-width': { kind: 'int', default: 64, help: 'width of the vision tower' },
  'vision-heads': { kind: 'int', default: 2, help: 'attention heads per vision layer' },
  projection: { kind: 'int', default: 64, help: 'width of the shared embedding space' },
  'image-tower': { kind: 'string', meta: 'DIR', help: 'a tiny CLIP folder whose image tower (vision_model.* and visual_projection) is copied in and kept frozen: only the text tower and the temperature train, and the vision flags come from its config' },
  'twin-share': { kind: 'number', default: 0.5, help: 'share of each batch that is a counterfactual twin of another item (mirrored, resized, recoloured, reshaped or one object removed), in [0, 0.5]' },
  'log-every': { kind: 'int', default: 25, help: 'read the loss back and log every N steps' },
  'checkpoint-every': { kind: 'int', default: 250, help: 'save weights and optimizer state every N steps (0: only at the end)' },
  resume: { kind: 'boolean', help: `continue the interrupted run in --out's DIR.partial from its ${STATE_FILE} (same flags as that run)` },
  'eval-images': { kind: 'int', default: 500, help: `held-out images for the final evaluation (world records from ${WORLD_HELD_OUT_START}); 0 skips it` },
};

/** The flags that define the training run; a resumed run must repeat them exactly. */
const RUN_FLAGS = ['steps', 'batch-size', 'lr', 'warmup', 'weight-decay', 'seed', 'images', 'size', 'patch', 'layers', 'vision-layers', 'width', 'heads', 'vision-width', 'vision-heads', 'projection', 'context', 'twin-share', 'max-objects', 'image-tower'] as const;

function positive(f: ParsedFlags, name: string, min = 1): number {
  const v = f[name] as number;
  if (v < min) throw new UsageError(`--${name}: must be at least ${min}, got ${v}`);
  return v;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

/**
 * Refuses, before any work, an --out that holds something a finished run would replace: a model
 * only with --overwrite, anything else (a file, a folder of other things) never.
 */
function checkOut(out: string, overwrite: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a file, not a model folder`);
  const names = readdirSync(out);
  if (names.length === 0) return;
  const model = names.includes('config.json') || names.includes('model.safetensors');
  if (!model) throw new UsageError(`--out ${out}: holds files but no model (no config.json or model.safetensors); choose another --out`);
  if (!overwrite) throw new UsageError(`--out ${out}: holds a model; pass --overwrite to replace it when this run completes, or choose another --out`);
}

async function saveState(path: string, s: OptimizerState, runArgs: Record<string, unknown>): Promise<void> {
  const tensors: Record<string, TensorToWrite> = {};
  s.groups.forEach((g, gi) => {
    g.m.forEach((m, k) => (tensors[`group${gi}.m.${k}`] = { dtype: 'F32', shape: [m.length], data: m }));
    g.v.forEach((v, k) => (tensors[`group${gi}.v.${k}`] = { dtype: 'F32', shape: [v.length], data: v }));
  });
  const groups = s.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale, params: g.m.length }));
  await writeSafetensorsFile(path, tensors, { step: String(s.step), groups: JSON.stringify(groups), args: JSON.stringify(runArgs) });
}

async function loadState(path: string, runArgs: Record<string, unknown>): Promise<OptimizerState> {
  const f = await openSafetensors(path);
  let meta: Readonly<Record<string, string>>;
  try {
    meta = f.metadata;
  } finally {
    await f.close();
  }
  const saved = JSON.parse(meta.args ?? '{}') as Record<string, unknown>;
  for (const k of RUN_FLAGS) {
    if (saved[k] !== runArgs[k]) {
      throw new UsageError(`--resume: ${path} was written with --${k} ${JSON.stringify(saved[k])}, this run has ${JSON.stringify(runArgs[k])}`);
    }
  }
  const tensors = await loadSafetensorsFile(path);
  const groups = (JSON.parse(meta.groups ?? '[]') as { name: string; lr: number; weightDecay: number; gradScale: number; params: number }[]).map((g, gi) => {
    const arr = (kind: 'm' | 'v') => Array.from({ length: g.params }, (_, k) => {
      const t = tensors.get(`group${gi}.${kind}.${k}`);
      if (!t) throw new Error(`${path}: tensor group${gi}.${kind}.${k} missing`);
      return t.data as Float32Array;
    });
    return { name: g.name, lr: g.lr, weightDecay: g.weightDecay, gradScale: g.gradScale, m: arr('m'), v: arr('v') };
  });
  const step = Number(meta.step);
  if (!Number.isInteger(step) || step < 0) throw new Error(`${path}: metadata step ${JSON.stringify(meta.step)} is not a step count`);
  return { step, groups };
}

/** The config of the model an `--image-tower` comes from; errors name the folder. */
async function imageTowerConfig(dir: string) {
  try {
    return await clipConfigFor(dir);
  } catch (e) {
    throw new UsageError(`--image-tower ${dir}: ${(e as Error).message}`);
  }
}

/** Its image-tower weights as float32, by name. */
async function imageTowerWeights(dir: string): Promise<Map<string, Float32Array>> {
  const f = await openSafetensors(dir);
  const keys = f.keys().filter(isImageTowerWeight);
  await f.close();
  if (!keys.length) throw new UsageError(`--image-tower ${dir}: no vision_model.* weights in it`);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of await loadSafetensorsFile(dir, keys)) {
    if (!(t.data instanceof Float32Array)) throw new UsageError(`--image-tower ${dir}: ${k} is ${t.dtype}, expected F32`);
    out.set(k, t.data);
  }
  return out;
}

/** How that model was made (its pretrain.json), so the new one's record says how to remake both. */
function imageTowerReport(dir: string): unknown {
  const file = join(dir, REPORT_FILE);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8'));
}

await runCli('pretrain', 'usage: node dist/pretrain.js [--out DIR] [--steps N] [--batch-size N] [--lr X] [--seed N] [--images N] [--size N] [--layers N] [--width N]',
  'Pretrains a tiny CLIP from scratch on affirmative-only captions of the miniature world (symmetric CLIP loss, all parameters, AdamW) and writes a Hugging Face checkpoint folder with its word tokenizer. Progress goes to stderr; a summary to stdout.',
  FLAGS, async (f) => {
    const out = (f.out as string).replace(/(.)[\\/]+$/, '$1');
    // The run's folder until it completes; see the header.
    const work = `${out}.partial`;
    // One run per model folder (the lock sits beside it: OUT.partial becomes OUT at the end).
    lockOutput(dirname(resolve(out)), 'pretrain.js', (line) => process.stderr.write(`pretrain: ${line}\n`), `.${basename(out)}.lock`);
    const runArgs: Record<string, unknown> = {};
    for (const k of RUN_FLAGS) runArgs[k] = f[k];
    const steps = positive(f, 'steps');
    const batchSize = positive(f, 'batch-size', 2);
    const images = positive(f, 'images', 2);
    if (images >= WORLD_HELD_OUT_START) throw new UsageError(`--images: must be below ${WORLD_HELD_OUT_START} (where the held-out records start), got ${images}`);
    const lr = f.lr as number;
    if (!(lr > 0)) throw new UsageError(`--lr: must be positive, got ${lr}`);
    const weightDecay = f['weight-decay'] as number;
    if (!(weightDecay >= 0)) throw new UsageError(`--weight-decay: must be non-negative, got ${weightDecay}`);
    const warmup = positive(f, 'warmup', 0);
    const seed = positive(f, 'seed', 0);
    const logEvery = positive(f, 'log-every');
    const checkpointEvery = positive(f, 'checkpoint-every', 0);
    const evalImages = positive(f, 'eval-images', 0);
    const size = f.size as number;

    const tok = new WordTokenizer(worldVocabulary(), { contextLength: f.context as number });
    const imageTower = f['image-tower'] as string | undefined;
    const towerCfg = imageTower ? await imageTowerConfig(imageTower) : null;
    let cfg;
    try {
      const v = towerCfg?.vision;
      cfg = tinyClipConfig(tok, {
        width: f.width as number, layers: f.layers as number, heads: f.heads as number,
        visionLayers: v?.layers ?? f['vision-layers'] as number, imageSize: v?.imageSize ?? size, patchSize: v?.patchSize ?? f.patch as number,
        visionWidth: v?.hiddenSize ?? f['vision-width'] as number, visionHeads: v?.heads ?? f['vision-heads'] as number, projectionDim: towerCfg?.projectionDim ?? f.projection as number,
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (towerCfg && cfg.vision.intermediateSize !== towerCfg.vision.intermediateSize) {
      throw new UsageError(`--image-tower ${imageTower}: its vision MLP is ${towerCfg.vision.intermediateSize} wide, a tiny CLIP's is 4 x width (${cfg.vision.intermediateSize})`);
    }
    if (towerCfg && size !== towerCfg.vision.imageSize) throw new UsageError(`--size ${size}: --image-tower ${imageTower} takes ${towerCfg.vision.imageSize}px images`);
    const twinShare = f['twin-share'] as number;
    if (!(twinShare >= 0 && twinShare <= 0.5)) throw new UsageError(`--twin-share: must be in [0, 0.5], got ${twinShare}`);
    const statePath = join(work, STATE_FILE);
    checkOut(out, f.overwrite as boolean);
    if (f.resume && !existsSync(statePath)) throw new UsageError(`--resume: no ${statePath} (nothing to resume)`);
    if (!f.resume) {
      if (existsSync(statePath) && !f.overwrite) {
        throw new UsageError(`--out ${out}: ${work} holds an interrupted run; --resume continues it, --overwrite starts afresh`);
      }
      rmSync(work, { recursive: true, force: true });
      try {
        makeFolderSync(work);
      } catch (e) {
        throw new UsageError(`--out ${out}: ${(e as Error).message}; nothing was computed`);
      }
    }
    const resumeState = f.resume ? await loadState(statePath, runArgs) : null;

    const t0 = performance.now();
    process.stderr.write(`pretrain: generating ${images} world images (seed ${seed}, ${size}x${size})\n`);
    let records;
    try {
      records = generateWorld({ seed, count: images, size, maxObjects: f['max-objects'] as number });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const ctx = await nodeContext();
    const towerWeights = imageTower && !f.resume ? await imageTowerWeights(imageTower) : undefined;
    const model = f.resume ? await loadClip(ctx, work, { allowUnfinished: true }) : await initTinyClip(ctx, cfg, seed, towerWeights);
    if (f.resume && JSON.stringify(model.config) !== JSON.stringify(cfg)) {
      throw new UsageError(`--resume: ${work}/config.json does not match the flags' model config`);
    }
    const batcher = new WorldBatcher(records, tok, { seed, batchSize, imageSize: size, twinShare });
    const trainer = new ClipPretrainer(model, batcher, { steps, lr, warmupSteps: warmup, weightDecay, maxGradNorm: 1, ...(imageTower ? { frozen: isImageTowerWeight } : {}) });
    let from = 0;
    if (resumeState) {
      const state = resumeState;
      const weights = await openSafetensors(join(work, 'model.safetensors'));
      const weightStep = weights.metadata.pretrain_step;
      await weights.close();
      if (weightStep !== String(state.step)) {
        throw new Error(`--resume: ${work}/model.safetensors is from step ${weightStep ?? '(unknown)'} but ${statePath} from step ${state.step} (a checkpoint was interrupted; start again without --resume)`);
      }
      trainer.loadState(state);
      from = trainer.opt.stepCount;
      process.stderr.write(`pretrain: resuming ${work} at step ${from}\n`);
    }
    const nParams = [...model.params.values()].reduce((s, t) => s + t.size, 0);
    process.stderr.write(`pretrain: ${nParams} parameters; text ${cfg.text.layers}x${cfg.text.hiddenSize} (vocab ${cfg.text.vocabSize}, context ${cfg.text.maxPositions}), vision ${cfg.vision.layers}x${cfg.vision.hiddenSize} (${size}px / ${cfg.vision.patchSize}px patches); ${steps} steps of ${batchSize} on ${ctx.info.description}\n`);

    const save = (step: number) => saveClip(model, work, { tokenizer: tok, metadata: { pretrain_step: String(step) } });
    const tTrain = performance.now();
    let lastLog: PretrainLog | null = null;
    const finalLoss = await trainer.run({
      from,
      logEvery,
      checkpointEvery,
      onLog: (l) => {
        lastLog = l;
        const elapsed = (performance.now() - tTrain) / 1000;
        const eta = ((steps - l.step) / Math.max(1e-9, (l.step - from) / elapsed));
        process.stderr.write(`step ${String(l.step).padStart(String(steps).length)}/${steps}  loss ${l.loss.toFixed(4)}  lr ${l.lr.toExponential(2)}  ${l.samplesPerSec.toFixed(0)} samples/s  scale ${l.logitScale.toFixed(1)}  eta ${fmtTime(eta)}\n`);
      },
      onCheckpoint: async (step) => {
        await save(step);
        await saveState(statePath, await trainer.state(), runArgs);
        process.stderr.write(`pretrain: checkpoint at step ${step} in ${work}\n`);
      },
    });
    const trainSeconds = (performance.now() - tTrain) / 1000;
    trainer.finish();
    await save(steps);
    const logitScale = Math.exp(await model.param('logit_scale').item());

    const report: Record<string, unknown> = {
      args: runArgs,
      config: { text: cfg.text, vision: cfg.vision, projectionDim: cfg.projectionDim, parameters: nParams },
      ...(imageTower ? { imageTower: { from: imageTower, frozen: true, pretrain: imageTowerReport(imageTower) } } : {}),
      trainImages: images,
      stepsRun: steps - from,
      resumedFrom: from > 0 ? from : undefined,
      trainSeconds,
      stepsPerSecond: (steps - from) / trainSeconds,
      samplesPerSecond: ((steps - from) * batchSize) / trainSeconds,
      finalLoss,
      logitScale,
      adapter: ctx.info.description,
      cpus: cpus().length,
    };
    if (evalImages > 0) {
      process.stderr.write(`pretrain: evaluating on ${evalImages} held-out images (world records ${WORLD_HELD_OUT_START}..)\n`);
      const held = generateWorld({ seed, count: evalImages, size, start: WORLD_HELD_OUT_START, maxObjects: f['max-objects'] as number });
      report.heldOut = { start: WORLD_HELD_OUT_START, retrieval: await worldRetrieval(model, tok, held), affirmationBias: await affirmationBias(model, tok, held, { seed }) };
    }
    report.totalSeconds = (performance.now() - t0) / 1000;
    await writeJsonAtomic(join(work, REPORT_FILE), report);
    model.dispose();
    // Complete: the state file goes (the folder is a model now) and the folder takes its name.
    rmSync(statePath, { force: true });
    await replaceFolder(work, out);

    const log = lastLog as PretrainLog | null;
    const lines = [
      `wrote ${out} (${nParams} parameters, ${steps} steps, final loss ${finalLoss.toFixed(4)}, logit scale ${logitScale.toFixed(1)})`,
      `training ${fmtTime(trainSeconds)} (${((steps - from) / trainSeconds).toFixed(2)} steps/s${log ? `, last ${log.samplesPerSec.toFixed(0)} samples/s` : ''}), total ${fmtTime(report.totalSeconds as number)}`,
    ];
    const held = report.heldOut as { retrieval: Awaited<ReturnType<typeof worldRetrieval>>; affirmationBias: Awaited<ReturnType<typeof affirmationBias>> } | undefined;
    if (held) {
      const r = held.retrieval;
      const b = held.affirmationBias;
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      lines.push(
        `held-out ${r.images} images (${r.distinctScenes} distinct scenes): text->image R@1 ${pct(r.textToImage.r1)} R@5 ${pct(r.textToImage.r5)}; image->text R@1 ${pct(r.imageToText.r1)} R@5 ${pct(r.imageToText.r5)}`,
        `affirmation bias: "a X" over "no X" when X is present ${pct(b.presentAffirmedOverNegated.accuracy)}; "no X" over "a X" when X is absent ${pct(b.absentNegatedOverAffirmed.accuracy)}; ` +
          `true "no X" over false "no Y" ${pct(b.negatedChoice.accuracy)} (control, true "a Y" over false "a X" ${pct(b.affirmedChoice.accuracy)}); cos("a X", "no X") ${b.affirmedNegatedTextCosine.toFixed(3)}`,
      );
    }
    process.stdout.write(lines.join('\n') + '\n');
  });
