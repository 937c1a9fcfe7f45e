/**
 * The pairs file `trace.js --pairs` reads (data.js writes one as probe.jsonl): one JSON object
 * per line, {"image": PATH, "caption": TEXT, "foil": TEXT, "polarity"?: "caption" | "foil"},
 * polarity saying which of the two carries the negation. Browser-safe: text in, lines out.
 */
import type { Polarity } from './cte.js';

export interface PairLine {
  /** "pairs.jsonl:3", for messages and skipped pairs. */
  source: string;
  /** As written in the file. */
  image: string;
  caption: string;
  foil: string;
  polarity?: Polarity;
}

/** Parses a pairs file's text, naming the line of anything malformed; `file` names it. */
export function parsePairLines(text: string, file: string): PairLine[] {
  const out: PairLine[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new Error(`${file}:${i + 1}: expected a JSON object`);
    for (const k of ['image', 'caption', 'foil']) {
      if (typeof j[k] !== 'string' || (j[k] as string).trim() === '') throw new Error(`${file}:${i + 1}: "${k}" must be a non-empty string`);
    }
    const pol = j.polarity;
    if (pol !== undefined && pol !== 'caption' && pol !== 'foil') throw new Error(`${file}:${i + 1}: "polarity" must be "caption" or "foil"`);
    out.push({ source: `${file}:${i + 1}`, image: j.image as string, caption: j.caption as string, foil: j.foil as string, polarity: pol as Polarity | undefined });
  });
  if (out.length === 0) throw new Error(`${file}: no pairs`);
  return out;
}

/** Whether text looks like a pairs file (its first line has a "foil"), not a data file to build pairs from. */
export function isPairsText(text: string): boolean {
  const first = text.split('\n').find((l) => l.trim() !== '');
  if (first === undefined) return false;
  try {
    const j = JSON.parse(first) as Record<string, unknown> | null;
    return j !== null && typeof j === 'object' && typeof j.foil === 'string';
  } catch {
    return false;
  }
}
