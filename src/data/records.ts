/** The record schema of a built data folder: the builders' records plus affirmative captions. */
import type { DataRecord } from './builders.js';
import type { Fact } from './facts.js';

/**
 * An affirmative single caption of a study (no negation): the source's own caption (world,
 * COCO-like JSONL) or its present facts verbalised. The data CLI writes these beside the
 * builders' negated captions, so retrieval has an affirmative-only subset (NAST Table 2).
 */
export interface AffirmativeCaption {
  kind: 'caption';
  studyId: string;
  image: string;
  caption: string;
  /** 'original': a caption the source gave; 'facts': present facts through the templates. */
  source: 'original' | 'facts';
  facts?: Fact[];
  templates?: string[];
}

/** Every record kind a built data folder holds. */
export type EvalRecord = DataRecord | AffirmativeCaption;
