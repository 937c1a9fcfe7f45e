#!/usr/bin/env node
/**
 * `node dist/trace.js --model DIR --pairs FILE.jsonl [--out DIR] [--positions differ] [--min-delta X] [--beta B]`:
 * causal tracing of the CLIP text encoder over (image, caption, foil) pairs; writes cte.json
 * (version 2: CTE_l and alpha over the encoder's layers 1..L) and an SVG heat map of CTE(l, p)
 * with the per-layer bars beside it.
 */
import { parsePairLines, type PairLine as ParsedPairLine } from './nast/pairs-file.js';
import { lockOutput } from './cli/run-lock-node.js';
import { MAX_TEXT_BYTES, readFailure, readRegularTextSync } from './io/read-file-node.js';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { nodeContext } from './engine/node-gpu.js';
import { noGrad, type Tensor } from './engine/index.js';
import { loadClip, loadClipTokenizer } from './models/load-node.js';
import { loadLora } from './models/peft-node.js';
import { runCli, UsageError, type FlagTable } from './cli/args.js';
import { requireInputFiles } from './cli/input-file-node.js';
import { imageConfigFor, loadPixels } from './cli/images-node.js';
import { tracePair, TraceInputError } from './nast/trace.js';
import { TextTooLongError } from './models/tokenizer/rows.js';
import type { Tokenizer } from './models/tokenizer/index.js';
import {
  UntraceablePairError, buildCteReport, negationPositions, DEFAULT_BETA, DEFAULT_MIN_DELTA, DEFAULT_POSITION_RULE, POSITION_RULES, isPositionRule,
  type CteSkippedJson, type Polarity, type PositionRule, type TracedPair,
} from './nast/cte.js';
import { heatmapSvg } from './nast/heatmap-svg.js';
import { hasNegationCue } from './data/templates.js';
import { writeFileAtomic } from './io/atomic-write-node.js';
import { makeFolderSync } from './io/fs-errors-node.js';
import { prepareOutputFolder } from './cli/out-path-node.js';

const MAX_BOOTSTRAP = 1_000_000;

const FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'CLIP checkpoint: Hugging Face folder (config.json + model.safetensors or pytorch_model.bin), OpenAI-layout .safetensors, or a PyTorch / open_clip / NegBench .pt (with --config)' },
  pairs: { kind: 'string', meta: 'FILE.jsonl', help: 'one {"image": PATH, "caption": "...", "foil": "..."} per line; paths absolute or relative to the file' },
  out: { kind: 'string', meta: 'DIR', default: 'trace-out', help: 'output folder for cte.json and cte_heatmap.svg' },
  'min-delta': { kind: 'number', default: DEFAULT_MIN_DELTA, help: 'skip pairs with |S_corr - S_foil| below this (never divided by)' },
  beta: { kind: 'number', default: DEFAULT_BETA, help: 'sharpness of the gradient scale alpha_l^beta recorded in cte.json' },
  adapter: { kind: 'string', meta: 'DIR', help: 'trace the model with this PEFT LoRA adapter applied' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'tokenizer file or folder (default: the model folder)' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use instead of the one beside the weights' },
  positions: { kind: 'string', default: DEFAULT_POSITION_RULE, help: 'positions CTE_l averages over: differ (where caption and foil ids differ: the negator and its counterpart), after (first difference through EOT), eot, all' },
  // Every resample's mean is held per residual index to take the interval's quantiles: 10^6
  // resamples of a 24-layer encoder are 200 MB, 10^8 would not fit in V8's heap.
  bootstrap: { kind: 'int', default: 1000, min: 0, max: MAX_BOOTSTRAP, help: `bootstrap resamples of the pairs for the 95% interval of each CTE_l (0: none; at most ${MAX_BOOTSTRAP}, held in memory)` },
  limit: { kind: 'int', min: 1, help: 'trace only the first N pairs' },
  quiet: { kind: 'boolean', help: 'no progress line (the default run traces beside its first fine-tunes)' },
};

interface PairLine extends ParsedPairLine {
  /** Where the image is read from (`image` resolved against the pairs file's folder). */
  path: string;
}

/** Parses the pairs file, naming the line of anything malformed. */
export function readPairs(file: string): PairLine[] {
  let text: string;
  try {
    text = readRegularTextSync(file, MAX_TEXT_BYTES, 'a pairs file read whole');
  } catch (e) {
    throw new Error(`${file}: ${readFailure(e)}`);
  }
  return parsePairLines(text, file).map((p) => ({ ...p, path: isAbsolute(p.image) ? p.image : resolve(dirname(file), p.image) }));
}

/**
 * The caption and foil ids of a pair (one row each), or why the pair cannot be traced: a text
 * longer than the model's context (tracing patches position by position, so it cannot be cut),
 * or ids that negationPositions refuses (different lengths, identical).
 */
function pairIds(tok: Tokenizer, p: PairLine, ctxLen: number, rule: PositionRule, eotId: number): Int32Array | string {
  let ids: Int32Array;
  try {
    ids = tok.tokenize([p.caption, p.foil], { contextLength: ctxLen });
  } catch (e) {
    if (!(e instanceof TextTooLongError)) throw e;
    const which = e.text === p.caption ? 'caption' : 'foil';
    return `${which} ${e.shown} is ${e.tokens} tokens, longer than the model's context length ${e.contextLength}; trace.js cannot cut it (caption and foil must stay aligned): shorten it in --pairs`;
  }
  try {
    negationPositions(Array.from(ids.subarray(0, ctxLen)), Array.from(ids.subarray(ctxLen)), { caption: p.caption, foil: p.foil, eotId, rule });
  } catch (e) {
    if (!(e instanceof UntraceablePairError)) throw e;
    return e.message;
  }
  return ids;
}

await runCli('trace', 'usage: node dist/trace.js --model DIR --pairs FILE.jsonl [--out DIR] [--positions differ|after|eot|all] [--min-delta X] [--beta B]',
  'Causal tracing (NAST 4.2): CTE(l, p) = (S_corr - S_lp) / (S_corr - S_foil) for every residual index l and token position p, batched per pair.', FLAGS, async (f) => {
    const modelPath = f.model as string | undefined;
    if (!modelPath) throw new UsageError('--model is required');
    if (!f.pairs) throw new UsageError('--pairs is required (a JSONL file of {"image","caption","foil"})');
    if (!((f.beta as number) > 0)) throw new UsageError(`--beta must be > 0, got ${f.beta}`);
    if (!((f['min-delta'] as number) >= 0)) throw new UsageError(`--min-delta must be >= 0, got ${f['min-delta']}`);
    const rule = f.positions as string;
    if (!isPositionRule(rule)) throw new UsageError(`--positions must be one of ${POSITION_RULES.join(', ')}, got ${JSON.stringify(rule)}`);
    if (!((f.bootstrap as number) >= 0)) throw new UsageError(`--bootstrap must be >= 0, got ${f.bootstrap}`);
    // The folder is made now: one that cannot be must not cost the trace.
    prepareOutputFolder('out', join(f.out as string, 'cte.json'));
    requireInputFiles('pairs', f.pairs as string);
    requireInputFiles('config', f.config as string | undefined);
    lockOutput(f.out as string, 'trace.js', (line) => process.stderr.write(`trace: ${line}\n`));
    let pairs = readPairs(f.pairs as string);
    if (f.limit !== undefined) pairs = pairs.slice(0, f.limit as number);
    const ctx = await nodeContext();
    const model = await loadClip(ctx, modelPath, { configPath: f.config as string | undefined, weights: 'auto' });
    const lora = f.adapter ? await loadLora(model, f.adapter as string) : null;
    const tok = loadClipTokenizer(modelPath, f.tokenizer as string | undefined);
    const imgCfg = imageConfigFor(modelPath, model.config);
    const ctxLen = model.config.text.maxPositions;
    const traced: TracedPair[] = [];
    const skipped: CteSkippedJson[] = [];
    let midLine = false; // the progress line has no newline yet
    const skip = (p: PairLine, reason: string) => {
      skipped.push({ image: p.image, caption: p.caption, foil: p.foil, reason, source: p.source });
      process.stderr.write(`${midLine ? '\n' : ''}trace: ${p.source}: skipped: ${reason}\n`);
      midLine = false;
    };
    // Pairs that cannot be traced are found before any tracing, so one bad line costs neither
    // the run nor the pairs traced before it.
    const usable: { pair: PairLine; ids: Int32Array }[] = [];
    for (const p of pairs) {
      const r = pairIds(tok, p, ctxLen, rule, tok.eotId);
      if (typeof r === 'string') skip(p, r);
      else usable.push({ pair: p, ids: r });
    }
    const noneLeft = (what: string) => {
      const first = skipped[0];
      return `${f.pairs as string}: ${what} (${skipped.length} skipped${first ? `; first: ${first.source}: ${first.reason}` : ''})`;
    };
    if (usable.length === 0) throw new Error(noneLeft('no pair can be traced'));
    const embeds = new Map<string, Tensor>();
    const t0 = Date.now();
    for (let i = 0; i < usable.length; i++) {
      const { pair: p, ids } = usable[i];
      let e = embeds.get(p.path);
      if (!e) {
        let px: Float32Array;
        try {
          px = await loadPixels([p.path], imgCfg, model.config.vision.imageSize);
        } catch (err) {
          // A missing or undecodable image spoils its pairs, not the run.
          skip(p, (err as Error).message);
          continue;
        }
        const out = noGrad(() => model.encodeImage(px, 1));
        out.pooled.dispose();
        e = out.embeds;
        embeds.set(p.path, e);
      }
      try {
        const r = await tracePair(model, e, ids.subarray(0, ctxLen), ids.subarray(ctxLen));
        const polarity = p.polarity ?? (hasNegationCue(p.caption) ? 'caption' : hasNegationCue(p.foil) ? 'foil' : undefined);
        traced.push({ image: p.image, caption: p.caption, foil: p.foil, idsCaption: r.ids, idsFoil: Array.from(ids.subarray(ctxLen, ctxLen + r.ids.length)), sCorr: r.sCorr, sFoil: r.sFoil, sLp: r.patched, polarity, source: p.source });
      } catch (err) {
        if (!(err instanceof TraceInputError)) throw err;
        skip(p, err.message);
      }
      if (!f.quiet) {
        const rate = (i + 1) / ((Date.now() - t0) / 1000);
        process.stderr.write(`\rtrace: ${i + 1}/${usable.length} pairs (${rate.toFixed(1)}/s)`);
        midLine = true;
      }
    }
    if (midLine) process.stderr.write('\n');
    for (const e of embeds.values()) e.dispose();
    if (traced.length === 0) throw new Error(noneLeft('no pair could be traced'));
    const report = buildCteReport(traced, {
      layers: model.config.text.layers, beta: f.beta as number, minDelta: f['min-delta'] as number, eotId: tok.eotId,
      positions: rule, bootstrap: { resamples: f.bootstrap as number },
    });
    // Pairs below --min-delta, skipped while the report was built (the others are reported).
    for (const s of report.skipped) process.stderr.write(`trace: ${s.source ?? s.caption}: skipped: ${s.reason}\n`);
    report.skipped.push(...skipped);
    lora?.dispose();
    model.dispose();
    const out = f.out as string;
    makeFolderSync(out);
    const first = report.pairs[0];
    const sameShape = report.pairs.every((q) => q.ids.length === first.ids.length);
    const tokens = sameShape ? first.ids.map((id) => tok.decode([id]).trim() || String(id)) : null;
    await writeFileAtomic(join(out, 'cte.json'), JSON.stringify(report, null, 1) + '\n');
    const samePositions = sameShape && report.pairs.every((q) => q.positions.join() === first.positions.join());
    await writeFileAtomic(join(out, 'cte_heatmap.svg'), heatmapSvg(report.cte_mean, tokens,
      { embeddings: report.cte_embeddings, layers: report.cte_layer, ci95: report.cte_layer_ci95, alpha: report.alpha },
      { title: `CTE(l, p), mean of ${report.pairs.length} pairs; CTE_l over the "${rule}" positions`, ...(samePositions ? { positions: first.positions } : {}) }));
    console.log(`traced ${report.pairs.length} pairs, skipped ${report.skipped.length}; wrote ${join(out, 'cte.json')} and cte_heatmap.svg`);
    const ci = report.cte_layer_ci95;
    console.log(`CTE_l, layers 1..${report.layers} (positions "${rule}"): ${report.cte_layer.map((x, l) => `${x.toFixed(3)}${ci ? ` [${ci[l][0].toFixed(3)}, ${ci[l][1].toFixed(3)}]` : ''}`).join(' ')}; embeddings ${report.cte_embeddings.toFixed(3)}`);
    console.log(`alpha: ${report.alpha.map((x) => x.toFixed(3)).join(' ')}`);
  });
