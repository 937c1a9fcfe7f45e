import { gunzipSync } from 'fflate';
import { byteUnicodeOrder } from './byte-encoder.js';

export const SOT_TOKEN = '<|startoftext|>';
export const EOT_TOKEN = '<|endoftext|>';
/** simple_tokenizer keeps lines 1..48894 of the OpenAI file: `merges[1:49152-256-2+1]`. */
export const OPENAI_MERGE_COUNT = 49152 - 256 - 2;

/** A BPE vocabulary: token -> id, and merges in rank order. */
export interface BpeVocab {
  encoder: Map<string, number>;
  merges: [string, string][];
}

export class TokenizerFileError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'TokenizerFileError';
  }
}

function parseMergeLine(line: string, lineNo: number, source: string): [string, string] {
  const parts = line.split(' ');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new TokenizerFileError(source, `line ${lineNo} is not a merge "a b": ${JSON.stringify(line.slice(0, 80))}`);
  }
  return [parts[0], parts[1]];
}

/** OpenAI's gzipped `bpe_simple_vocab_16e6.txt`: a header line, then merges, one per line. */
export function parseOpenAIVocab(gz: Uint8Array, source = 'bpe_simple_vocab_16e6.txt.gz'): BpeVocab {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(gunzipSync(gz));
  } catch (e) {
    throw new TokenizerFileError(source, `not a gzipped UTF-8 BPE merges file (${(e as Error).message})`);
  }
  const lines = text.split('\n');
  if (lines.length < OPENAI_MERGE_COUNT + 1) {
    throw new TokenizerFileError(source, `has ${Math.max(0, lines.length - 1)} merge lines, expected at least ${OPENAI_MERGE_COUNT}`);
  }
  const merges: [string, string][] = [];
  for (let i = 1; i <= OPENAI_MERGE_COUNT; i++) merges.push(parseMergeLine(lines[i], i + 1, source));
  const { chars } = byteUnicodeOrder();
  const tokens = [...chars, ...chars.map((c) => c + '</w>'), ...merges.map(([a, b]) => a + b), SOT_TOKEN, EOT_TOKEN];
  const encoder = new Map<string, number>();
  // Same as dict(zip(vocab, range(len(vocab)))): a repeated token keeps its last id.
  tokens.forEach((t, i) => encoder.set(t, i));
  return { encoder, merges };
}

function parseJsonObject(text: string, source: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(source, `invalid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TokenizerFileError(source, 'expected a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function encoderFromObject(obj: Record<string, unknown>, source: string): Map<string, number> {
  const encoder = new Map<string, number>();
  for (const [token, id] of Object.entries(obj)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new TokenizerFileError(source, `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`);
    }
    encoder.set(token, id);
  }
  return encoder;
}

/**
 * Hugging Face `vocab.json` + `merges.txt`. Only the first line is skipped, and only when it is
 * the '#version' header: real merges such as "# #</w>" start with '#'. Every merge is used (the
 * slow HF tokenizer caps at 48894, which is the whole file for CLIP).
 */
export function parseHFVocab(vocabJson: string, mergesTxt: string, source = 'vocab.json/merges.txt'): BpeVocab {
  const encoder = encoderFromObject(parseJsonObject(vocabJson, `${source} (vocab.json)`), `${source} (vocab.json)`);
  const lines = mergesTxt.split('\n');
  const start = lines.length > 0 && lines[0].startsWith('#version') ? 1 : 0;
  const merges: [string, string][] = [];
  for (let i = start; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line === '') continue;
    merges.push(parseMergeLine(line, i + 1, `${source} (merges.txt)`));
  }
  return { encoder, merges };
}

/** Hugging Face fast-tokenizer `tokenizer.json` (model.type BPE): only its vocab and merges. */
export function parseHFTokenizerJson(json: string, source = 'tokenizer.json'): BpeVocab {
  const root = parseJsonObject(json, source);
  const model = root.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object' || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
    throw new TokenizerFileError(source, 'expected model.vocab and model.merges (a BPE tokenizer)');
  }
  if (model.type !== undefined && model.type !== 'BPE') {
    throw new TokenizerFileError(source, `model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
  }
  const encoder = encoderFromObject(model.vocab as Record<string, unknown>, source);
  const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
    // Older files store "a b", newer ones ["a", "b"].
    if (typeof m === 'string') return parseMergeLine(m, i + 1, `${source} model.merges`);
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    throw new TokenizerFileError(source, `model.merges[${i}] is not a pair of tokens`);
  });
  return { encoder, merges };
}
