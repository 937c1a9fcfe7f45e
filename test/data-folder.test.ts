/**
 * A data folder is written and read as one build: rebuilds replace every split, a failed build
 * leaves the folder as it was, and the readers refuse mixes of builds, unfinished builds, split
 * folders passed as the data root and missing shards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode } from './helpers/cli-node.js';
import { openDatasetSplit, trainingSplits } from '../src/data/dataset-node.js';
import { writeShards } from '../src/data/shards-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATA_CLI = join(ROOT, 'build', 'src', 'data.js');
const TRAIN_CLI = join(ROOT, 'build', 'src', 'train.js');
const TMP = mkdtempSync(join(tmpdir(), 'data-folder-'));
const WORLD = ['--from', 'world', '--world-count', '24', '--world-size', '32'];

async function build(out: string, args: string[]): Promise<void> {
  const r = await runNode(DATA_CLI, ['build', ...WORLD, ...args, '--out', out]);
  assert.is(r.status, 0, r.stderr);
}

const json = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, pattern);
    assert.not.match((e as Error).message, /\n/);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

test('a rebuild with --split train replaces the folder: the old validation/ and test/ are gone, train.js checks on nothing stale', async () => {
  const out = join(TMP, 'rebuild');
  await build(out, ['--seed', '1']);
  const first = json(join(out, 'dataset.json'));
  assert.type(first.buildId, 'string');
  assert.is(first.complete, true);
  assert.equal((await trainingSplits(out)).validation, join(out, 'validation'));

  await build(out, ['--seed', '2', '--split', 'train']);
  const second = json(join(out, 'dataset.json'));
  assert.is.not(second.buildId, first.buildId);
  assert.equal(Object.keys(second.splits), ['train']);
  assert.not.ok(existsSync(join(out, 'validation')), 'old validation/ removed');
  assert.not.ok(existsSync(join(out, 'test')), 'old test/ removed');
  assert.is(json(join(out, 'train', 'index.json')).meta.buildId, second.buildId);
  assert.equal(await trainingSplits(out), { train: join(out, 'train'), validation: null });
  assert.equal(readdirSync(TMP).filter((n) => n.startsWith('.rebuild')), [], 'no temporary folder left');
});

test('splits of two builds, a split folder as the data root, an unfinished or half-built folder and a missing shard are refused', async () => {
  const a = join(TMP, 'mix-a');
  const b = join(TMP, 'mix-b');
  await Promise.all([build(a, ['--seed', '3']), build(b, ['--seed', '3'])]);

  // validation/ of build b dropped into build a.
  rmSync(join(a, 'validation'), { recursive: true });
  cpSync(join(b, 'validation'), join(a, 'validation'), { recursive: true });
  await rejects(trainingSplits(a), /mix-a\/validation: is from another build than .*mix-a\/dataset\.json/);
  await rejects(openDatasetSplit(a, 'validation'), /mix-a\/validation: is from another build/);
  await rejects(openDatasetSplit(join(a, 'validation')), /mix-a\/validation: is from another build/);

  // A split given as the data root: training would read validation data as its train set.
  await rejects(trainingSplits(join(b, 'validation')), /mix-b\/validation: is the "validation" split folder of a data folder; pass the data root \(--data .*mix-b\)/);
  // train.js says so before it loads anything (the model path is never opened).
  const r = await runNode(TRAIN_CLI, ['--model', join(TMP, 'no-model'), '--uniform', '--data', join(b, 'validation'), '--out', join(TMP, 'never')]);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /^train: .*mix-b\/validation: is the "validation" split folder of a data folder; pass the data root/);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  // Evaluation on a split folder stays allowed.
  assert.is((await openDatasetSplit(join(b, 'validation'))).split, 'validation');

  // A manifest that says incomplete.
  const c = join(TMP, 'incomplete');
  cpSync(b, c, { recursive: true });
  writeFileSync(join(c, 'dataset.json'), JSON.stringify({ ...json(join(b, 'dataset.json')), complete: false }));
  await rejects(trainingSplits(c), /incomplete\/dataset\.json: says the build is incomplete/);
  await rejects(openDatasetSplit(c, 'test'), /says the build is incomplete/);

  // What a build killed before dataset.json left (before builds went through a temporary folder).
  const d = join(TMP, 'half');
  cpSync(b, d, { recursive: true });
  unlinkSync(join(d, 'dataset.json'));
  await rejects(trainingSplits(d), /half: has train\/ from node dist\/data\.js build but no dataset\.json: that build did not finish/);

  // A shard named in index.json but gone: refused before any work, naming the file.
  const e = join(TMP, 'gone');
  cpSync(b, e, { recursive: true });
  unlinkSync(join(e, 'validation', 'shard-00000.nsh'));
  await rejects(trainingSplits(e), /gone\/validation\/shard-00000\.nsh: named in .* but cannot be read/);
});

test('folders built before build ids and bare shard folders keep loading', async () => {
  const out = join(TMP, 'legacy');
  await build(out, ['--seed', '4']);
  const m = json(join(out, 'dataset.json'));
  delete m.buildId;
  delete m.complete;
  writeFileSync(join(out, 'dataset.json'), JSON.stringify(m));
  for (const s of ['train', 'validation', 'test']) {
    const p = join(out, s, 'index.json');
    const ix = json(p);
    delete ix.meta.buildId;
    writeFileSync(p, JSON.stringify(ix));
  }
  assert.equal(await trainingSplits(out), { train: join(out, 'train'), validation: join(out, 'validation') });
  assert.ok((await (await openDatasetSplit(out, 'test')).readRecords()).length > 0);

  const bare = join(TMP, 'bare');
  await writeShards(bare, [{ kind: 'caption', image: 'x.png', caption: 'A dog.' }]);
  assert.equal(await trainingSplits(bare), { train: bare, validation: null });
});

test('a build that dies halfway (a file size limit, as a full disk) leaves the earlier build in place and loadable', async () => {
  const out = join(TMP, 'killed');
  await build(out, ['--seed', '5']);
  const before = readFileSync(join(out, 'dataset.json'), 'utf8');
  // 1000 images: the shards outgrow a 64 KiB file size limit; the 32x32 renders do not.
  const cmd = `ulimit -f 64; exec node ${JSON.stringify(DATA_CLI)} build --from world --world-count 1000 --world-size 32 --seed 6 --records-per-shard 100000 --out ${JSON.stringify(out)}`;
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
  assert.ok(r.status !== 0 || r.signal !== null, `the build must fail: ${r.stderr}`);
  assert.is(readFileSync(join(out, 'dataset.json'), 'utf8'), before, 'the earlier manifest is untouched');
  const splits = await trainingSplits(out);
  assert.ok((await (await openDatasetSplit(out, 'train')).readRecords()).length > 0);
  assert.is(splits.validation, join(out, 'validation'));

  // Into a new folder: nothing appears under its name.
  const fresh = join(TMP, 'killed-fresh');
  spawnSync('bash', ['-c', cmd.replace(JSON.stringify(out), JSON.stringify(fresh))]);
  assert.not.ok(existsSync(fresh), 'no folder from a failed build');
  // The next build clears what a killed build (its process gone) left beside the folder.
  const dead = spawnSync('true').pid;
  const litter = join(TMP, `.killed-fresh.build-${dead}-0000`);
  cpSync(join(out, 'train'), join(litter, 'train'), { recursive: true });
  await build(fresh, ['--seed', '7']);
  assert.equal(readdirSync(TMP).filter((n) => n.startsWith('.killed-fresh.')), [], 'temporary folders of dead builds removed');
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
