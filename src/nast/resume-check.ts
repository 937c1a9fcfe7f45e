/**
 * What --resume may and may not change, compared against the settings a checkpoint recorded.
 * Browser-safe (plain data in, messages out).
 */

export type RunSettings = Record<string, string | number | boolean>;

/** The adapter's shape comes from the checkpoint: these matter only when given. */
const ADAPTER_SHAPE = ['rank', 'alpha', 'targets'];
/** The batches drawn depend on these, given or defaulted. */
const DATA_ORDER = ['recipe', 'full-text', 'seed', 'batch-size', 'clip-batch'];
/**
 * What the run trains and on what: a change would continue someone else's run. Each with the
 * flags that set it, for the message.
 */
const IDENTITY: Record<string, { what: string; flags: string }> = {
  model: { what: 'base model', flags: '--model / --config' },
  data: { what: 'training data', flags: '--data' },
  scales: { what: 'per-layer scales', flags: '--cte / --uniform / --beta' },
};
/** Recorded to name things in messages, never compared. */
const INFORMATIONAL = ['model_path', 'data_path'];

export interface ResumeVerdict {
  /** Changes the checkpoint cannot honour: each a whole message. */
  errors: string[];
  /** Changes it can (a new learning rate or lambda from here on): each a note. */
  notes: string[];
}

/**
 * Compares `now` (this invocation's settings) with `was` (the checkpoint's). `given(flag)` says
 * whether the user passed the flag. Keys the checkpoint did not record (older checkpoints) are
 * not compared.
 */
export function compareResume(was: RunSettings, now: RunSettings, given: (flag: string) => boolean, where: string): ResumeVerdict {
  const errors: string[] = [];
  const notes: string[] = [];
  for (const [k, before] of Object.entries(was)) {
    const after = now[k];
    if (after === undefined || after === before || INFORMATIONAL.includes(k)) continue;
    const id = IDENTITY[k];
    if (id) {
      // The path beside the digest where one was recorded (model_path, data_path).
      const show = (v: unknown, p: unknown) => `${p !== undefined ? `${p} ` : ''}(${v})`;
      errors.push(`--resume: the ${id.what} changed: now ${show(after, now[`${k}_path`])}, the checkpoint's run had ${show(before, was[`${k}_path`])} (${where}); it cannot change mid-run: pass the ${id.flags} the run had, or start afresh in another --out`);
      continue;
    }
    if (ADAPTER_SHAPE.includes(k) && !given(k)) continue;
    if (ADAPTER_SHAPE.includes(k) || DATA_ORDER.includes(k)) {
      errors.push(`--resume: --${k} ${after} differs from the checkpoint's ${before} (${where}); it cannot change mid-run${given(k) ? '' : ` (pass --${k} ${before} as the run did)`}`);
      continue;
    }
    notes.push(`--resume: --${k} is now ${after} (the checkpoint's run had ${before})`);
  }
  return { errors, notes };
}

/** The lines of a metrics.jsonl file up to and including `step` (those a resumed run will not write again). */
export function metricsUpTo(text: string, step: number): string {
  const keep: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let s: unknown;
    try {
      s = (JSON.parse(line) as { step?: unknown }).step;
    } catch {
      continue; // a line cut short by the kill that stopped the run
    }
    if (typeof s === 'number' && s <= step) keep.push(line);
  }
  return keep.length ? `${keep.join('\n')}\n` : '';
}
