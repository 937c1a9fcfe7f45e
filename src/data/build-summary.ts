/**
 * The data CLI's summary: counts of records, negation types and conditions as the records are
 * made, and the text printed after a build (Markdown tables plus plain lines). Browser-safe.
 */
import { hasNegationCue } from './builders.js';
import type { Study } from './facts.js';
import type { SkippedRow } from './ingest-common.js';
import type { SplitName } from './splits.js';
import { RECORD_KINDS, type Kind, type Problem } from './build-records.js';
import { markdownTable } from '../io/report.js';
import type { EvalRecord } from './records.js';

export type Counter = Record<string, number>;
export const bump = (c: Counter, key: string, by = 1) => { c[key] = (c[key] ?? 0) + by; };

export interface ConditionRow {
  present: number;
  absent: number;
  claimSets: number;
  probePairs: number;
}

export interface SplitSummary {
  dir: string;
  studies: number;
  patients: number;
  records: number;
  byKind: Counter;
  probePairs: number;
}

export interface NegationTypes {
  /** Claim sets by the polarity of their true claim. */
  claimSets: Counter;
  /** Wrong claims by how they were made: "other-fact", or the negation applied (plus what was added). */
  claimDistractors: Counter;
  mcqAnswerTypes: Counter;
  captions: Counter;
  /** Probe pairs by the polarity of the correct caption. */
  probe: Counter;
  /** Paired-MCQ options by phrasing pattern. */
  pairedPhrasings: Counter;
}

/** The `summary` of dataset.json. */
export interface BuildSummary {
  negationTypes: NegationTypes;
  conditions: Record<string, ConditionRow>;
  /** Studies for which a kind was asked for but made nothing, per record kind. */
  notBuilt: Counter;
  pairedMcq: string;
}

/** What dataset.json says about paired MCQs: built, or why not. */
export function pairedMcqStatus(built: boolean): string {
  return built ? 'built' : 'skipped: no affirmative alternatives for this source (pass --affirmatives FILE)';
}

/** Condition and negation-type counts over every split written. */
export class BuildTally {
  readonly conditions = new Map<string, ConditionRow>();
  readonly negationTypes: NegationTypes = {
    claimSets: { affirmative: 0, negated: 0 }, claimDistractors: {}, mcqAnswerTypes: {}, captions: {}, probe: {}, pairedPhrasings: {},
  };

  private cond(c: string): ConditionRow {
    let row = this.conditions.get(c);
    if (!row) this.conditions.set(c, row = { present: 0, absent: 0, claimSets: 0, probePairs: 0 });
    return row;
  }

  /** Present and absent findings of the studies. */
  countFacts(studies: readonly Study[]): void {
    for (const s of studies) {
      for (const fct of s.facts) {
        if (fct.existence === 'present') this.cond(fct.condition).present++;
        else this.cond(fct.condition).absent++;
      }
    }
  }

  countRecord(r: EvalRecord): void {
    const t = this.negationTypes;
    switch (r.kind) {
      case 'claim-set':
        this.cond(r.claims[r.answer]!.fact.condition).claimSets++;
        // Polarity as the evaluation splits claim accuracy: by a negation cue in the true claim.
        bump(t.claimSets, hasNegationCue(r.claims[r.answer]!.text) ? 'negated' : 'affirmative');
        for (const c of r.claims) {
          if (c.origin === 'true') continue;
          bump(t.claimDistractors, c.origin === 'other-fact' ? 'other-fact' : c.added ? `${c.negation!}+${c.added}` : c.negation!);
        }
        break;
      case 'negbench-mcq': bump(t.mcqAnswerTypes, r.answerType); break;
      case 'caption': bump(t.captions, 'affirmative'); break;
      case 'negated-caption': bump(t.captions, 'negated'); break;
      case 'retrieval-neg-caption': bump(t.captions, `retrieval-neg (${r.position})`); break;
      case 'paired-mcq': for (const p of r.phrasings) bump(t.pairedPhrasings, p.split(':')[0]!); break;
      case 'probe-pair':
        this.cond(r.condition).probePairs++;
        bump(t.probe, r.polarity);
        break;
    }
  }

  /** The condition rows sorted by name. */
  conditionTable(): Record<string, ConditionRow> {
    return Object.fromEntries([...this.conditions.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** The parts of dataset.json the printed summary shows. */
export interface SummarySource {
  studies: number;
  patients: number;
  kinds: readonly Kind[];
  seed: number;
  /** In the order they were written. */
  splits: Partial<Record<SplitName, SplitSummary>>;
  summary: BuildSummary;
  skipped: {
    rows: readonly SkippedRow[];
    missingImages: readonly { study: string; reason: string }[];
    builderErrors: readonly Problem[];
  };
}

/**
 * The text printed after a build, newline-terminated. `from` names the input ("world" or
 * "FILE (format)") and `out` the folder written.
 */
export function renderBuildSummary(m: SummarySource, from: string, out: string): string {
  const splits = Object.keys(m.splits) as SplitName[];
  const { negationTypes, notBuilt } = m.summary;
  const { rows, missingImages, builderErrors } = m.skipped;
  const recordKinds = RECORD_KINDS.filter((rk) => splits.some((s) => (m.splits[s]!.byKind[rk] ?? 0) > 0));
  const lines: string[] = [];
  lines.push(`data: ${from} -> ${out}: ${m.studies} studies of ${m.patients} patients; kinds ${m.kinds.join(', ')}; seed ${m.seed}`);
  lines.push('');
  lines.push(markdownTable(['split', 'studies', 'patients', 'records', ...recordKinds],
    splits.map((s) => { const x = m.splits[s]!; return [s, x.studies, x.patients, x.records, ...recordKinds.map((rk) => x.byKind[rk] ?? 0)]; })));
  const fmt = (c: Counter) => Object.entries(c).map(([a, b]) => `${a} ${b}`).join(', ') || 'none';
  const has = (k: Kind) => m.kinds.includes(k);
  lines.push('negation types:');
  if (has('claims')) lines.push(`  claim sets (true claim): ${fmt(negationTypes.claimSets)}`);
  if (has('claims')) lines.push(`  claim distractors: ${fmt(negationTypes.claimDistractors)}`);
  if (has('captions')) lines.push(`  captions: ${fmt(negationTypes.captions)}`);
  if (has('mcq')) lines.push(`  NegBench MCQ answer types: ${fmt(negationTypes.mcqAnswerTypes)}`);
  if (has('paired-mcq')) lines.push(`  paired MCQ option patterns: ${m.summary.pairedMcq === pairedMcqStatus(true) ? fmt(negationTypes.pairedPhrasings) : m.summary.pairedMcq}`);
  if (has('probe')) lines.push(`  probe pairs (correct caption polarity): ${fmt(negationTypes.probe)}`);
  if (Object.keys(notBuilt).length) lines.push(`studies that gave none: ${fmt(notBuilt)}`);
  lines.push('');
  lines.push(markdownTable(['condition', 'present', 'absent', 'claim sets', 'probe pairs'],
    Object.entries(m.summary.conditions).map(([c, r]) => [c, r.present, r.absent, r.claimSets, r.probePairs])));
  const nSkipped = rows.length + missingImages.length + builderErrors.length;
  lines.push(nSkipped === 0 ? 'skipped: none' : `skipped: ${rows.length} rows, ${missingImages.length} missing images, ${builderErrors.length} builder errors`);
  for (const s of rows) lines.push(`  row ${s.row}: ${s.reason}`);
  for (const s of missingImages) lines.push(`  study ${s.study}: ${s.reason}`);
  for (const p of builderErrors) lines.push(`  study ${p.study} (${p.kind}): ${p.reason}`);
  return lines.join('\n') + '\n';
}
