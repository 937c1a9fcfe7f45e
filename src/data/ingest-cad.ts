/**
 * CAD-Chest-style disease annotations (Zhang et al. 2023, on MIMIC-CXR): per study, each disease
 * entity has a `location`, a `level` (severity) and a `probability_score` from -3 (confidently
 * absent) to 3 (confidently present). Only the two confident ends become facts, as the NAST paper
 * does (its Appendix D keeps probability_score in {-3, 3}); scores in between are uncertain and
 * make no fact, like CheXpert's -1.
 *
 * Accepted shapes (liberal, because exports differ):
 * - `{ [studyId]: record }` or `[record, ...]` where a record has an id (`id`, `study_id`,
 *   `image_id`, `dicom_id`);
 * - a record is either the entity map itself (`{ edema: {...}, "pleural effusion": {...} }`,
 *   scalar metadata fields such as `subject_id` are ignored) or has it under `entities`,
 *   `entity`, `findings`, `diseases`, `annotations` or `labels`, as a map or as an array of
 *   annotations with a `name`/`entity`/`entity_name`;
 * - `location` and `level` may be a string, a list of strings, empty or null. Several locations
 *   become "left and right"; several levels become "first to last" ("mild to moderate").
 *
 * Every record not turned into a study, and every entity that could not be read, is reported in
 * `skipped` with the record's 1-based position and its id.
 */
import type { Existence, Fact, Study } from './facts.js';
import { IngestError, attributeWords, conditionWords, type IngestResult, type SkippedRow } from './ingest-common.js';

export interface CadOptions {
  file?: string;
  /** Patient of a record when it has no `subject_id`/`patient`/`patient_id`/`subject` field. */
  patientOf?: (id: string, record: Readonly<Record<string, unknown>>) => string | undefined;
  /** Image path(s) of a record when it has no `image`/`path`/`image_path`/`images` field. */
  imageOf?: (id: string, record: Readonly<Record<string, unknown>>) => string | readonly string[] | undefined;
}

const ID_KEYS = ['id', 'study_id', 'image_id', 'dicom_id'];
const PATIENT_KEYS = ['subject_id', 'patient', 'patient_id', 'subject'];
const IMAGE_KEYS = ['image', 'path', 'image_path', 'images'];
const CONTAINER_KEYS = ['entities', 'entity', 'findings', 'diseases', 'annotations', 'labels'];
const NAME_KEYS = ['name', 'entity', 'entity_name', 'condition'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function idText(v: unknown): string | undefined {
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function firstField(record: Obj, keys: readonly string[]): unknown {
  for (const k of keys) if (record[k] !== undefined && record[k] !== null) return record[k];
  return undefined;
}

/** Unique usable words of a string-or-list attribute, in order. */
function attributeList(v: unknown): string[] {
  const items = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const item of items) {
    const w = attributeWords(item);
    if (w !== undefined && !out.includes(w)) out.push(w);
  }
  return out;
}

function joinLocations(v: unknown): string | undefined {
  const list = attributeList(v);
  return list.length ? list.join(' and ') : undefined;
}

function joinLevels(v: unknown): string | undefined {
  const list = attributeList(v);
  if (list.length <= 1) return list[0];
  return `${list[0]} to ${list[list.length - 1]}`;
}

function score(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const x = Number(v);
    return Number.isFinite(x) ? x : undefined;
  }
  return undefined;
}

/** [name, annotation] pairs of a record, or undefined when it has nothing that looks like one. */
function entityEntries(record: Obj): Array<[string, unknown]> | undefined {
  const container = CONTAINER_KEYS.map((k) => record[k]).find((v) => isObj(v) || Array.isArray(v));
  if (Array.isArray(container)) {
    return container.map((a, k): [string, unknown] => {
      const name = isObj(a) ? firstField(a, NAME_KEYS) : undefined;
      return [typeof name === 'string' ? name : `#${k + 1}`, a];
    });
  }
  const map = isObj(container) ? container : record;
  const entries = Object.entries(map).filter(([, v]) => isObj(v));
  return entries.length ? entries : undefined;
}

export function ingestCadJson(input: string | unknown, options: CadOptions = {}): IngestResult {
  const file = options.file ?? '<cad json>';
  let json: unknown = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (e) {
      throw new IngestError(file, `not valid JSON (${(e as Error).message})`);
    }
  }

  let records: Array<[string | undefined, unknown]>;
  if (Array.isArray(json)) {
    records = json.map((r) => [isObj(r) ? idText(firstField(r, ID_KEYS)) : undefined, r]);
  } else if (isObj(json)) {
    records = Object.entries(json);
  } else {
    throw new IngestError(file, 'expected an object keyed by study id or an array of records');
  }

  const studies: Study[] = [];
  const skipped: SkippedRow[] = [];
  const seenIds = new Map<string, number>();
  const seenImages = new Map<string, number>();

  records.forEach(([id, record], k) => {
    const row = k + 1;
    const skip = (reason: string) => skipped.push({ row, reason: id === undefined ? reason : `record "${id}": ${reason}` });
    if (!isObj(record)) { skip(`expected an object, found ${Array.isArray(record) ? 'an array' : record === null ? 'null' : typeof record}`); return; }
    if (id === undefined) { skip(`no id (expected one of ${ID_KEYS.join(', ')})`); return; }
    const dup = seenIds.get(id);
    if (dup !== undefined) { skip(`duplicate id (first at record ${dup})`); return; }
    seenIds.set(id, row);

    const entries = entityEntries(record);
    if (!entries) { skip('no entity annotations (expected entity -> {location, level, probability_score})'); return; }

    const patient = idText(options.patientOf?.(id, record)) ?? idText(firstField(record, PATIENT_KEYS));
    if (patient === undefined) { skip(`no patient id (no ${PATIENT_KEYS.join('/')} field and no patientOf option)`); return; }
    const imageField = options.imageOf?.(id, record) ?? firstField(record, IMAGE_KEYS);
    const images = (typeof imageField === 'string' ? [imageField] : Array.isArray(imageField) ? imageField : [])
      .filter((p): p is string => typeof p === 'string' && p.trim() !== '')
      .map((p) => p.trim());
    if (images.length === 0) { skip(`no image (no ${IMAGE_KEYS.join('/')} field and no imageOf option)`); return; }

    const facts: Fact[] = [];
    for (const [rawName, annotation] of entries) {
      const condition = conditionWords(rawName);
      const where = `entity "${rawName}"`;
      if (!isObj(annotation)) { skip(`${where}: expected an object`); continue; }
      if (!condition) { skip(`${where}: empty name`); continue; }
      const s = score(annotation['probability_score']);
      if (s === undefined || s < -3 || s > 3) {
        skip(`${where}: probability_score ${JSON.stringify(annotation['probability_score'])} is not a number from -3 to 3`);
        continue;
      }
      if (s !== 3 && s !== -3) continue; // uncertain: no fact, as with CheXpert's -1
      const existence: Existence = s === 3 ? 'present' : 'absent';
      const earlier = facts.find((f) => f.condition === condition);
      if (earlier) {
        skip(`${where}: "${condition}" is annotated twice${earlier.existence === existence ? '' : ' with opposite existence'}; kept the first`);
        continue;
      }
      const fact: Fact = { condition, existence };
      const location = joinLocations(annotation['location']);
      const severity = joinLevels(annotation['level'] ?? annotation['severity']);
      if (location !== undefined) fact.location = location;
      if (severity !== undefined) fact.severity = severity;
      facts.push(fact);
    }

    images.forEach((image, j) => {
      const first = seenImages.get(image);
      if (first !== undefined) { skip(`image "${image}" already belongs to record ${first}`); return; }
      seenImages.set(image, row);
      const studyId = images.length === 1 ? id : `${id}#${j + 1}`;
      studies.push({ id: studyId, patient, image, facts: facts.map((f) => ({ ...f })) });
    });
  });
  return { studies, skipped };
}
