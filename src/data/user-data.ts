/**
 * A user's own data as a page gets it: text in one of the formats `data.js build --from` reads
 * (image-caption JSONL, CheXpert-style CSV, CAD-Chest-style JSON), picked as a file or typed,
 * and the images it names, picked as files or as a folder. Browser-safe.
 */
import { fileDomain } from './build-domains.js';
import type { Domain } from './build-records.js';
import type { Study } from './facts.js';
import { guessSourceFormat, ingestText, sourceFormatOf, type SourceFormat } from './ingest-text.js';

/** A picked image (a browser File, or anything) and the path it was picked under (a folder pick keeps the folders). */
export interface PickedImage<F = unknown> {
  path: string;
  file: F;
}

export interface UserData {
  /** "photos.jsonl", "typed JSONL". */
  name: string;
  format: SourceFormat;
  studies: Study[];
  /** Lines or rows the ingester did not use, with its reason. */
  skipped: { row: number; reason: string }[];
  domain: Domain;
}

const FORMAT_NAMES: Record<SourceFormat, string> = { jsonl: 'JSONL', chexpert: 'CheXpert-style CSV', cad: 'CAD-Chest-style JSON' };

/** Studies from the user's text, by the file's extension (as data.js) or, typed, by its content. */
export function readUserData(text: string, fileName: string | null): UserData {
  let format: SourceFormat;
  if (fileName !== null) {
    const f = sourceFormatOf(fileName);
    if (!f) throw new Error(`${fileName}: cannot tell the format from its name; use .jsonl (image-caption lines), .csv (CheXpert-style labels) or .json (CAD-Chest-style)`);
    format = f;
  } else {
    if (text.trim() === '') throw new Error('your data: the text box is empty; type one JSONL line per image, or pick a file');
    format = guessSourceFormat(text);
  }
  const name = fileName ?? `typed ${FORMAT_NAMES[format]}`;
  const { studies, skipped } = ingestText(text, format, name);
  if (studies.length === 0) {
    const unit = format === 'chexpert' ? 'row' : format === 'jsonl' ? 'line' : 'record';
    throw new Error(`${name}: no usable ${unit}${skipped.length ? ` (${skipped.slice(0, 3).map((s) => `${unit} ${s.row}: ${s.reason}`).join('; ')})` : ''}`);
  }
  return { name, format, studies, skipped, domain: fileDomain(format, studies, null) };
}

const segments = (p: string) => p.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.' && s !== '..');

/**
 * The picked file of each study's image. A file matches when one path ends with the other,
 * compared by folders (a file picked alone matches by its name; a folder pick tells apart images
 * of the same name in different folders). An image with no match, a tie between files, and one
 * file standing for two different paths are errors naming them.
 */
export function matchImages<F>(studies: readonly { image: string }[], picked: readonly PickedImage<F>[], where: string): F[] {
  const byName = new Map<string, { parts: string[]; file: PickedImage<F> }[]>();
  for (const p of picked) {
    const parts = segments(p.path);
    const base = parts[parts.length - 1];
    byName.set(base, [...(byName.get(base) ?? []), { parts, file: p }]);
  }
  const missing: string[] = [];
  const out: F[] = [];
  const usedBy = new Map<PickedImage<F>, string>();
  for (const s of studies) {
    const want = segments(s.image);
    let best: { n: number; file: PickedImage<F> }[] = [];
    for (const c of byName.get(want[want.length - 1]) ?? []) {
      let n = 0;
      while (n < want.length && n < c.parts.length && want[want.length - 1 - n] === c.parts[c.parts.length - 1 - n]) n++;
      // One path must be a tail of the other: a/x.png and b/x.png are different images.
      if (n < Math.min(want.length, c.parts.length)) continue;
      if (best.length === 0 || n > best[0].n) best = [{ n, file: c.file }];
      else if (n === best[0].n) best.push({ n, file: c.file });
    }
    if (best.length === 0) {
      missing.push(s.image);
      continue;
    }
    if (best.length > 1) throw new Error(`${where}: ${s.image} matches ${best.length} picked images (${best.map((b) => b.file.path).join(', ')}); pick the folder so that their paths tell them apart`);
    const f = best[0].file;
    const other = usedBy.get(f);
    if (other !== undefined && other !== s.image) {
      throw new Error(`${where}: ${other} and ${s.image} both match the picked image ${f.path}; pick the folder so that their paths tell them apart`);
    }
    usedBy.set(f, s.image);
    out.push(f.file);
  }
  if (missing.length) {
    throw new Error(`${where}: ${missing.length} image${missing.length === 1 ? '' : 's'} not among the picked images: ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''}`);
  }
  return out;
}

/** One JSONL line per picked image not yet named in `text`, to fill in: the typed format's start. */
export function templateLines(text: string, picked: readonly { path: string }[]): string {
  const named = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    try {
      const v = JSON.parse(line) as { image?: unknown };
      if (typeof v?.image === 'string') named.add(segments(v.image).join('/'));
    } catch {
      // not a JSON line: nothing named
    }
  }
  return picked
    .filter((p) => !named.has(segments(p.path).join('/')))
    .map((p) => JSON.stringify({ image: p.path, caption: '', positives: [], negatives: [] }))
    .join('\n');
}
