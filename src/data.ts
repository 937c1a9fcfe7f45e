#!/usr/bin/env node
/**
 * `node dist/data.js build --from FILE|world --out DIR [...]`: ingest (CheXpert-style CSV,
 * CAD-Chest-style JSON, image-caption JSONL) or generate the miniature world, split per patient,
 * run the chosen builders and write one shard folder per split, with a summary.
 *
 * Layout of OUT (see src/data/dataset-node.ts): dataset.json (manifest and summary),
 * OUT/{train,validation,test}/ (index.json + shards, probe.jsonl), OUT/images/ (world renders).
 * Image paths in records and in probe.jsonl are relative to their split folder.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { runCli, UsageError, type FlagTable, type ParsedFlags } from './cli/args.js';
import { buildProbePairs, checkAffirmatives, rngFor, shuffle, type AffirmativeMap } from './data/builders.js';
import { KINDS, attempt, buildStudy, type BuildContext, type Domain, type Kind, type Problem } from './data/build-records.js';
import { fileDomain, worldDomain } from './data/build-domains.js';
import { BuildTally, bump, pairedMcqStatus, renderBuildSummary, type Counter, type SplitSummary } from './data/build-summary.js';
import type { Study } from './data/facts.js';
import { ingestText, sourceFormatOf } from './data/ingest-text.js';
import type { SkippedRow } from './data/ingest-common.js';
import { SPLIT_NAMES, splitByPatient, type SplitName } from './data/splits.js';
import { writeShards } from './data/shards-node.js';
import { writePngAtomic } from './data/png-write-node.js';
import { writeFileAtomic } from './io/atomic-write-node.js';
import { FileReadError, isRegularFile, MAX_CONFIG_BYTES, MAX_TEXT_BYTES, readRegularText } from './io/read-file-node.js';
import { FolderBuild } from './data/build-folder-node.js';
import { lockOutput } from './cli/run-lock-node.js';
import { Progress } from './cli/progress-node.js';
import { ATTRIBUTES_FILE, DATASET_FILE, DATASET_FORMAT, PROBE_FILE, parseSplitName, portablePath } from './data/dataset-node.js';
import { DEFAULT_SPEC, generateWorld, renderScene, sceneAttributes, type WorldRecord } from './data/world/index.js';
import { factAttributes } from './data/attributes.js';
import { exportCommand } from './data-export.js';
import type { EvalRecord } from './data/records.js';

type SourceType = 'chexpert' | 'cad' | 'jsonl' | 'world';

const FLAGS: FlagTable = {
  from: { kind: 'string', meta: 'FILE|world', help: 'CheXpert-style .csv, CAD-Chest-style .json, image-caption .jsonl, or "world" (the procedural miniature world)' },
  format: { kind: 'string', meta: 'chexpert|cad|jsonl', help: 'input format (default: from the file extension)' },
  images: { kind: 'string', meta: 'DIR', help: 'folder the image paths of the input are relative to (default: the input file\'s folder; not used with world)' },
  out: { kind: 'string', meta: 'DIR', help: 'output data folder (created); holds dataset.json and one folder per split' },
  kind: { kind: 'string', repeat: true, meta: 'KIND', help: 'claims, captions, mcq, paired-mcq, probe or all; repeat or comma-separate (default all)' },
  split: { kind: 'string', default: 'all', meta: 'SPLIT', help: 'which split folders to write: train, val, test or all (the patient split itself always uses every study)' },
  fractions: { kind: 'string', default: '0.8,0.1,0.1', meta: 'T,V,S', help: 'train, validation and test shares of the patients' },
  seed: { kind: 'int', default: 0, help: 'seed of the split, the builders and the world' },
  k: { kind: 'int', default: 5, help: 'claims per claim set, the true one included' },
  captions: { kind: 'int', default: 1, help: 'negated captions and Retrieval-Neg captions per study' },
  'mcq-per-study': { kind: 'int', default: 3, help: 'NegBench MCQs per study, the correct template (affirmation, negation, hybrid) taken in turn; 1 draws one template per study' },
  'probe-severity': { kind: 'string', meta: 'WORD|any', help: 'present findings become probe pairs only with this severity (default: severe for CAD-Chest, any otherwise)' },
  'max-probe-pairs': { kind: 'int', meta: 'N', help: 'at most N probe pairs per split, half of each polarity where possible' },
  affirmatives: { kind: 'string', meta: 'FILE', help: 'JSON object condition -> affirmative alternative for paired MCQs (default: NAST Table 5; the world\'s own)' },
  'allow-outside': { kind: 'boolean', help: 'accept image paths that resolve outside --images (or the input\'s folder), such as ../x.png or /abs/x.png' },
  'check-images': { kind: 'boolean', default: true, help: 'skip studies whose image file is missing (with a reason); --check-images=false keeps them' },
  'records-per-shard': { kind: 'int', default: 1024, help: 'records per shard file' },
  'world-count': { kind: 'int', default: 500, help: 'images of the miniature world to generate' },
  'world-size': { kind: 'int', default: 32, help: 'world image width and height in pixels (even, 24-1024)' },
  'world-max-objects': { kind: 'int', default: 3, help: 'objects per world image, 1..N (at most 4)' },
  quiet: { kind: 'boolean', help: 'no progress lines on stderr (a long build prints one every few seconds)' },
};

function parseKinds(raw: readonly (string | number)[]): Kind[] {
  const words = raw.flatMap((r) => String(r).split(',')).map((w) => w.trim()).filter(Boolean);
  if (words.length === 0 || words.includes('all')) return [...KINDS];
  const out: Kind[] = [];
  for (const w of words) {
    if (!(KINDS as string[]).includes(w)) throw new UsageError(`--kind: unknown kind ${JSON.stringify(w)} (expected ${KINDS.join(', ')} or all)`);
    if (!out.includes(w as Kind)) out.push(w as Kind);
  }
  return out;
}

function parseFractions(raw: string): [number, number, number] {
  const texts = raw.split(',').map((p) => p.trim());
  // An empty part is not 0 (Number('') is): "0.5,,0.5" is a typo, not a request for no validation.
  const parts = texts.map((p) => (p === '' ? NaN : Number(p)));
  if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p) || p < 0) || Math.abs(parts[0]! + parts[1]! + parts[2]! - 1) > 1e-9) {
    throw new UsageError(`--fractions: expected three non-negative numbers summing to 1 (train,validation,test), got ${JSON.stringify(raw)}`);
  }
  return parts as [number, number, number];
}

function sourceType(from: string, format: string | undefined): SourceType {
  if (from === 'world') {
    if (format !== undefined) throw new UsageError('--format does not apply to --from world');
    return 'world';
  }
  if (format !== undefined) {
    if (format !== 'chexpert' && format !== 'cad' && format !== 'jsonl') throw new UsageError(`--format: expected chexpert, cad or jsonl, got ${JSON.stringify(format)}`);
    return format;
  }
  const byName = sourceFormatOf(from);
  if (byName) return byName;
  throw new UsageError(`--from ${from}: cannot tell the format from the extension "${extname(from).toLowerCase()}"; pass --format chexpert|cad|jsonl`);
}

function positiveInt(flags: ParsedFlags, name: string, min = 1): number {
  const v = flags[name] as number;
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name}: expected an integer >= ${min}, got ${v}`);
  return v;
}

async function readAffirmatives(path: string): Promise<AffirmativeMap> {
  let json: unknown;
  try {
    json = JSON.parse(await readRegularText(path, MAX_CONFIG_BYTES, 'a JSON config'));
  } catch (e) {
    throw new Error(`${path}: ${e instanceof FileReadError ? e.reason : `not valid JSON (${(e as Error).message})`}`);
  }
  checkAffirmatives(json as AffirmativeMap, path);
  return json as AffirmativeMap;
}

// Commands: build (the default when none is named) and export.
const command = process.argv[2];
if (command === 'export') {
  process.argv.splice(2, 1);
  await exportCommand();
} else {
  if (command === 'build') process.argv.splice(2, 1);
  else if (command !== undefined && command !== '--help' && command !== '-h' && !command.startsWith('--')) {
    process.stderr.write(`data: unknown command ${JSON.stringify(command)} (usage: node dist/data.js build|export ...; see --help)\n`);
    process.exit(2);
  }
  await buildCommand();
}

async function buildCommand(): Promise<void> {
  await runCli('data', 'usage: node dist/data.js build --from FILE|world --out DIR [--images DIR] [--kind KIND]... [--split all] [--seed 0] [--k 5]',
    'Builds negation data (captions, claim sets, NegBench and paired MCQs, probe pairs) from CheXpert/CAD-Chest/JSONL annotations or the miniature world, split per patient into shard folders.',
    FLAGS, async (f) => {
      const from = f.from as string | undefined;
      const outArg = f.out as string | undefined;
      if (!from) throw new UsageError('--from is required (a .csv, .json or .jsonl file, or "world")');
      if (!outArg) throw new UsageError('--out is required (the data folder to write)');
      const type = sourceType(from, f.format as string | undefined);
      const kinds = parseKinds(f.kind as string[]);
      const splitArg = f.split as string;
      let splits: SplitName[];
      try {
        splits = splitArg === 'all' ? [...SPLIT_NAMES] : [parseSplitName(splitArg)];
      } catch (e) {
        throw new UsageError(`--split: ${(e as Error).message.replace(/ \(expected train, val or test\)$/, '')} (expected train, val, test or all)`);
      }
      const fractions = parseFractions(f.fractions as string);
      const seed = f.seed as number;
      const k = positiveInt(f, 'k', 2);
      const captionCount = positiveInt(f, 'captions');
      const mcqCount = positiveInt(f, 'mcq-per-study');
      const perShard = positiveInt(f, 'records-per-shard');
      const maxProbe = f['max-probe-pairs'] === undefined ? undefined : positiveInt(f, 'max-probe-pairs', 0);
      if (type === 'world' && f.images !== undefined) throw new UsageError('--images does not apply to --from world (images are rendered into OUT/images)');
      const out = resolve(outArg);
      // Image paths are made relative to the split folders' final place, OUT/<split>.
      const splitDir = (s: SplitName) => join(out, s);
      // Everything is written into a hidden sibling of OUT and moved into OUT once complete.
      const build = await FolderBuild.start(out);
      // One build of OUT at a time (the lock sits beside OUT: the folder itself is replaced whole).
      // Taken once the build has checked that OUT's parent can be written.
      lockOutput(dirname(out), 'data.js build', (line) => process.stderr.write(`data: ${line}\n`), `.${basename(out)}.lock`);
      const progress = new Progress('data', !f.quiet);
      const dir = build.dir;
      const writeDir = (s: SplitName) => join(dir, s);
      let summary: string;
      try {

        // ---- studies
        let studies: Study[];
        let skipped: SkippedRow[] = [];
        const missingImages: Problem[] = [];
        const worldById = new Map<string, WorldRecord>();
        let domain: Domain;
        const affirmativesFile = f.affirmatives as string | undefined;
        const userAffirmatives = affirmativesFile ? await readAffirmatives(affirmativesFile) : null;
        const source: Record<string, unknown> = { type };

        if (type === 'world') {
          const count = positiveInt(f, 'world-count');
          const size = f['world-size'] as number;
          // Rendered one at a time as the PNGs are written, so no pixels are held.
          let records: WorldRecord[];
          try {
            records = generateWorld({ seed, count, size, render: false, maxObjects: f['world-max-objects'] as number });
          } catch (e) {
            throw new UsageError(`--from world (--seed ${seed}, --world-size ${size}): ${(e as Error).message}`);
          }
          await mkdir(join(dir, 'images'), { recursive: true });
          studies = [];
          for (const [n, r] of records.entries()) {
            progress.update(() => `rendering world images: ${n}/${records.length}`);
            const file = `${r.id}.png`;
            await writePngAtomic(join(dir, 'images', file), renderScene(r.scene));
            worldById.set(r.id, r);
            // Relative to a split folder: OUT/<split>/../images/<id>.png.
            studies.push({ id: r.id, patient: r.patient, image: `../images/${file}`, facts: r.facts, captions: r.captions });
          }
          Object.assign(source, { count, size, maxObjects: f['world-max-objects'], spec: DEFAULT_SPEC });
          domain = worldDomain(userAffirmatives, (s) => worldById.get(s.id)?.propertyFacts);
        } else {
          const file = resolve(from);
          if (!existsSync(file)) throw new Error(`${from}: no such file`);
          const text = await readRegularText(file, MAX_TEXT_BYTES, 'a source file read whole');
          const result = ingestText(text, type, from);
          skipped = result.skipped;
          const imagesDir = resolve((f.images as string | undefined) ?? dirname(file));
          if (f.images !== undefined && (!existsSync(imagesDir) || !statSync(imagesDir).isDirectory())) throw new Error(`--images ${f.images as string}: no such folder`);
          Object.assign(source, { file, images: imagesDir });
          studies = [];
          for (const [n, s] of result.studies.entries()) {
            progress.update(() => `checking image paths: ${n}/${result.studies.length} studies`);
            const abs = resolve(imagesDir, s.image);
            const inside = relative(imagesDir, abs);
            if (!f['allow-outside'] && (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside))) {
              missingImages.push({ study: s.id, kind: 'image', reason: `image path ${JSON.stringify(s.image)} lies outside ${imagesDir} (--allow-outside accepts it)` });
              continue;
            }
            if (f['check-images'] && !isRegularFile(abs)) {
              missingImages.push({ study: s.id, kind: 'image', reason: existsSync(abs) ? `image is not a regular file: ${abs}` : `image not found: ${abs}` });
              continue;
            }
            // Every split folder sits at OUT/<split>, so one relative path serves them all.
            studies.push({ ...s, image: portablePath(relative(splitDir('train'), abs)) });
          }
          domain = fileDomain(type, studies, userAffirmatives);
        }
        const sev = f['probe-severity'] as string | undefined;
        if (sev !== undefined) {
          if (sev === 'any') delete domain.probeSeverity;
          else domain.probeSeverity = sev;
        }
        if (studies.length === 0) {
          const why = [...skipped.map((s) => `row ${s.row}: ${s.reason}`), ...missingImages.map((m) => `${m.study}: ${m.reason}`)];
          // The commonest reason says more than the first one; paths and ids make every reason
          // unique, so they are compared with quoted parts and numbers blanked out.
          const reasons = [...skipped.map((s) => s.reason), ...missingImages.map((m) => m.reason)];
          const shape = (r: string) => r.replace(/"[^"]*"|\/\S+|\d+/g, '_');
          const counts = new Map<string, number>();
          for (const r of reasons) counts.set(shape(r), (counts.get(shape(r)) ?? 0) + 1);
          const [top, n] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
          const commonest = n > 1 ? `; most often (${n}x): ${why[reasons.findIndex((r) => shape(r) === top)]}` : '';
          throw new Error(`${from}: no usable studies${why.length ? ` (${why.length} skipped; first: ${why[0]}${commonest})` : ''}`);
        }

        // ---- splits and builders
        const bySplit = splitByPatient(studies, { seed, fractions });
        const ctx: BuildContext = { kinds, seed, k, captions: captionCount, mcqs: mcqCount, domain, problems: [], none: {} };
        const splitSummaries: Partial<Record<SplitName, SplitSummary>> = {};
        const tally = new BuildTally();

        for (const split of splits) {
          const group = bySplit[split];
          const probes = kinds.includes('probe')
            ? attempt(ctx, { id: `(${split} split)`, patient: '', image: '', facts: [] }, 'probe-pair', () => buildProbePairs(group, {
              ...(domain.probeSeverity ? { presentSeverity: domain.probeSeverity } : {}),
              ...(maxProbe !== undefined ? { maxPairs: maxProbe } : {}), seed,
            })) ?? []
            : [];
          tally.countFacts(group);

          const byKind: Counter = {};
          let total = 0;
          const count = (r: EvalRecord) => {
            total++;
            bump(byKind, r.kind);
            tally.countRecord(r);
          };
          // Records are made study by study while the shards are written, so memory stays bounded
          // by a shard. Studies go in a seeded random order: the reader shuffles shards and the
          // records within each, and study order would keep neighbouring patients together.
          const order = shuffle(rngFor(seed, 'shard-order', split), group);
          function* records(): Generator<EvalRecord> {
            for (const [n, s] of order.entries()) {
              progress.update(() => `${split}: ${n}/${order.length} studies built, ${total} records`);
              for (const r of buildStudy(ctx, s)) {
                count(r);
                yield r;
              }
            }
            for (const p of probes) {
              count(p);
              yield p;
            }
          }
          await writeShards(writeDir(split), records(), {
            recordsPerShard: perShard,
            meta: { dataset: DATASET_FORMAT, buildId: build.buildId, split, source: type, seed, kinds, imagePaths: 'relative to this folder' },
          });
          if (kinds.includes('probe')) {
            const lines = probes.map((p) => JSON.stringify({ image: p.image, caption: p.caption, foil: p.foil })).join('\n');
            await writeFileAtomic(join(writeDir(split), PROBE_FILE), lines ? `${lines}\n` : '');
          }
          // What each image shows, for linear probes of the frozen image tower (eval.js --probe):
          // the world's full scene; an ingested study's definite facts.
          const attributes = group.map((s) => {
            const w = worldById.get(s.id);
            return JSON.stringify({ image: s.image, labels: w ? sceneAttributes(w.scene, DEFAULT_SPEC) : factAttributes(s) });
          });
          await writeFileAtomic(join(writeDir(split), ATTRIBUTES_FILE), attributes.length ? `${attributes.join('\n')}\n` : '');
          splitSummaries[split] = {
            dir: split, studies: group.length, patients: new Set(group.map((s) => s.patient)).size,
            records: total, byKind, probePairs: probes.length,
          };
        }

        // ---- manifest and summary
        const totalPatients = new Set(studies.map((s) => s.patient)).size;
        const manifest = {
          format: DATASET_FORMAT,
          version: 1,
          buildId: build.buildId,
          complete: true,
          source,
          seed,
          k,
          captions: captionCount,
          mcqPerStudy: mcqCount,
          fractions: { train: fractions[0], validation: fractions[1], test: fractions[2] },
          kinds,
          studies: studies.length,
          patients: totalPatients,
          splits: splitSummaries,
          summary: {
            negationTypes: tally.negationTypes,
            conditions: tally.conditionTable(),
            notBuilt: ctx.none,
            pairedMcq: pairedMcqStatus(Boolean(domain.affirmatives)),
          },
          skipped: {
            rows: skipped,
            missingImages: missingImages.map((m) => ({ study: m.study, reason: m.reason })),
            builderErrors: ctx.problems,
          },
        };
        await writeFileAtomic(join(dir, DATASET_FILE), JSON.stringify(manifest, null, 2) + '\n');
        summary = renderBuildSummary(manifest, type === 'world' ? 'world' : `${from} (${type})`, out);
      } catch (e) {
        progress.done();
        throw await build.abandon(e);
      }
      progress.done();
      await build.commit();
      process.stdout.write(summary);
    });
}
