/**
 * Plain image-caption JSONL (COCO-like), one JSON object per line:
 *   {"image": PATH, "captions": [...] | "caption": "...", "positives"?: [...], "negatives"?: [...],
 *    "patient"?: ..., "id"?: ...}
 * `positives` become present facts and `negatives` absent ones; an entry is a name
 * ("red square") or `{condition|name, location?, severity?}`. The study id is `id` when given,
 * else the image path; the patient is `patient` when given (or the patientOf option), else the id,
 * so that plain photo data sets split per image.
 *
 * Several lines for the same id are merged (COCO lists captions one annotation at a time);
 * a line that contradicts an earlier one (another image or patient, or a fact with the opposite
 * existence) is skipped with the earlier line named. Blank lines are ignored; every other line
 * that is not used is reported with its 1-based line number.
 */
import type { Fact, Study } from './facts.js';
import { attributeWords, conditionWords, type IngestResult, type SkippedRow } from './ingest-common.js';

export interface JsonlOptions {
  patientOf?: (id: string, record: Readonly<Record<string, unknown>>) => string | undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class LineProblem extends Error {}

function idText(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw new LineProblem(`"${field}" must be a non-empty string or a number`);
}

function readCaptions(record: Obj): string[] {
  const { captions, caption } = record;
  if (captions !== undefined && caption !== undefined) throw new LineProblem('has both "caption" and "captions"');
  const list = captions ?? (caption === undefined ? [] : [caption]);
  const field = captions !== undefined ? 'captions' : 'caption';
  if (!Array.isArray(list)) throw new LineProblem(`"${field}" must be a list of strings`);
  return list.map((c, k) => {
    if (typeof c !== 'string' || c.trim() === '') throw new LineProblem(`"${field}"[${k}] must be a non-empty string`);
    return c.trim();
  });
}

function readFacts(record: Obj, field: 'positives' | 'negatives'): Fact[] {
  const list = record[field];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new LineProblem(`"${field}" must be a list`);
  const existence = field === 'positives' ? 'present' : 'absent';
  return list.map((entry, k) => {
    const name = typeof entry === 'string' ? entry : isObj(entry) ? entry['condition'] ?? entry['name'] : undefined;
    const condition = typeof name === 'string' ? conditionWords(name) : '';
    if (!condition) throw new LineProblem(`"${field}"[${k}] must be a name or {condition, location?, severity?}`);
    const fact: Fact = { condition, existence };
    if (isObj(entry)) {
      const location = attributeWords(entry['location']);
      const severity = attributeWords(entry['severity']);
      if (location !== undefined) fact.location = location;
      if (severity !== undefined) fact.severity = severity;
    }
    return fact;
  });
}

export function ingestJsonl(text: string, options: JsonlOptions = {}): IngestResult {
  const studies: Study[] = [];
  const skipped: SkippedRow[] = [];
  const byId = new Map<string, { study: Study; line: number; factLine: Map<string, number> }>();

  const lines = text.split(/\r\n|\n|\r/);
  lines.forEach((raw, k) => {
    const line = k + 1;
    const body = k === 0 ? raw.replace(/^\ufeff/, '') : raw;
    if (body.trim() === '') return;
    try {
      let record: unknown;
      try {
        record = JSON.parse(body);
      } catch (e) {
        throw new LineProblem(`not valid JSON (${(e as Error).message})`);
      }
      if (!isObj(record)) throw new LineProblem('expected a JSON object');
      const image = record['image'];
      if (typeof image !== 'string' || image.trim() === '') throw new LineProblem('"image" must be a non-empty string');
      const id = idText(record['id'], 'id') ?? image.trim();
      const patient = idText(options.patientOf?.(id, record), 'patient') ?? idText(record['patient'], 'patient') ?? id;
      const captions = readCaptions(record);
      const facts = [...readFacts(record, 'positives'), ...readFacts(record, 'negatives')];
      const inLine = new Map<string, Fact>();
      for (const f of facts) {
        const other = inLine.get(f.condition);
        if (other && other.existence !== f.existence) throw new LineProblem(`"${f.condition}" is in both positives and negatives`);
        if (!other) inLine.set(f.condition, f);
      }
      if (captions.length === 0 && inLine.size === 0) throw new LineProblem('no caption and no positives/negatives');

      const known = byId.get(id);
      if (!known) {
        const study: Study = { id, patient, image: image.trim(), facts: [...inLine.values()] };
        if (captions.length) study.captions = captions;
        byId.set(id, { study, line, factLine: new Map([...inLine.keys()].map((c) => [c, line])) });
        studies.push(study);
        return;
      }
      const { study, factLine } = known;
      if (study.image !== image.trim()) throw new LineProblem(`id "${id}" has image "${study.image}" on line ${known.line}`);
      if (study.patient !== patient) throw new LineProblem(`id "${id}" has patient "${study.patient}" on line ${known.line}`);
      for (const f of inLine.values()) {
        const earlier = study.facts.find((g) => g.condition === f.condition);
        if (earlier && earlier.existence !== f.existence) {
          throw new LineProblem(`"${f.condition}" is ${f.existence} here but ${earlier.existence} on line ${factLine.get(f.condition)}`);
        }
      }
      for (const f of inLine.values()) {
        if (!study.facts.some((g) => g.condition === f.condition)) { study.facts.push(f); factLine.set(f.condition, line); }
      }
      if (captions.length) study.captions = [...(study.captions ?? []), ...captions];
    } catch (e) {
      if (!(e instanceof LineProblem)) throw e;
      skipped.push({ row: line, reason: e.message });
    }
  });
  return { studies, skipped };
}
