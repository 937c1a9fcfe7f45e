/**
 * The benchmark files the papers publish, read as they are (browser-safe; the caller reads the
 * text and resolves image paths):
 *   NegBench MCQ CSV        image_path, correct_answer, caption_0..caption_3, correct_answer_template
 *                           (positive | negative | hybrid); the binary variant has caption_0, caption_1
 *                           and no template
 *   NegBench retrieval CSV  filepath, captions: a Python list literal of strings (parsed, never evaluated)
 *   NAST MCQ JSON           an array (or JSON lines) of objects with the image, negation_mcq_choice_1..4,
 *                           affirmative_mcq_choice_1..4 and correct_answer (the choice's number 1..4, or
 *                           its text): each question asked twice, negated and affirmative-equivalent
 * A row with a missing or malformed field is kept out with its line number and the reason, never
 * dropped silently; the caller decides whether that is fatal (--strict).
 */
import { parseCsv } from './csv.js';

export interface RowProblem {
  line: number;
  reason: string;
}

export type NegBenchTemplateName = 'positive' | 'negative' | 'hybrid';

export interface NegBenchMcqRow {
  line: number;
  image: string;
  options: string[];
  answer: number;
  /** null for the binary variant, which has none. */
  template: NegBenchTemplateName | null;
}

export interface NegBenchRetrievalRow {
  line: number;
  image: string;
  captions: string[];
}

export interface NastMcqRow {
  line: number;
  image: string;
  negated: { options: string[]; answer: number };
  affirmative: { options: string[]; answer: number };
}

export interface Parsed<T> {
  rows: T[];
  problems: RowProblem[];
}

export class BenchmarkFileError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'BenchmarkFileError';
  }
}

function columns(header: string[], file: string, need: string[], alternatives: Record<string, string[]> = {}): Record<string, number> {
  const at: Record<string, number> = {};
  for (const name of need) {
    const options = [name, ...(alternatives[name] ?? [])];
    const i = header.findIndex((h) => options.includes(h));
    if (i < 0) throw new BenchmarkFileError(file, `no "${name}" column (columns: ${header.join(', ')})`);
    at[name] = i;
  }
  return at;
}

const TEMPLATES: readonly NegBenchTemplateName[] = ['positive', 'negative', 'hybrid'];

/** A NegBench MCQ CSV (four options with templates, or the binary two-option variant). */
export function parseNegBenchMcqCsv(text: string, file: string): Parsed<NegBenchMcqRow> {
  const table = parseCsv(text, file);
  const binary = !table.header.includes('caption_2');
  const optionNames = binary ? ['caption_0', 'caption_1'] : ['caption_0', 'caption_1', 'caption_2', 'caption_3'];
  const col = columns(table.header, file, ['image_path', 'correct_answer', ...optionNames, ...(binary ? [] : ['correct_answer_template'])], { image_path: ['filepath', 'image'] });
  const rows: NegBenchMcqRow[] = [];
  const problems: RowProblem[] = [];
  for (const r of table.records) {
    const bad = (reason: string) => problems.push({ line: r.line, reason });
    if (r.error) { bad(r.error); continue; }
    const get = (name: string) => (r.fields[col[name]] ?? '').trim();
    const image = get('image_path');
    if (!image) { bad('image_path is empty'); continue; }
    const options = optionNames.map((n) => r.fields[col[n]] ?? '');
    const empty = options.findIndex((o) => o.trim() === '');
    if (empty >= 0) { bad(`${optionNames[empty]} is empty`); continue; }
    const answerText = get('correct_answer');
    // Number('') and Number('  ') are 0: a blank answer would silently become option 0.
    if (answerText === '') { bad('correct_answer is empty'); continue; }
    const answer = Number(answerText);
    if (!Number.isInteger(answer) || answer < 0 || answer >= options.length) { bad(`correct_answer ${JSON.stringify(get('correct_answer'))} is not an option index 0..${options.length - 1}`); continue; }
    let template: NegBenchTemplateName | null = null;
    if (!binary) {
      const t = get('correct_answer_template').toLowerCase();
      if (!(TEMPLATES as readonly string[]).includes(t)) { bad(`correct_answer_template ${JSON.stringify(t)} is not positive, negative or hybrid`); continue; }
      template = t as NegBenchTemplateName;
    }
    rows.push({ line: r.line, image, options, answer, template });
  }
  return { rows, problems };
}

/**
 * A Python list literal of strings, as pandas writes a list column: `['a', "it's"]`. Quotes,
 * backslash escapes (\\, \', \", \n, \t, \xNN, \uNNNN) and whitespace are read; anything else (a
 * name, a number, a call) is an error, never evaluated.
 */
export function parsePyStringList(s: string): string[] {
  let p = 0;
  const ws = () => { while (p < s.length && /\s/.test(s[p])) p++; };
  const fail = (why: string): never => { throw new Error(`${why} at character ${p} of ${JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}...` : s)}`); };
  ws();
  if (s[p] !== '[') fail('expected a list starting with [');
  p++;
  const out: string[] = [];
  ws();
  if (s[p] === ']') { p++; ws(); if (p !== s.length) fail('text after the list'); return out; }
  for (;;) {
    ws();
    const q = s[p];
    if (q !== "'" && q !== '"') fail('expected a quoted string');
    p++;
    let v = '';
    for (;;) {
      if (p >= s.length) fail('a string is not closed');
      const c = s[p++];
      if (c === q) break;
      if (c !== '\\') { v += c; continue; }
      const e = s[p++];
      const hex = (n: number) => {
        const h = s.slice(p, p + n);
        if (!/^[0-9a-fA-F]+$/.test(h) || h.length !== n) fail(`a bad \\${e} escape`);
        p += n;
        return String.fromCodePoint(parseInt(h, 16));
      };
      switch (e) {
        case '\\': case "'": case '"': v += e; break;
        case 'n': v += '\n'; break;
        case 't': v += '\t'; break;
        case 'r': v += '\r'; break;
        case 'x': v += hex(2); break;
        case 'u': v += hex(4); break;
        case 'U': v += hex(8); break;
        default: v += `\\${e ?? ''}`;
      }
    }
    out.push(v);
    ws();
    if (s[p] === ',') { p++; ws(); if (s[p] === ']') { p++; break; } continue; }
    if (s[p] === ']') { p++; break; }
    fail('expected , or ]');
  }
  ws();
  if (p !== s.length) fail('text after the list');
  return out;
}

/** A NegBench retrieval CSV: one image per row with its list of captions. */
export function parseNegBenchRetrievalCsv(text: string, file: string): Parsed<NegBenchRetrievalRow> {
  const table = parseCsv(text, file);
  const col = columns(table.header, file, ['filepath', 'captions'], { filepath: ['image_path', 'image'] });
  const rows: NegBenchRetrievalRow[] = [];
  const problems: RowProblem[] = [];
  for (const r of table.records) {
    if (r.error) { problems.push({ line: r.line, reason: r.error }); continue; }
    const image = (r.fields[col.filepath] ?? '').trim();
    if (!image) { problems.push({ line: r.line, reason: 'filepath is empty' }); continue; }
    let captions: string[];
    try {
      captions = parsePyStringList(r.fields[col.captions] ?? '');
    } catch (e) {
      problems.push({ line: r.line, reason: `captions: ${(e as Error).message}` });
      continue;
    }
    if (captions.length === 0 || captions.some((c) => c.trim() === '')) { problems.push({ line: r.line, reason: 'captions has no caption, or an empty one' }); continue; }
    rows.push({ line: r.line, image, captions });
  }
  return { rows, problems };
}

const IMAGE_KEYS = ['image', 'image_path', 'filepath', 'img_path', 'path'];

/** NAST's paired MCQ file: a JSON array, or one JSON object per line. */
export function parseNastMcqJson(text: string, file: string): Parsed<NastMcqRow> {
  let items: { value: unknown; line: number }[];
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (e) {
      throw new BenchmarkFileError(file, `not valid JSON (${(e as Error).message})`);
    }
    items = (arr as unknown[]).map((value, i) => ({ value, line: i + 1 }));
  } else {
    items = [];
    text.split('\n').forEach((l, i) => {
      if (l.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(l);
      } catch (e) {
        value = new Error(`invalid JSON (${(e as Error).message})`);
      }
      items.push({ value, line: i + 1 });
    });
  }
  const rows: NastMcqRow[] = [];
  const problems: RowProblem[] = [];
  for (const { value, line } of items) {
    if (value instanceof Error) { problems.push({ line, reason: value.message }); continue; }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) { problems.push({ line, reason: 'not an object' }); continue; }
    const o = value as Record<string, unknown>;
    const imageKey = IMAGE_KEYS.find((k) => typeof o[k] === 'string' && (o[k] as string).trim() !== '');
    if (!imageKey) { problems.push({ line, reason: `no image path (one of ${IMAGE_KEYS.join(', ')})` }); continue; }
    const choices = (prefix: string) => [1, 2, 3, 4].map((i) => o[`${prefix}_mcq_choice_${i}`]);
    const neg = choices('negation');
    const aff = choices('affirmative');
    const missing = [...neg.map((v, i) => [v, `negation_mcq_choice_${i + 1}`] as const), ...aff.map((v, i) => [v, `affirmative_mcq_choice_${i + 1}`] as const)].find(([v]) => typeof v !== 'string' || v.trim() === '');
    if (missing) { problems.push({ line, reason: `${missing[1]} is missing or empty` }); continue; }
    const answer = answerIndex(o.correct_answer, neg as string[], aff as string[]);
    if (answer === null) { problems.push({ line, reason: `correct_answer ${JSON.stringify(o.correct_answer)} names no choice (1..4, or a choice's text)` }); continue; }
    rows.push({ line, image: (o[imageKey] as string).trim(), negated: { options: neg as string[], answer }, affirmative: { options: aff as string[], answer } });
  }
  return { rows, problems };
}

/** The 0-based choice: a number 1..4 (or "choice_2"-like text), or a choice's own text in either set. */
function answerIndex(v: unknown, neg: string[], aff: string[]): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 && v <= 4 ? v - 1 : null;
  if (typeof v !== 'string') return null;
  const m = /^(?:\D*_)?([1-4])$/.exec(v.trim());
  if (m) return Number(m[1]) - 1;
  const i = neg.indexOf(v) >= 0 ? neg.indexOf(v) : aff.indexOf(v);
  return i >= 0 ? i : null;
}
