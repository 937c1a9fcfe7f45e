import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  INDEX_FILE, SHARD_HEADER_BYTES, ShardError, ShardReader, crc32, decodeShard, encodeShard, makeShardIndex, parseShardIndex,
} from '../src/data/shards.js';
import { openShards, writeShards } from '../src/data/shards-node.js';

interface Rec {
  id: string;
  patient: string;
  image: Uint8Array | string;
  facts: { condition: string; existence: 'present' | 'absent'; location?: string }[];
  captions?: string[];
  score: number;
  embedding?: Float32Array;
}

function makeRecords(n: number): Rec[] {
  return Array.from({ length: n }, (_, k) => {
    const r: Rec = {
      id: `s${k}`,
      patient: `p${k >> 1}`,
      image: k % 3 === 0 ? `images/${k}.png` : Uint8Array.from({ length: 50 + k }, (_, j) => (j * 31 + k) & 255),
      facts: [{ condition: 'pleural effusion', existence: k % 2 ? 'present' : 'absent', location: 'left' }],
      score: k / 7 - 0.5,
    };
    if (k % 2) r.captions = [`caption "${k}", with a comma`, 'ünïcödé ✓'];
    if (k === 4) r.embedding = Float32Array.from([0.25, -1.5, 3]);
    return r;
  });
}

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'shards-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function expectReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ShardError, String(e));
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a ShardError matching ${pattern}`);
}

function expectThrow(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ShardError, String(e));
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a ShardError matching ${pattern}`);
}

test('crc32 matches the standard check value', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.is(crc32(new Uint8Array(0)), 0);
});

test('write and read back: identical records, Uint8Array stays Uint8Array, index lists shards', async () => {
  await withTmp(async (dir) => {
    const records = makeRecords(10);
    const index = await writeShards(dir, records, { recordsPerShard: 4, meta: { source: 'unit test', seed: 3 } });
    assert.equal(index.shards.map((s) => [s.file, s.records]), [['shard-00000.nsh', 4], ['shard-00001.nsh', 4], ['shard-00002.nsh', 2]]);
    assert.is(index.records, 10);
    const onDisk = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8'));
    assert.equal(onDisk, index);
    assert.equal(onDisk.meta, { source: 'unit test', seed: 3 });
    for (const s of index.shards) {
      assert.is(readFileSync(join(dir, s.file)).length, s.bytes);
      assert.match(s.checksum, /^crc32:[0-9a-f]{8}$/);
    }
    assert.equal(readdirSync(dir).sort(), [INDEX_FILE, 'shard-00000.nsh', 'shard-00001.nsh', 'shard-00002.nsh'], 'no temp files left');

    const reader = await openShards<Rec>(dir);
    assert.is(reader.size, 10);
    const back = await reader.readAll();
    assert.equal(back, records);
    const bytes = back.filter((r) => typeof r.image !== 'string');
    assert.ok(bytes.length > 0);
    for (const r of bytes) assert.is((r.image as Uint8Array).constructor, Uint8Array, 'plain Uint8Array, not Buffer');
    assert.is(back[4]!.embedding!.constructor, Float32Array);
  });
});

test('writer takes an async iterable; an empty set writes an empty index', async () => {
  await withTmp(async (dir) => {
    async function* gen() { for (const r of makeRecords(5)) yield r; }
    const index = await writeShards(dir, gen(), { recordsPerShard: 2 });
    assert.equal(index.shards.map((s) => s.records), [2, 2, 1]);
    assert.equal(await (await openShards<Rec>(dir)).readAll(), makeRecords(5));
    const empty = await writeShards(join(dir, 'empty'), [], {});
    assert.equal(empty.shards, []);
    assert.equal(await (await openShards(join(dir, 'empty'))).readAll(), []);
  });
});

test('rewriting a folder removes the old shards the new index does not name', async () => {
  await withTmp(async (dir) => {
    await writeShards(dir, makeRecords(9), { recordsPerShard: 3 });
    await writeShards(dir, makeRecords(2), { recordsPerShard: 3, meta: { generation: 2 } });
    assert.equal(readdirSync(dir).sort(), [INDEX_FILE, 'shard-00000.nsh']);
    assert.equal(await (await openShards<Rec>(dir)).readAll(), makeRecords(2));
  });
});

test('batches: every record exactly once per epoch, epochs differ, same epoch repeats', async () => {
  await withTmp(async (dir) => {
    const records = makeRecords(23);
    await writeShards(dir, records, { recordsPerShard: 5 });
    const reader = await openShards<Rec>(dir);
    const epochOrder = async (epoch: number, seed = 11) => {
      const ids: string[] = [];
      const sizes: number[] = [];
      for await (const batch of reader.batches(4, { epoch, seed })) {
        sizes.push(batch.length);
        ids.push(...batch.map((r) => r.id));
      }
      return { ids, sizes };
    };
    const all = records.map((r) => r.id).sort();
    const orders: string[][] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      const { ids, sizes } = await epochOrder(epoch);
      assert.equal([...ids].sort(), all, `epoch ${epoch} covers every record once`);
      assert.equal(sizes, [4, 4, 4, 4, 4, 3], 'batches run across shard boundaries; last one short');
      orders.push(ids);
    }
    assert.not.equal(orders[0], orders[1]);
    assert.not.equal(orders[1], orders[2]);
    assert.equal((await epochOrder(1)).ids, orders[1], 'same seed and epoch, same order');
    assert.not.equal((await epochOrder(1, 12)).ids, orders[1], 'another seed, another order');

    const plain: string[] = [];
    for await (const b of reader.batches(10, { shuffle: false })) plain.push(...b.map((r) => r.id));
    assert.equal(plain, records.map((r) => r.id), 'no shuffle: index order');

    let n = 0;
    for await (const b of reader.batches(4, { dropLast: true, epoch: 5 })) { assert.is(b.length, 4); n += b.length; }
    assert.is(n, 20);
  });
});

test('batches load one shard at a time (browser-style loader)', async () => {
  const records = makeRecords(12);
  const files = new Map<string, Uint8Array>();
  const entries = [0, 1, 2].map((k) => {
    const { bytes, entry } = encodeShard(records.slice(k * 4, k * 4 + 4));
    files.set(`s${k}`, bytes);
    return { file: `s${k}`, ...entry };
  });
  const loads: string[] = [];
  const reader = new ShardReader<Rec>(makeShardIndex(entries), async (file) => { loads.push(file); return files.get(file)!; });
  const it = reader.batches(4, { seed: 1 });
  const first = await it.next();
  assert.is((first.value as Rec[]).length, 4);
  assert.is(loads.length, 1, 'only the first shard is loaded for the first batch');
  let count = 4;
  for await (const b of { [Symbol.asyncIterator]: () => it }) count += b.length;
  assert.is(count, 12);
  assert.is(loads.length, 3);
  await expectReject(new ShardReader(reader.index, async () => new Uint8Array(3)).readShard(1), /^s1: truncated: 3 bytes/);
});

test('corrupted, truncated, foreign or missing shards give errors naming the file', async () => {
  await withTmp(async (dir) => {
    await writeShards(dir, makeRecords(8), { recordsPerShard: 4 });
    const f0 = join(dir, 'shard-00000.nsh');
    const f1 = join(dir, 'shard-00001.nsh');
    const good0 = readFileSync(f0);
    const good1 = readFileSync(f1);

    // A flipped payload bit: same size, so only the checksum can catch it.
    const bad = Uint8Array.from(good0);
    bad[SHARD_HEADER_BYTES + 5] = bad[SHARD_HEADER_BYTES + 5]! ^ 0x10;
    writeFileSync(f0, bad);
    const reader = await openShards<Rec>(dir);
    await expectReject(reader.readAll(), new RegExp(`^${f0.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: checksum mismatch`));
    expectThrow(() => decodeShard(bad, 'mem.nsh'), /^mem\.nsh: checksum mismatch/);

    // Truncated: caught at open (size differs from the index) and by decodeShard alone.
    writeFileSync(f0, good0.subarray(0, good0.length - 7));
    await expectReject(openShards(dir), /shard-00000\.nsh: truncated: \d+ bytes, .*index\.json says/);
    expectThrow(() => decodeShard(good0.subarray(0, good0.length - 7), 'cut.nsh'), /^cut\.nsh: truncated: payload/);
    expectThrow(() => decodeShard(good0.subarray(0, 10), 'tiny.nsh'), /^tiny\.nsh: truncated: 10 bytes/);
    expectThrow(() => decodeShard(new TextEncoder().encode('not a shard at all, really'), 'x.bin'), /^x\.bin: not a shard/);
    writeFileSync(f0, good0);

    // A valid shard that belongs to another index entry.
    const e0 = (await openShards(dir)).index.shards[0]!;
    expectThrow(() => decodeShard(good1, 'swapped.nsh', e0), /^swapped\.nsh: index says/);

    // A shard the index names but that is gone.
    unlinkSync(f1);
    await expectReject(openShards(dir), /shard-00001\.nsh: named in .*index\.json but cannot be read \(ENOENT\)/);
    writeFileSync(f1, good1);

    // Damaged index.
    const indexPath = join(dir, INDEX_FILE);
    const text = readFileSync(indexPath, 'utf8');
    writeFileSync(indexPath, text.slice(0, 40));
    await expectReject(openShards(dir), /index\.json: not valid JSON/);
    writeFileSync(indexPath, text.replace('"shard-00001.nsh"', '"../outside.nsh"'));
    await expectReject(openShards(dir), /index\.json: shards\[1\]\.file must be a plain file name/);
    writeFileSync(indexPath, text.replace('"records": 8', '"records": 9'));
    await expectReject(openShards(dir), /index\.json: "records" is 9 but the shards hold 8/);
    unlinkSync(indexPath);
    await expectReject(openShards(dir), /index\.json: cannot read the shard index \(ENOENT\)/);
  });
});

test('index parsing refuses unknown formats and versions', () => {
  const ok = makeShardIndex([{ file: 'a.nsh', records: 2, bytes: 30, checksum: 'crc32:0000abcd' }], { x: 1 });
  assert.equal(parseShardIndex(JSON.stringify(ok)), ok);
  expectThrow(() => parseShardIndex({ ...ok, version: 2 }, 'i.json'), /^i\.json: "version" is 2/);
  expectThrow(() => parseShardIndex({ ...ok, format: 'other' }, 'i.json'), /"format" is "other"/);
  expectThrow(() => parseShardIndex({ ...ok, shards: [ok.shards[0], ok.shards[0]], records: 4 }, 'i.json'), /listed twice/);
});

test.run();
