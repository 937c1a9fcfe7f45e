/**
 * The source formats `data.js build --from FILE` reads, for text a caller already holds (a page's
 * picked or typed file): CheXpert-style CSV, CAD-Chest-style JSON and image-caption JSONL, told
 * apart by the file's extension as data.js does, or by the text itself when it has no name.
 * Browser-safe.
 */
import { ingestCadJson } from './ingest-cad.js';
import { ingestChexpertCsv } from './ingest-chexpert.js';
import type { IngestResult } from './ingest-common.js';
import { ingestJsonl } from './ingest-jsonl.js';

export type SourceFormat = 'chexpert' | 'cad' | 'jsonl';
export const SOURCE_FORMATS: readonly SourceFormat[] = ['chexpert', 'cad', 'jsonl'];

/** The format a file name implies (.csv, .json, .jsonl / .ndjson), null for any other extension. */
export function sourceFormatOf(name: string): SourceFormat | null {
  const dot = name.lastIndexOf('.');
  const ext = dot > Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) ? name.slice(dot).toLowerCase() : '';
  if (ext === '.csv') return 'chexpert';
  if (ext === '.json') return 'cad';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return null;
}

/**
 * The format of text without a name: JSONL when its first line is a whole JSON object, CAD JSON
 * when it starts with "[" or "{" otherwise (one document), CSV when it starts with anything else.
 */
export function guessSourceFormat(text: string): SourceFormat {
  const body = text.replace(/^\uFEFF/, '').trimStart();
  if (body.startsWith('[')) return 'cad';
  if (!body.startsWith('{')) return 'chexpert';
  const first = body.split(/\r?\n/, 1)[0].trim();
  try {
    const v: unknown = JSON.parse(first);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return 'jsonl';
  } catch {
    // a JSON document over several lines
  }
  return 'cad';
}

/** Studies from text in one of the source formats; `file` names it in messages. */
export function ingestText(text: string, format: SourceFormat, file: string): IngestResult {
  switch (format) {
    case 'chexpert': return ingestChexpertCsv(text, { file });
    case 'cad': return ingestCadJson(text, { file });
    case 'jsonl': return ingestJsonl(text);
  }
}
