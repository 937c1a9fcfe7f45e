/**
 * Training examples as JSON lines for another trainer (interop/torch/nast_torchrun.py): one line
 * per example of `readExamples`, in its order, with the image path resolved and, when a
 * tokenizer is given, the token ids our engine would feed, so the other side needs no tokenizer
 * of ours (the tiny models use a word tokenizer Hugging Face does not know). Browser-safe.
 *
 * Line: {"image", "caption", "choices", "answer", "caption_ids"?, "choice_ids"?}; ids run from
 * the start token to the end token inclusive (no padding: the text tower is causal and pools at
 * the end token, so whatever pads a row after it does not matter).
 *
 * `drawOrder` lists the batches `train.js` draws (ExampleBatcher), as example line numbers, so a
 * port of the batcher can be checked against it, or a run can replay train.js's batches exactly.
 */
import { ExampleBatcher, type Example } from './train-data.js';

export const TRAIN_JSONL_FORMAT = 'negclip-train-jsonl';
export const TRAIN_JSONL_VERSION = 1;

export interface JsonlTokenizer {
  /** Row-major [texts.length, contextLength] ids: start, ids, end, then padding. */
  tokenize(texts: readonly string[]): Int32Array;
  readonly eotId: number;
  readonly contextLength: number;
}

/** A tokenised row up to and including its end token. */
function idsToEnd(rows: Int32Array, i: number, t: number, eot: number, what: string): number[] {
  const row = rows.subarray(i * t, (i + 1) * t);
  const end = row.indexOf(eot);
  if (end < 0) throw new Error(`${what}: no end-of-text token (id ${eot}) after tokenising`);
  return Array.from(row.subarray(0, end + 1));
}

/** The JSONL text (one line per example, newline-terminated). */
export function trainJsonl(examples: readonly Example[], resolveImage: (image: string) => string, tok?: JsonlTokenizer): string {
  const lines: string[] = [];
  examples.forEach((e, n) => {
    const line: Record<string, unknown> = { image: resolveImage(e.image), caption: e.caption, choices: e.choices, answer: e.answer };
    if (tok) {
      const t = tok.contextLength;
      line.caption_ids = idsToEnd(tok.tokenize([e.caption]), 0, t, tok.eotId, `example ${n} caption`);
      const rows = tok.tokenize(e.choices);
      line.choice_ids = e.choices.map((_, k) => idsToEnd(rows, k, t, tok.eotId, `example ${n} choice ${k}`));
    }
    lines.push(JSON.stringify(line));
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}

export interface DrawnBatch {
  /** 1-based optimizer step. */
  step: number;
  epoch: number;
  /** Line numbers (0-based) of the batch's examples, in the batch's order. */
  examples: number[];
}

/**
 * train.js's batches for this batch size and seed, one per call (1-based steps): order.jsonl
 * can hold far more batches than memory, so they are drawn as they are written. A batch size
 * the examples cannot fill throws here, before the first draw.
 */
export function orderDrawer(examples: readonly Example[], batchSize: number, seed: number): () => DrawnBatch {
  const line = new Map<Example, number>();
  examples.forEach((e, i) => line.set(e, i));
  const batcher = new ExampleBatcher(examples, batchSize, { step: 0, epoch: 0, cursor: 0, seed });
  let step = 0;
  return () => {
    const picked = batcher.next();
    return { step: ++step, epoch: batcher.state.epoch, examples: picked.map((p) => line.get(p.example)!) };
  };
}

/** The first `steps` batches train.js draws with this batch size and seed. */
export function drawOrder(examples: readonly Example[], batchSize: number, seed: number, steps: number): DrawnBatch[] {
  const next = orderDrawer(examples, batchSize, seed);
  return Array.from({ length: steps }, next);
}
