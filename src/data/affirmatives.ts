/**
 * Affirmative alternatives for absent conditions (NAST appendix A, Table 5): each states the
 * same clinical state as "no <condition>" without a negation cue, so that paired MCQs can differ
 * in polarity alone. Keys are lower-case condition names as facts write them.
 */
import { hasNegationCue } from './templates.js';

/** Condition (lower-case) -> affirmative description of its absence. */
export type AffirmativeMap = Readonly<Record<string, string>>;

/** Table 5, verbatim, with the display-name aliases of appendix A as extra keys. */
export const CHEXPERT_AFFIRMATIVES: AffirmativeMap = {
  'atelectasis': 'well-aerated expanded lungs',
  'cardiomegaly': 'normal heart size',
  'consolidation': 'clear lung parenchyma',
  'edema': 'normal pulmonary vascularity',
  'pulmonary edema': 'normal pulmonary vascularity',
  'enlarged cardiomediastinum': 'normal mediastinal contours',
  'fracture': 'intact bony structures',
  'lung lesion': 'homogeneous lung parenchyma',
  'lung opacity': 'well-aerated lung fields',
  'pleural effusion': 'sharp costophrenic angles',
  'pleural other': 'smooth pleural surfaces',
  'pleural abnormality': 'smooth pleural surfaces',
  'pneumonia': 'aerated alveoli',
  'pneumothorax': 'fully expanded lungs',
  'support devices': 'device-free chest',
};

/**
 * Names used for present conditions in MCQ options (appendix A): the CheXpert names, except
 * "pulmonary edema" for Edema and "pleural abnormality" for Pleural Other.
 */
export const CHEXPERT_DISPLAY_NAMES: Readonly<Record<string, string>> = {
  'edema': 'pulmonary edema',
  'pleural other': 'pleural abnormality',
};

export function affirmativeFor(condition: string, map: AffirmativeMap = CHEXPERT_AFFIRMATIVES): string | undefined {
  const key = condition.trim().toLowerCase();
  return Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
}

/** Throws, naming the entry, when a mapping is not usable: empty texts, upper-case keys, or a negation cue. */
export function checkAffirmatives(map: AffirmativeMap, source = 'affirmative mapping'): void {
  if (map === null || typeof map !== 'object') throw new TypeError(`${source} must be an object of condition -> text`);
  for (const [key, text] of Object.entries(map)) {
    if (key.trim() === '' || key !== key.trim().toLowerCase()) throw new TypeError(`${source}: key ${JSON.stringify(key)} must be a trimmed lower-case condition name`);
    if (typeof text !== 'string' || text.trim() === '') throw new TypeError(`${source}: "${key}" must map to a non-empty string`);
    if (hasNegationCue(text)) throw new RangeError(`${source}: "${key}" -> ${JSON.stringify(text)} contains a negation cue; an affirmative alternative must not`);
  }
}
