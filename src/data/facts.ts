/**
 * The structured facts every builder starts from, shared by the radiology ingest (CheXpert,
 * CAD-Chest), the plain image-caption ingest and the procedural miniature world.
 */

/** Whether a finding is definitely there. Uncertain labels never become facts. */
export type Existence = 'present' | 'absent';

export interface Fact {
  /** The finding or object, lower-case as it is written in captions ("pleural effusion", "red square"). */
  condition: string;
  existence: Existence;
  /** Where it is ("left", "right", "bilateral", "top left", ...), when known. */
  location?: string;
  /** How much of it ("mild", "severe", "small", "large", ...), when known. */
  severity?: string;
}

/** One image with what is known about it. */
export interface Study {
  /** Unique per image. */
  id: string;
  /** Splits are made per patient so that no patient is in two splits. */
  patient: string;
  /** Image path (absolute or relative to the dataset folder) or an inline image reference. */
  image: string;
  facts: Fact[];
  /** Free-text captions of the image when the source has them (COCO-like data). */
  captions?: string[];
}

/** The three attributes a contextual negation may change (exactly one at a time). */
export type NegationKind = 'existence' | 'location' | 'severity';
