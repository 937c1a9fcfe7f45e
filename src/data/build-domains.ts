/**
 * The builder settings (Domain) of each source: radiology reports (CheXpert, CAD-Chest),
 * everyday image-caption pairs (JSONL) and the miniature world. Browser-safe.
 */
import {
  CHEST_NEGATION_VOCAB, CHEXPERT_AFFIRMATIVES, CHEXPERT_DISPLAY_NAMES, GENERIC_TEMPLATES, RADIOLOGY_TEMPLATES,
  conceptVocabulary, type AffirmativeMap, type NegationVocab,
} from './builders.js';
import type { Fact, Study } from './facts.js';
import { DEFAULT_SPEC, worldAffirmativeAlternatives, worldConditions } from './world/index.js';
import type { Domain } from './build-records.js';

export const GENERIC_QUESTION = 'Which of the following best describes the image?';

/** Places and sizes of everyday scenes: sides, rows, quadrants; small and large. */
export const GENERIC_NEGATION_VOCAB: NegationVocab = {
  locations: [['left', 'right'], ['top', 'bottom'], ['top left', 'top right', 'bottom left', 'bottom right']],
  severities: [['small', 'large']],
};

/**
 * The miniature world (DEFAULT_SPEC): its own affirmative alternatives unless `affirmatives` are
 * given; paired MCQs are built from `pairedFacts` (the scene properties of a study).
 */
export function worldDomain(affirmatives: AffirmativeMap | null, pairedFacts: (study: Study) => Fact[] | undefined): Domain {
  const sideGroups = DEFAULT_SPEC.quadrants ? [['top left', 'top right', 'bottom left', 'bottom right']] : [['left', 'right']];
  return {
    templates: GENERIC_TEMPLATES,
    vocab: { locations: sideGroups, severities: [['small', 'large']] },
    affirmatives: affirmatives ?? Object.fromEntries(worldAffirmativeAlternatives(DEFAULT_SPEC)),
    names: {},
    question: GENERIC_QUESTION,
    article: true,
    pairedFacts,
    vocabulary: worldConditions(DEFAULT_SPEC),
  };
}

/**
 * An ingested file's studies: chest radiology for CheXpert and CAD-Chest (NAST Table 5 alternatives
 * unless `affirmatives` are given; CAD-Chest probes severe findings only), everyday scenes for
 * JSONL (paired MCQs only with `affirmatives`).
 */
export function fileDomain(type: 'chexpert' | 'cad' | 'jsonl', studies: readonly Study[], affirmatives: AffirmativeMap | null): Domain {
  if (type !== 'jsonl') {
    return {
      templates: RADIOLOGY_TEMPLATES, vocab: CHEST_NEGATION_VOCAB, affirmatives: affirmatives ?? CHEXPERT_AFFIRMATIVES,
      names: CHEXPERT_DISPLAY_NAMES, article: false, vocabulary: conceptVocabulary(studies),
      ...(type === 'cad' ? { probeSeverity: 'severe' } : {}),
    };
  }
  return {
    templates: GENERIC_TEMPLATES, vocab: GENERIC_NEGATION_VOCAB, affirmatives, names: {},
    question: GENERIC_QUESTION, article: true, vocabulary: conceptVocabulary(studies),
  };
}
