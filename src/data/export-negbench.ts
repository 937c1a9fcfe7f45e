/**
 * Built records written in NegBench's file formats, so that our data runs in their code (and
 * through eval.js --negbench-*): the MCQ CSV (image_path, correct_answer, caption_0..3,
 * correct_answer_template) and retrieval CSVs (filepath, captions as a Python list literal).
 * Browser-safe: records in, CSV text out; the inverse of negbench-files.ts.
 */
import type { NegBenchMcq } from './mcq.js';

const TEMPLATE_NAME = { affirmation: 'positive', negation: 'negative', hybrid: 'hybrid' } as const;

/** A CSV field, quoted when it needs to be (RFC 4180). */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvLine(fields: readonly (string | number)[]): string {
  return fields.map(csvField).join(',');
}

/** A Python list literal of strings, as `repr` writes it (single quotes unless the text has one). */
export function pyStringList(items: readonly string[]): string {
  const repr = (s: string) => {
    const q = s.includes("'") && !s.includes('"') ? '"' : "'";
    let out = '';
    for (const ch of s) {
      if (ch === '\\') out += '\\\\';
      else if (ch === q) out += `\\${q}`;
      else if (ch === '\n') out += '\\n';
      else if (ch === '\r') out += '\\r';
      else if (ch === '\t') out += '\\t';
      else out += ch;
    }
    return `${q}${out}${q}`;
  };
  return `[${items.map(repr).join(', ')}]`;
}

/** NegBench's MCQ CSV for four-option MCQs; `imagePath` maps a record's image to the path written. */
export function negBenchMcqCsv(mcqs: readonly NegBenchMcq[], imagePath: (image: string) => string): string {
  const lines = [csvLine(['image_path', 'correct_answer', 'caption_0', 'caption_1', 'caption_2', 'caption_3', 'correct_answer_template'])];
  for (const m of mcqs) {
    if (m.options.length !== 4) throw new RangeError(`MCQ of ${m.studyId}: ${m.options.length} options; NegBench's MCQ CSV has four`);
    lines.push(csvLine([imagePath(m.image), m.answer, ...m.options, TEMPLATE_NAME[m.answerType]]));
  }
  return `${lines.join('\n')}\n`;
}

/** NegBench's retrieval CSV: one row per image with every caption given for it, in order. */
export function negBenchRetrievalCsv(captions: readonly { image: string; caption: string }[], imagePath: (image: string) => string): string {
  const byImage = new Map<string, string[]>();
  for (const c of captions) byImage.set(c.image, [...(byImage.get(c.image) ?? []), c.caption]);
  const lines = [csvLine(['filepath', 'captions'])];
  for (const [image, caps] of byImage) lines.push(csvLine([imagePath(image), pyStringList(caps)]));
  return `${lines.join('\n')}\n`;
}
