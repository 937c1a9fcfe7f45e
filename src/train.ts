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
import { defaultRun } from './nast/default-run-node.js';
import { imageConfigFor, loadPixels } from './cli/images-node.js';
import { openShards, writeFileAtomic } from './data/shards-node.js';
import type { ClaimSet } from './data/claims.js';
import type { NegatedCaption } from './data/captions.js';
import { layerScales, parseCteReport } from './nast/cte.js';
import { loraUpdateNorms, NastTrainer, type TrainItem } from './nast/train-loop.js';
import { updateShares } from './nast/update-shares.js';
import { hasCheckpoint, loadCheckpointState, saveCheckpoint, type LoopState } from './nast/checkpoint-node.js';
import { makeRng, shuffle } from './data/rng.js';
import { evaluateClip, type EvalRecord } from './nast/evaluate.js';

const FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'base CLIP checkpoint (frozen)' },
  data: { kind: 'string', meta: 'DIR', help: 'dataset folder from dist/data.js (claim sets + negated captions; a train/ subfolder is used when present)' },
  cte: { kind: 'string', meta: 'FILE', help: 'cte.json from dist/trace.js: per-layer CTE scales (required unless --uniform)' },
  uniform: { kind: 'boolean', help: 'baseline: every layer scale 1 (no CTE weighting)' },
  beta: { kind: 'number', help: 'sharpness: layer scale alpha_l^beta (default: the beta in cte.json)' },
  lambda: { kind: 'number', default: 0.5, help: 'loss = lambda * L_CLIP + (1 - lambda) * L_claim' },
  rank: { kind: 'int', default: 8, help: 'LoRA rank r' },
  alpha: { kind: 'number', default: 16, help: 'LoRA alpha (branch scaled by alpha / r)' },
  targets: { kind: 'string', default: 'q_proj,k_proj,v_proj,out_proj', help: 'comma-separated LoRA targets (q_proj,k_proj,v_proj,out_proj,fc1,fc2)' },
  lr: { kind: 'number', default: 5e-4, help: 'peak learning rate' },
  'weight-decay': { kind: 'number', default: 0.01, help: 'AdamW weight decay on the LoRA weights' },
  warmup: { kind: 'int', default: 10, help: 'linear warm-up steps (then cosine to zero)' },
  'batch-size': { kind: 'int', default: 32, help: 'images per optimizer step' },
  accumulate: { kind: 'int', default: 1, help: 'micro-batches per step (batch-size must divide by it)' },
  steps: { kind: 'int', help: 'optimizer steps (default: one epoch)' },
  epochs: { kind: 'number', help: 'train this many epochs instead of --steps' },
  'max-grad-norm': { kind: 'number', help: 'clip the global gradient norm' },
  'scale-mode': { kind: 'string', default: 'update', help: 'update: CTE scales each layer\'s learning rate; gradient: scales its gradient (Adam mostly cancels it)' },
  seed: { kind: 'int', default: 0, help: 'seed of LoRA init and data order' },
  out: { kind: 'string', meta: 'DIR', default: 'train-out', help: 'output folder: adapter/, checkpoint/, metrics.jsonl, report.json' },
  'val-every': { kind: 'int', default: 50, help: 'claim accuracy on the data folder\'s validation split every N steps (0: never)' },
  'log-every': { kind: 'int', default: 10, help: 'read the loss back and log every N steps' },
  'save-every': { kind: 'int', default: 100, help: 'write a checkpoint every N steps' },
  'stop-after': { kind: 'int', help: 'stop (with a checkpoint, as on Ctrl-C) once this many steps are done; --resume continues' },
  'export-merged': { kind: 'string', meta: 'DIR', help: 'also write the base model with the adapter merged in (W + scale * B A) as a Hugging Face folder' },
  resume: { kind: 'boolean', help: 'continue from OUT/checkpoint exactly where it stopped' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'tokenizer file or folder (default: the model folder)' },
  quiet: { kind: 'boolean', help: 'no progress bar' },
  seeds: { kind: 'string', default: '0,1,2', help: 'default run only: comma-separated seeds, one uniform and one NAST run each' },
  'world-count': { kind: 'int', default: 1500, help: 'default run only: miniature-world images to build' },
  'trace-pairs': { kind: 'int', default: 200, help: 'default run only: probe pairs to trace' },
  short: { kind: 'boolean', help: 'default run only: a quick check (1 seed, few images and steps) for CI' },
};

/** Flags of the fine-tuning runs that the default run passes through when the user gives them. */
const PASS_THROUGH = ['beta', 'lambda', 'rank', 'alpha', 'targets', 'lr', 'weight-decay', 'warmup', 'batch-size', 'accumulate', 'max-grad-norm', 'scale-mode', 'log-every', 'quiet'];

function given(name: string): boolean {
  return process.argv.slice(2).some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

async function embeddedDefault(f: ParsedFlags): Promise<void> {
  const short = f.short as boolean;
  const seeds = (short && !given('seeds') ? '0' : (f.seeds as string)).split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n)) throw new UsageError(`--seeds: ${JSON.stringify(x)} is not an integer`);
    return n;
  });
  const trainFlags: string[] = [];
  for (const k of PASS_THROUGH) {
    if (!given(k)) continue;
    trainFlags.push(`--${k}`);
    if (FLAGS[k].kind !== 'boolean') trainFlags.push(String(f[k]));
  }
  if (!given('batch-size')) trainFlags.push('--batch-size', '32');
  if (!given('lr')) trainFlags.push('--lr', '2e-3');
  if (!given('log-every')) trainFlags.push('--log-every', '5');
  await defaultRun({
    out: given('out') ? (f.out as string) : 'default-run',
    seeds,
    steps: given('steps') ? (f.steps as number) : short ? 6 : 150,
    worldCount: given('world-count') ? (f['world-count'] as number) : short ? 200 : (f['world-count'] as number),
    tracePairs: given('trace-pairs') ? (f['trace-pairs'] as number) : short ? 16 : (f['trace-pairs'] as number),
    trainFlags,
  });
}

interface Example { image: string; caption: string; claims: string[]; answer: number }

/** Claim sets paired with a negated caption of the same image (or the true claim when none). */
function readExamples(records: unknown[], where: string): Example[] {
  const captions = new Map<string, string[]>();
  for (const r of records as NegatedCaption[]) {
    if (r.kind === 'negated-caption') captions.set(r.image, [...(captions.get(r.image) ?? []), r.caption]);
  }
  const out: Example[] = [];
  const used = new Map<string, number>();
  for (const r of records as ClaimSet[]) {
    if (r.kind !== 'claim-set') continue;
    const caps = captions.get(r.image);
    const k = used.get(r.image) ?? 0;
    used.set(r.image, k + 1);
    out.push({ image: r.image, caption: caps ? caps[k % caps.length] : r.claims[r.answer].text, claims: r.claims.map((c) => c.text), answer: r.answer });
  }
  if (out.length === 0) throw new Error(`${where}: no claim-set records to train on (build them with dist/data.js --kind claims)`);
  return out;
}

/** Tokenizer and preprocessing files travel with a merged export (the weights are written anew). */
function copyModelFiles(modelPath: string, dir: string): void {
  const from = statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'bpe_simple_vocab_16e6.txt.gz', 'word_tokenizer.json', 'preprocessor_config.json']) {
    if (existsSync(join(from, name))) copyFileSync(join(from, name), join(dir, name));
  }
}

function dataFolder(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir}: no such data folder`);
  for (const sub of ['train', '.']) if (existsSync(join(dir, sub, 'index.json'))) return join(dir, sub);
  throw new Error(`${dir}: no index.json (or train/index.json): build the folder with dist/data.js`);
}

function bar(done: number, total: number): string {
  const w = 24;
  const f = Math.round((done / total) * w);
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`;
}

await runCli('train', 'usage: node dist/train.js --model DIR --data DIR --cte cte.json [--beta 1] [--lambda 0.5] [--rank 8] [--alpha 16] [--lr] [--batch-size] [--steps|--epochs] [--out DIR] [--resume]',
  'NAST fine-tuning: LoRA on the CLIP text encoder with per-layer CTE scales, loss lambda * L_CLIP + (1 - lambda) * L_claim, AdamW.\nWith neither --model nor --data: the embedded default run (miniature world, tiny CLIP in models/tiny-world, trace, NAST vs uniform over --seeds, evaluation table in default-run/).', FLAGS, async (f) => {
    const modelPath = f.model as string | undefined;
    if (!modelPath && !f.data) return embeddedDefault(f);
    if (!modelPath) throw new UsageError('--model is required');
    if (!f.data) throw new UsageError('--data is required');
    if (!f.cte && !f.uniform) throw new UsageError('--cte is required (or --uniform for the baseline)');
    const lambda = f.lambda as number;
    if (!(lambda >= 0 && lambda <= 1)) throw new UsageError(`--lambda must be in [0, 1], got ${lambda}`);
    const scaleMode = f['scale-mode'] as string;
    if (scaleMode !== 'update' && scaleMode !== 'gradient') throw new UsageError(`--scale-mode must be update or gradient, got ${scaleMode}`);
    const batch = f['batch-size'] as number;
    const acc = f.accumulate as number;
    if (batch < 2 || batch % acc !== 0) throw new UsageError(`--batch-size ${batch} must be >= 2 and divisible by --accumulate ${acc}`);
    const out = f.out as string;
    const ckptDir = join(out, 'checkpoint');

    const folder = dataFolder(f.data as string);
    const examples = readExamples(await (await openShards(folder)).readAll(), folder);
    const images = [...new Set(examples.map((e) => e.image))];
    if (images.length < batch) throw new Error(`${folder}: ${images.length} distinct images, fewer than --batch-size ${batch}`);
    const byImage = new Map<string, Example[]>();
    for (const e of examples) byImage.set(e.image, [...(byImage.get(e.image) ?? []), e]);
    const perEpoch = Math.floor(images.length / batch);
    const steps = (f.steps as number | undefined) ?? Math.max(1, Math.round(((f.epochs as number | undefined) ?? 1) * perEpoch));

    const ctx = await nodeContext();
    const model = await loadClip(ctx, modelPath);
    const tok = loadClipTokenizer(modelPath, f.tokenizer as string | undefined);
    const layers = model.config.text.layers;
    let scales: number[] | null = null;
    if (!f.uniform) {
      const cte = parseCteReport(readFileSync(f.cte as string, 'utf8'), f.cte as string);
      if (cte.layers !== layers + 1) throw new Error(`${f.cte}: layers is ${cte.layers}, the model has ${layers} text layers (expected ${layers + 1})`);
      scales = layerScales(cte.alpha, (f.beta as number | undefined) ?? cte.beta);
    }
    const resume = (f.resume as boolean) && hasCheckpoint(ckptDir);
    const lora = resume
      ? await loadLora(model, ckptDir)
      : attachLora(model, { rank: f.rank as number, alpha: f.alpha as number, targets: (f.targets as string).split(',').map((s) => s.trim()) as LoraTarget[], seed: f.seed as number });

    // The vision tower is frozen: embed every training image once.
    process.stderr.write(`train: embedding ${images.length} images\n`);
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
    const imageIndex = new Map(images.map((p, i) => [p, i]));

    // Validation: claim accuracy on the validation split's claim sets, image embeddings reused.
    const valDir = join(f.data as string, 'validation');
    const valEvery = f['val-every'] as number;
    let valRecords: EvalRecord[] = [];
    let valEmbeds: Float32Array | undefined;
    if (valEvery > 0 && existsSync(join(valDir, 'index.json'))) {
      valRecords = ((await (await openShards(valDir)).readAll()) as EvalRecord[]).filter((r) => r.kind === 'claim-set');
    }
    const validate = async (): Promise<number | null> => {
      if (valRecords.length === 0) return null;
      const r = await evaluateClip(model, valRecords, {
        tokenizer: tok, imageEmbeds: valEmbeds,
        loadPixels: (paths) => loadPixels(paths.map((p) => (isAbsolute(p) ? p : resolve(valDir, p))), imgCfg, model.config.vision.imageSize),
      });
      valEmbeds = r.imageEmbeds;
      return r.report.claims.accuracy;
    };

    const trainer = new NastTrainer(model, lora, {
      lambda, lr: f.lr as number, weightDecay: f['weight-decay'] as number, warmupSteps: f.warmup as number, totalSteps: steps,
      maxGradNorm: f['max-grad-norm'] as number | undefined, layerScales: scales, scaleMode,
    });
    let loop: LoopState = { step: 0, epoch: 0, cursor: 0, seed: f.seed as number };
    if (resume) {
      const st = await loadCheckpointState(ckptDir);
      trainer.optimizer.loadState(st.optimizer);
      loop = st.loop;
      process.stderr.write(`train: resumed at step ${loop.step} (epoch ${loop.epoch}, position ${loop.cursor})\n`);
    }
    const ctxLen = model.config.text.maxPositions;
    // Each example is tokenised once, the first time a batch uses it.
    const tokenized = new Map<Example, { caption: Int32Array; claims: Int32Array }>();
    const idsOf = (ex: Example) => {
      let t = tokenized.get(ex);
      if (!t) {
        t = {
          caption: tok.tokenize([ex.caption], { contextLength: ctxLen, truncate: true }),
          claims: tok.tokenize(ex.claims, { contextLength: ctxLen, truncate: true }),
        };
        tokenized.set(ex, t);
      }
      return t;
    };
    const order = (epoch: number) => shuffle(makeRng(loop.seed * 1000003 + epoch), images);
    let perm = order(loop.epoch);
    const nextBatch = (): TrainItem[] => {
      if (loop.cursor + batch > perm.length) {
        loop.epoch++;
        loop.cursor = 0;
        perm = order(loop.epoch);
      }
      const pick = perm.slice(loop.cursor, loop.cursor + batch);
      loop.cursor += batch;
      return pick.map((img) => {
        const opts = byImage.get(img)!;
        const at = imageIndex.get(img)!;
        // Each epoch moves every image on to its next claim set (images have one per fact).
        const ex = opts[(loop.epoch + at) % opts.length];
        const ids = idsOf(ex);
        return { image: at, caption: ids.caption, claims: ids.claims, claimCount: ex.claims.length, answer: ex.answer };
      });
    };

    await mkdir(out, { recursive: true });
    const metricsFile = join(out, 'metrics.jsonl');
    let stop = false;
    const onSigint = () => { stop = true; };
    process.once('SIGINT', onSigint);
    const t0 = Date.now();
    const startStep = loop.step;
    let lastLoss = NaN;
    let lastVal: number | null = null;
    const micro = batch / acc;
    const stopAfter = f['stop-after'] as number | undefined;
    while (loop.step < steps && !stop) {
      if (stopAfter !== undefined && loop.step >= stopAfter) break;
      const items = nextBatch();
      const losses: Tensor[] = [];
      for (let m = 0; m < acc; m++) losses.push(trainer.accumulate(imageTable, items.slice(m * micro, (m + 1) * micro), 1 / acc));
      trainer.apply();
      loop.step++;
      const logNow = loop.step % (f['log-every'] as number) === 0 || loop.step === steps;
      if (logNow) {
        let sum = 0;
        for (const l of losses) sum += await l.item();
        lastLoss = sum / acc;
        const sec = (Date.now() - t0) / 1000;
        const rec = { step: loop.step, epoch: loop.epoch, loss: lastLoss, lr: trainer.currentLr(), samples_per_s: ((loop.step - startStep) * batch) / sec };
        await appendFile(metricsFile, JSON.stringify(rec) + '\n');
        if (!f.quiet) process.stderr.write(`\rtrain ${bar(loop.step, steps)} loss ${lastLoss.toFixed(4)} lr ${rec.lr.toExponential(2)} ${rec.samples_per_s.toFixed(1)} samples/s   `);
      }
      for (const l of losses) l.dispose();
      if (valEvery > 0 && valRecords.length > 0 && (loop.step % valEvery === 0 || loop.step === steps)) {
        const acc = await validate();
        await appendFile(metricsFile, JSON.stringify({ step: loop.step, val_claim_accuracy: acc }) + '\n');
        if (!f.quiet) process.stderr.write(`\ntrain: step ${loop.step}: validation claim accuracy ${(100 * (acc ?? NaN)).toFixed(1)}% (${valRecords.length} sets)\n`);
        lastVal = acc;
      }
      if (loop.step % (f['save-every'] as number) === 0 && loop.step < steps) {
        await saveCheckpoint(ckptDir, lora, await trainer.optimizer.state(), loop, modelPath);
      }
    }
    process.removeListener('SIGINT', onSigint);
    if (!f.quiet) process.stderr.write('\n');
    await saveCheckpoint(ckptDir, lora, await trainer.optimizer.state(), loop, modelPath);
    if (loop.step < steps) {
      process.stderr.write(`train: ${stop ? 'interrupted' : 'stopped'} at step ${loop.step} of ${steps}; checkpoint saved in ${ckptDir}, continue with --resume\n`);
      if (stop) process.exitCode = 130;
      imageTable.dispose();
      trainer.dispose();
      lora.dispose();
      model.dispose();
      return;
    }
    await saveLora(join(out, 'adapter'), lora, { baseModel: modelPath });
    const norms = await loraUpdateNorms(lora, layers);
    const cteLayer = scales ? parseCteReport(readFileSync(f.cte as string, 'utf8'), f.cte as string).cte_layer : null;
    const shares = cteLayer ? updateShares(norms, cteLayer) : null;
    const report = {
      steps: loop.step, epochs: loop.epoch + loop.cursor / images.length, final_loss: lastLoss, val_claim_accuracy: lastVal, lambda, mode: f.uniform ? 'uniform' : 'nast',
      scale_mode: scaleMode, layer_scales: scales, update_norms: norms, update_shares: shares, seconds: (Date.now() - t0) / 1000,
    };
    await writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 1) + '\n');
    console.log(`trained ${loop.step} steps (${f.uniform ? 'uniform' : 'NAST'}), final loss ${lastLoss.toFixed(4)}; adapter in ${join(out, 'adapter')}`);
    console.log(`per-layer update norms: ${norms.map((x) => x.toExponential(2)).join(' ')}`);
    if (shares) console.log(`top-3 share ${(shares.top3 * 100).toFixed(1)}%, top-5 share ${(shares.top5 * 100).toFixed(1)}%`);
    imageTable.dispose();
    trainer.dispose();
    if (f['export-merged']) {
      const dir = f['export-merged'] as string;
      lora.merge();
      await saveClip(model, dir, { metadata: { merged_adapter: join(out, 'adapter') } });
      copyModelFiles(modelPath, dir);
      console.log(`merged the adapter into the base weights: ${dir}`);
    }
    lora.dispose();
    model.dispose();
  });
