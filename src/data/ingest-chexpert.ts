/**
 * CheXpert-style label CSVs: CheXpert's own `train.csv`/`valid.csv` (a `Path` column holding
 * `.../patientNNNNN/studyN/viewK.jpg`) and MIMIC-CXR-JPG's `mimic-cxr-2.0.0-chexpert.csv`
 * (`subject_id,study_id`, one row per study, images found by the caller's resolver or a
 * `path`/`Path` column).
 *
 * Labels: 1 (or 1.0) = present, 0 = absent; -1 (uncertain) and blank (not mentioned) make no fact,
 * because a fact must be definite. "No Finding" is validated but never becomes a fact: it is the
 * absence of everything else, not a condition. Each study's `id` is its image path (unique per
 * image; MIMIC studies with several images give one Study per image with the same facts).
 */
import type { Fact, Study } from './facts.js';
import { parseCsv } from './csv.js';
import { IngestError, conditionWords, type IngestResult, type SkippedRow } from './ingest-common.js';

/** The 14 CheXpert label columns, in the order CheXpert writes them. */
export const CHEXPERT_LABEL_COLUMNS = [
  'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
  'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
  'Fracture', 'Support Devices',
] as const;

/** The 13 columns that are conditions, with the caption words each becomes. */
export const CHEXPERT_CONDITIONS: ReadonlyArray<{ column: string; condition: string }> = CHEXPERT_LABEL_COLUMNS
  .filter((c) => c !== 'No Finding')
  .map((column) => ({ column, condition: conditionWords(column) }));

export interface ChexpertOptions {
  /** Named in errors. */
  file?: string;
  /**
   * Image path(s) for a `subject_id,study_id` row when the CSV has no `path`/`Path` column
   * (MIMIC's label file is per study; images come from its record list). Returning nothing
   * skips the row with a reason.
   */
  resolveImage?: (subject: string, study: string, row: Readonly<Record<string, string>>) => string | readonly string[] | undefined;
}

type Label = 'present' | 'absent' | 'uncertain' | 'blank';

const COMMON_LABELS: ReadonlyMap<string, Label> = new Map([
  ['', 'blank'], ['1', 'present'], ['1.0', 'present'], ['0', 'absent'], ['0.0', 'absent'], ['-1', 'uncertain'], ['-1.0', 'uncertain'],
]);

function parseLabel(raw: string): Label | undefined {
  const common = COMMON_LABELS.get(raw);
  if (common) return common;
  const v = raw.trim();
  if (v === '') return 'blank';
  const m = /^(1|0|-1)(?:\.0+)?$/.exec(v);
  if (!m) return undefined;
  return m[1] === '1' ? 'present' : m[1] === '0' ? 'absent' : 'uncertain';
}

/** `patientNNNNN` (CheXpert) or `pNNNNNNNN` (MIMIC-CXR-JPG folders) in an image path. */
export function patientFromPath(path: string): string | undefined {
  const segments = path.split(/[\\/]+/);
  const chexpert = segments.find((s) => /^patient\d+$/i.test(s));
  if (chexpert) return chexpert;
  // MIMIC groups patients in folders p10..p19 first; the patient folder has the full id.
  return segments.find((s) => /^p\d{6,}$/.test(s));
}

export function ingestChexpertCsv(text: string, options: ChexpertOptions = {}): IngestResult {
  const file = options.file ?? '<chexpert csv>';
  const table = parseCsv(text, file);
  const col = new Map(table.header.map((h, k) => [h, k]));

  const subjectCol = col.get('subject_id');
  const studyCol = col.get('study_id');
  const pathCol = col.get('Path') ?? col.get('path');
  const byIds = subjectCol !== undefined && studyCol !== undefined;
  if (!byIds) {
    if (subjectCol !== undefined) throw new IngestError(file, 'missing column "study_id" (there is a "subject_id")');
    if (studyCol !== undefined) throw new IngestError(file, 'missing column "subject_id" (there is a "study_id")');
    if (pathCol === undefined) throw new IngestError(file, 'missing column "Path" (or "subject_id" and "study_id")');
  }
  if (byIds && pathCol === undefined && !options.resolveImage) {
    throw new IngestError(file, 'missing column "path" or "Path": with subject_id/study_id rows, give one or pass resolveImage');
  }
  for (const c of CHEXPERT_CONDITIONS) {
    if (!col.has(c.column)) throw new IngestError(file, `missing column "${c.column}"`);
  }
  const noFindingCol = col.get('No Finding');
  const conditionCols = CHEXPERT_CONDITIONS.map((c) => ({ ...c, index: col.get(c.column)! }));

  const studies: Study[] = [];
  const skipped: SkippedRow[] = [];
  const firstRowOfImage = new Map<string, number>();
  const width = table.header.length;

  for (const rec of table.records) {
    const skip = (reason: string) => skipped.push({ row: rec.line, reason });
    if (rec.error) { skip(`malformed CSV: ${rec.error}`); continue; }
    if (rec.fields.length !== width) { skip(`expected ${width} fields, found ${rec.fields.length}`); continue; }

    const facts: Fact[] = [];
    let bad: string | undefined;
    for (const c of conditionCols) {
      const raw = rec.fields[c.index]!;
      const label = parseLabel(raw);
      if (label === undefined) { bad = `column "${c.column}": label "${raw}" is not 1, 0, -1 or blank`; break; }
      if (label === 'present' || label === 'absent') facts.push({ condition: c.condition, existence: label });
    }
    if (!bad && noFindingCol !== undefined && parseLabel(rec.fields[noFindingCol]!) === undefined) {
      bad = `column "No Finding": label "${rec.fields[noFindingCol]}" is not 1, 0, -1 or blank`;
    }
    if (bad) { skip(bad); continue; }

    const path = pathCol === undefined ? '' : rec.fields[pathCol]!.trim();
    let patient: string;
    let images: readonly string[];
    if (byIds) {
      patient = rec.fields[subjectCol]!.trim();
      const study = rec.fields[studyCol]!.trim();
      if (!patient) { skip('empty subject_id'); continue; }
      if (!study) { skip('empty study_id'); continue; }
      if (path) {
        images = [path];
      } else if (options.resolveImage) {
        const row = Object.fromEntries(table.header.map((h, k) => [h, rec.fields[k]!]));
        const got = options.resolveImage(patient, study, row);
        images = (typeof got === 'string' ? [got] : got ?? []).filter((p) => p !== '');
        if (images.length === 0) { skip(`no image found for subject ${patient} study ${study}`); continue; }
      } else {
        skip('missing path'); continue;
      }
    } else {
      if (!path) { skip('missing path'); continue; }
      const p = patientFromPath(path);
      if (!p) { skip(`path "${path}" has no patientNNNNN (or pNNNNNNNN) folder`); continue; }
      patient = p;
      images = [path];
    }

    for (const image of images) {
      const first = firstRowOfImage.get(image);
      if (first !== undefined) { skip(`duplicate image "${image}" (first on row ${first})`); continue; }
      firstRowOfImage.set(image, rec.line);
      studies.push({ id: image, patient, image, facts: facts.map((f) => ({ ...f })) });
    }
  }
  return { studies, skipped };
}
