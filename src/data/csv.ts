/**
 * A small RFC 4180 CSV parser: comma-separated fields, records ended by CRLF (LF or a lone CR are
 * accepted too), fields optionally quoted with `"`, a quote inside a quoted field written `""`,
 * and commas and line breaks allowed inside quotes.
 *
 * It is liberal where that is harmless: a leading UTF-8 byte-order mark is dropped, empty lines
 * are ignored, and a `"` inside an unquoted field is kept as a literal character. It does not
 * throw on a malformed record: the record carries an `error` so the caller can report it by line
 * and carry on (text after a closing quote, or a quote never closed, which swallows the rest).
 */

export interface CsvRecord {
  /** 1-based line of the file where the record starts. */
  line: number;
  fields: string[];
  /** Set when the record is malformed; `fields` then holds what could be read. */
  error?: string;
}

export interface CsvTable {
  /** Header names, trimmed. */
  header: string[];
  headerLine: number;
  /** The data records after the header. */
  records: CsvRecord[];
}

export class CsvError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'CsvError';
  }
}

const QUOTE = 34, COMMA = 44, LF = 10, CR = 13;

/** Every record of the text, in order, header included. */
export function parseCsvRecords(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;

  while (i < n) {
    const startLine = line;
    // An empty line is not a record: skip it without producing a one-empty-field row.
    const c0 = text.charCodeAt(i);
    if (c0 === LF || c0 === CR) {
      i += c0 === CR && text.charCodeAt(i + 1) === LF ? 2 : 1;
      line++;
      continue;
    }

    const fields: string[] = [];
    let error: string | undefined;
    let endOfRecord = false;
    while (!endOfRecord) {
      let value: string;
      if (text.charCodeAt(i) === QUOTE) {
        const openLine = line;
        let parts = '';
        let j = i + 1;
        let closed = false;
        while (j < n) {
          const q = text.indexOf('"', j);
          const chunk = q < 0 ? text.slice(j) : text.slice(j, q);
          line += countLineBreaks(chunk);
          parts += chunk;
          if (q < 0) { j = n; break; }
          if (text.charCodeAt(q + 1) === QUOTE) { parts += '"'; j = q + 2; continue; }
          j = q + 1;
          closed = true;
          break;
        }
        if (!closed) error ??= `quoted field opened on line ${openLine} is never closed`;
        value = parts;
        i = j;
        // After the closing quote only a separator or the end of the record may follow.
        const next = text.charCodeAt(i);
        if (closed && i < n && next !== COMMA && next !== LF && next !== CR) {
          error ??= `unexpected text after the closing quote of field ${fields.length + 1}`;
          const stop = nextSeparator(text, i);
          value += text.slice(i, stop);
          i = stop;
        }
      } else {
        const stop = nextSeparator(text, i);
        value = text.slice(i, stop);
        i = stop;
      }
      fields.push(value);

      const c = i < n ? text.charCodeAt(i) : -1;
      if (c === COMMA) {
        i++;
        if (i >= n) { fields.push(''); endOfRecord = true; }
      } else {
        if (c === CR) i += text.charCodeAt(i + 1) === LF ? 2 : 1;
        else if (c === LF) i++;
        if (c === CR || c === LF) line++;
        endOfRecord = true;
      }
    }
    records.push(error === undefined ? { line: startLine, fields } : { line: startLine, fields, error });
  }
  return records;
}

/** Header plus data records. Throws CsvError (naming the file) when there is no usable header. */
export function parseCsv(text: string, file = '<csv>'): CsvTable {
  const all = parseCsvRecords(text);
  const head = all[0];
  if (!head) throw new CsvError(file, 1, 'no header row (the file is empty)');
  if (head.error) throw new CsvError(file, head.line, `malformed header: ${head.error}`);
  const header = head.fields.map((h) => h.trim());
  const seen = new Map<string, number>();
  header.forEach((h, k) => {
    const first = seen.get(h);
    if (first !== undefined && h !== '') {
      throw new CsvError(file, head.line, `column "${h}" appears twice (fields ${first + 1} and ${k + 1})`);
    }
    seen.set(h, k);
  });
  return { header, headerLine: head.line, records: all.slice(1) };
}

function nextSeparator(text: string, from: number): number {
  for (let k = from; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c === COMMA || c === LF || c === CR) return k;
  }
  return text.length;
}

/** Line breaks in a chunk, counting CRLF once, so line numbers match what an editor shows. */
function countLineBreaks(s: string): number {
  let count = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === LF) count++;
    else if (c === CR && s.charCodeAt(k + 1) !== LF) count++;
  }
  return count;
}
