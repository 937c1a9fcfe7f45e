/**
 * What every ingest returns, and the small normalisations they share. Ingest modules take text or
 * parsed JSON, never file paths, so they run unchanged in the browser; reading files is the
 * caller's job.
 */
import type { Study } from './facts.js';

/** A row, line or record that did not become a study, and why. Nothing is dropped without one. */
export interface SkippedRow {
  /** 1-based position in the source: file line for CSV/JSONL, record position for JSON. */
  row: number;
  reason: string;
}

export interface IngestResult {
  studies: Study[];
  skipped: SkippedRow[];
}

/** A problem with the whole input (missing column, not JSON at all), as opposed to one bad row. */
export class IngestError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'IngestError';
  }
}

/** Lower-case, single-spaced caption words: "Pleural_Effusion " -> "pleural effusion". */
export function conditionWords(name: string): string {
  return name.replace(/[_\s]+/g, ' ').trim().toLowerCase();
}

/** Values annotators use for "not given"; they mean the attribute is unknown, not a value. */
const UNKNOWN_WORDS = new Set(['', 'none', 'null', 'nan', 'n/a', 'na', 'unknown', 'unspecified']);

/** A location or severity word, or undefined when the annotation says nothing usable. */
export function attributeWords(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const words = conditionWords(value);
  return UNKNOWN_WORDS.has(words) ? undefined : words;
}
