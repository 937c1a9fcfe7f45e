/**
 * Runs a fine-tuning run that `setUpTraining` built: the loop with its progress line, metrics,
 * validation and checkpoints; a stop on Ctrl-C, SIGTERM, SIGHUP or the parent's death (finish
 * the step, save, exit 128 + the signal); then the adapter (or model), the per-layer update
 * analysis and report.json. Node-only.
 */
import { existsSync, statSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { loadClip } from '../models/load-node.js';
import { saveLora } from '../models/peft-node.js';
import { saveClip } from '../models/save-node.js';
import type { ParsedFlags } from '../cli/args.js';
import { StopRequests, stopExitCode, stopName } from '../cli/stop-signals-node.js';
import { writeFileAtomic } from '../data/shards-node.js';
import { MAX_CONFIG_BYTES, readRegularFileSync } from '../io/read-file-node.js';
import { loraUpdateNorms, updateShares } from './update-shares.js';
import { TrainingLoop, NonFiniteLossError } from './training-loop.js';
import { saveCheckpoint } from './checkpoint-node.js';
import { armLabel } from './recipe.js';
import { evalFileJson, evalMarkdownPath, evalTitle } from './eval-file.js';
import { reportMarkdown } from './evaluate.js';
import { layerUpdateNorms, textSnapshot, type Accuracies, type TrainSetup } from './train-setup-node.js';

/** Trains, saves and reports; frees the set-up's GPU memory when done. */
export async function runTraining(s: TrainSetup, f: ParsedFlags): Promise<void> {
  const arm = armLabel(s.recipe, s.uniform);
  const { recipe, model, tok, lora, trainer, batcher, checks, steps, out, ckptDir, fullText } = s;
  const loop = batcher.state;
  const valEvery = f['val-every'] as number;
  const trainChecks = f['train-checks'] as string;
  const ctxLen = model.config.text.maxPositions;
  const run = new TrainingLoop(trainer, batcher, s.imageTable, (texts) => tok.tokenize(texts, { contextLength: ctxLen, truncate: true }), {
    steps, accumulate: s.accumulate, logEvery: f['log-every'] as number, saveEvery: f['save-every'] as number,
    valEvery: checks.length > 0 ? valEvery : 0, stopAfter: f['stop-after'] as number | undefined,
  });
  const saveCkpt = async () => {
    const writeExtra = fullText ? (folder: string) => saveClip(model, join(folder, 'model')) : undefined;
    await saveCheckpoint(ckptDir, lora, await trainer.optimizer.state(), loop, s.modelPath, s.hparams, { writeExtra });
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
          if (c.name === 'train' && trainChecks === 'last' && step < steps) continue;
          last[c.name] = await s.measure(c);
          rec[`${c.name}_claim_accuracy`] = last[c.name].claim;
          if (recipe.reportsMcq) rec[`${c.name}_mcq_accuracy`] = last[c.name].mcq;
        }
        if (Object.keys(rec).length === 1) return;
        await appendFile(metricsFile, JSON.stringify(rec) + '\n');
        if (!f.quiet) {
          const mcq = recipe.reportsMcq ? `; MCQ accuracy ${pct(last.val.mcq)} (train ${pct(last.train.mcq)})` : '';
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
  if (loop.step < steps) {
    process.stderr.write(`train: ${stops.cause ? 'interrupted' : 'stopped'} at step ${loop.step} of ${steps}; checkpoint saved in ${ckptDir}, continue with --resume\n`);
    if (stops.cause) process.exitCode = stopExitCode(stops.cause);
    s.release();
    return;
  }
  let norms: number[];
  if (lora) {
    await saveLora(join(out, 'adapter'), lora, { baseModel: s.modelPath });
    norms = await loraUpdateNorms(lora, s.layers);
  } else {
    const dir = join(out, 'model');
    await saveClip(model, dir, { metadata: { fine_tuned_from: s.modelPath, recipe: recipe.name } });
    await copyModelFiles(s.modelPath, dir);
    const base = s.start ?? await textSnapshot(await loadClip(s.ctx, s.modelPath, { configPath: s.configPath }), true);
    norms = layerUpdateNorms(base, await textSnapshot(model), s.layers);
  }
  const shares = s.cteLayer ? updateShares(norms, s.cteLayer) : null;
  const report = {
    steps: loop.step, epochs: loop.epoch + loop.cursor / s.batcher.images.length, final_loss: lastLoss, recipe: recipe.name, trained: fullText ? 'full-text' : 'lora',
    val_claim_accuracy: last.val.claim, train_claim_accuracy: last.train.claim,
    ...(recipe.reportsMcq ? { val_mcq_accuracy: last.val.mcq, train_mcq_accuracy: last.train.mcq } : {}),
    lambda: s.lambda, mode: arm.mode,
    scale_mode: f['scale-mode'] as string, layer_scales: s.scales, update_norms: norms, update_shares: shares, seconds: (Date.now() - t0) / 1000,
  };
  await writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 1) + '\n');
  console.log(`trained ${loop.step} steps (${arm.label}${fullText ? ', full text encoder' : ', LoRA'}), final loss ${lastLoss.toFixed(4)}; ${lora ? `adapter in ${join(out, 'adapter')}` : `model in ${join(out, 'model')}`}`);
  if (last.train.claim !== null || last.val.claim !== null) console.log(`claim accuracy: train ${pct(last.train.claim)}, validation ${pct(last.val.claim)}`);
  console.log(`per-layer update norms: ${norms.map((x) => x.toExponential(2)).join(' ')}`);
  if (shares) console.log(`top-3 share ${(shares.top3 * 100).toFixed(1)}%, top-5 share ${(shares.top5 * 100).toFixed(1)}%${shares.note ? ` (${shares.note})` : ''}`);
  if (s.finalEval) await evaluateTrained(s, lora ? join(out, 'adapter') : null);
  if (f['export-merged'] && lora) {
    const dir = f['export-merged'] as string;
    lora.merge();
    await saveClip(model, dir, { metadata: { merged_adapter: join(out, 'adapter') } });
    await copyModelFiles(s.modelPath, dir);
    console.log(`merged the adapter into the base weights: ${dir}`);
  }
  s.release();
}

/**
 * --eval-split: scores the model as trained (the adapter still attached) on the split, and writes
 * OUT/eval.json and OUT/eval.md as `eval.js --model MODEL --adapter OUT/adapter --split SPLIT
 * --out OUT/eval.json` would, without a second process loading the model again.
 */
async function evaluateTrained(s: TrainSetup, adapter: string | null): Promise<void> {
  const fe = s.finalEval!;
  const t0 = Date.now();
  const title = evalTitle(fe.data.dir, fe.data.split);
  process.stderr.write(`train: ${title}: scoring ${fe.records.length} records\n`);
  const result = await fe.run();
  const model = adapter ? s.modelPath : join(s.out, 'model');
  const name = basename(model) + (adapter ? ` + ${basename(resolve(adapter))}` : '');
  const rows = [{ name, model, adapter, seconds: (Date.now() - t0) / 1000, report: result.report }];
  const json = evalFileJson({ dir: fe.data.dir, split: fe.data.split ?? null, records: fe.records.length, kinds: result.plan.kinds }, rows);
  const md = reportMarkdown(rows, title);
  const file = join(s.out, 'eval.json');
  const mdFile = evalMarkdownPath(file);
  await writeFileAtomic(file, JSON.stringify(json, null, 2) + '\n');
  await writeFileAtomic(mdFile, md);
  process.stdout.write(md);
  process.stderr.write(`train: wrote ${file} and ${mdFile}\n`);
}

/**
 * Tokenizer and preprocessing files travel with a merged export (the weights are written anew);
 * each is a configuration-sized regular file, read within that bound and written atomically.
 */
async function copyModelFiles(modelPath: string, dir: string): Promise<void> {
  const from = statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'bpe_simple_vocab_16e6.txt.gz', 'word_tokenizer.json', 'preprocessor_config.json']) {
    if (existsSync(join(from, name))) await writeFileAtomic(join(dir, name), readRegularFileSync(join(from, name), MAX_CONFIG_BYTES, 'a tokenizer or preprocessing file'));
  }
}

function bar(done: number, total: number): string {
  const w = 24;
  const f = Math.round((done / total) * w);
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`;
}
