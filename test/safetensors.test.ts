import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { f16round } from '@petamoriken/float16';
import {
  DTYPE_SIZE, SafetensorsError, parseSafetensors, serializeSafetensors, type DecodedTensor, type TensorToWrite,
} from '../src/models/safetensors.js';
import {
  SafetensorsFile, ShardedSafetensors, loadSafetensorsFile, openSafetensors, writeSafetensorsFile,
} from '../src/models/safetensors-node.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'safetensors');

type Expected = { dtype: string; shape: number[]; values: (number | string)[] };
const expected: { metadata: Record<string, string>; tensors: Record<string, Expected> } =
  JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8'));

const num = (v: number | string): number => (v === '-0' ? -0 : typeof v === 'string' ? Number(v.replace('inf', 'Infinity')) : v);

function checkAgainstExpected(t: DecodedTensor, e: Expected, where: string): void {
  assert.is(t.dtype, e.dtype, `${where} dtype`);
  assert.equal(t.shape, e.shape, `${where} shape`);
  assert.is(t.data.length, e.values.length, `${where} length`);
  e.values.forEach((v, i) => {
    const got = t.data[i];
    if (typeof got === 'bigint') assert.is(got, BigInt(num(v)), `${where}[${i}]`);
    else if (e.dtype === 'F32') assert.ok(Object.is(got, Math.fround(num(v))), `${where}[${i}]: ${got} vs ${v}`);
    else assert.ok(Object.is(got, num(v)), `${where}[${i}]: ${got} vs ${v}`);
  });
}

/** Builds a file from a header (object or raw text) and data bytes, padding like the reference. */
function rawFile(header: unknown, data: Uint8Array | number = 0, opts: { length?: bigint } = {}): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  let json = new TextEncoder().encode(text);
  if (json.byteLength % 8) json = Uint8Array.from([...json, ...new Array(8 - (json.byteLength % 8)).fill(0x20)]);
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, opts.length ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(body, 8 + json.byteLength);
  return out;
}

function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** The error, in memory and from disk, must be a SafetensorsError naming the file and the key. */
async function expectError(bytes: Uint8Array, key: string | undefined, pattern: RegExp): Promise<void> {
  const check = (e: unknown, source: string) => {
    assert.instance(e, SafetensorsError, String(e));
    const msg = (e as Error).message;
    assert.ok(msg.startsWith(source + ':'), `names the file: ${msg}`);
    if (key !== undefined) assert.ok(msg.includes(JSON.stringify(key)), `names the key ${key}: ${msg}`);
    assert.match(msg, pattern);
  };
  try {
    parseSafetensors(bytes, 'mem.safetensors');
    assert.unreachable(`no error for ${pattern}`);
  } catch (e) {
    if ((e as Error).name === 'Assertion') throw e;
    check(e, 'mem.safetensors');
  }
  await withTmp(async (dir) => {
    const path = join(dir, 'bad.safetensors');
    writeFileSync(path, bytes);
    try {
      const f = await SafetensorsFile.open(path);
      await f.close();
      assert.unreachable(`no error from disk for ${pattern}`);
    } catch (e) {
      if ((e as Error).name === 'Assertion') throw e;
      check(e, path);
    }
  });
}

test('reads a file written by Python (json + struct), in memory and from disk', async () => {
  const path = join(FIX, 'python-written.safetensors');
  const mem = parseSafetensors(readFileSync(path), path);
  const disk = await SafetensorsFile.open(path);
  try {
    assert.equal(mem.metadata, expected.metadata);
    assert.equal(disk.metadata, expected.metadata);
    // Header order is kept; the data section is in a different order in this file.
    assert.equal(mem.keys(), Object.keys(expected.tensors));
    assert.equal(disk.keys(), Object.keys(expected.tensors));
    for (const [key, e] of Object.entries(expected.tensors)) {
      checkAgainstExpected(mem.readTensor(key), e, `mem ${key}`);
      checkAgainstExpected(await disk.readTensor(key), e, `disk ${key}`);
      assert.equal(disk.shape(key), e.shape);
    }
    assert.instance(mem.read('half'), Float32Array);
    assert.instance(mem.readTensor('position_ids').data, BigInt64Array);
    assert.instance(mem.readTensor('ids32').data, Int32Array);
    assert.equal(Array.from(await disk.read('brain')), [1, -3.140625, 2 ** 100, -Infinity]);
    // Each tensor is read into a buffer of its own, not a slice of the whole file.
    const raw = await disk.readBytes('text.weight');
    assert.is(raw.buffer.byteLength, 24);
  } finally {
    await disk.close();
  }
  const all = await loadSafetensorsFile(path);
  assert.equal([...all.keys()], Object.keys(expected.tensors));
  const some = await loadSafetensorsFile(path, ['scalar']);
  assert.equal(Array.from(some.get('scalar')!.data as Float32Array), [42]);
});

function sample(): Record<string, TensorToWrite> {
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 4 - 2;
  const f32 = (n: number) => Float32Array.from({ length: n }, rnd);
  // Exactly representable in bf16: 8 significant bits.
  const bf = (n: number) => Float32Array.from({ length: n }, () => Math.round(rnd() * 64) / 32);
  return {
    'w.f32': { dtype: 'F32', shape: [3, 7], data: f32(21) },
    'w.f32.odd': { dtype: 'F32', shape: [1, 77, 3], data: f32(231) },
    'w.f16': { dtype: 'F16', shape: [129], data: Float32Array.from(f32(129), (v) => f16round(v)) },
    'w.f16.bits': { dtype: 'F16', shape: [2, 2], data: Uint16Array.from([0x3c00, 0x8000, 0x7c00, 0x0001]) },
    'w.bf16': { dtype: 'BF16', shape: [7, 3], data: bf(21) },
    'w.bf16.bits': { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xc049, 0xff80]) },
    'ids.i32': { dtype: 'I32', shape: [5], data: Int32Array.from([-2147483648, -1, 0, 1, 2147483647]) },
    'ids.i32.numbers': { dtype: 'I32', shape: [3], data: [3, -4, 5] },
    'position_ids': { dtype: 'I64', shape: [1, 77], data: BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i)) },
    'big.i64': { dtype: 'I64', shape: [3], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 40n]) },
    'i64.numbers': { dtype: 'I64', shape: [2], data: [Number.MAX_SAFE_INTEGER, -5] },
    'scalar': { dtype: 'F32', shape: [], data: Float32Array.from([3.5]) },
    'scalar.bf16': { dtype: 'BF16', shape: [], data: [-2] },
    'empty': { dtype: 'F32', shape: [0], data: new Float32Array(0) },
    'empty.3d': { dtype: 'F16', shape: [2, 0, 3], data: [] },
    'empty.i64': { dtype: 'I64', shape: [0], data: new BigInt64Array(0) },
    'ünïcode.kéy': { dtype: 'F32', shape: [1], data: [1] },
  };
}

function expectedValues(t: TensorToWrite): unknown[] {
  if (t.data instanceof Uint16Array) {
    const dv = new DataView(new ArrayBuffer(4));
    return Array.from(t.data, (b) => {
      if (t.dtype === 'BF16') {
        dv.setUint32(0, b << 16);
        return dv.getFloat32(0);
      }
      return f16round(b === 0x3c00 ? 1 : b === 0x8000 ? -0 : b === 0x7c00 ? Infinity : 2 ** -24);
    });
  }
  if (t.dtype === 'I64') return Array.from(t.data as ArrayLike<number | bigint>, (v) => BigInt(v));
  return Array.from(t.data as ArrayLike<number>, (v) => (t.dtype === 'I32' ? v : Math.fround(v)));
}

function checkRoundTrip(got: DecodedTensor, t: TensorToWrite, key: string): void {
  assert.is(got.dtype, t.dtype, key);
  assert.equal(got.shape, [...t.shape], key);
  const want = expectedValues(t);
  const have = Array.from(got.data as ArrayLike<number | bigint>);
  assert.is(have.length, want.length, key);
  for (let i = 0; i < want.length; i++) assert.ok(Object.is(have[i], want[i]), `${key}[${i}]: ${have[i]} vs ${want[i]}`);
}

test('round trip of every writable dtype, odd shapes, scalars and empty tensors', async () => {
  const tensors = sample();
  const bytes = serializeSafetensors(tensors, { format: 'pt', purpose: 'test' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is(n % 8, 0, 'header padded to 8 bytes');
  assert.is(bytes[8 + n - 1] === 0x20 || bytes[8 + n - 1] === 0x7d, true);
  const mem = parseSafetensors(bytes, 'mem');
  assert.equal(mem.metadata, { format: 'pt', purpose: 'test' });
  for (const [key, t] of Object.entries(tensors)) checkRoundTrip(mem.readTensor(key), t, key);
  // Layout: grouped by element size (largest first), then by name, each start aligned.
  const infos = mem.keys().map((k) => mem.info(k));
  const sizes = infos.map((i) => DTYPE_SIZE[i.dtype]);
  assert.equal(sizes, [...sizes].sort((a, b) => b - a));
  for (const i of infos) assert.is((8 + n + i.begin) % DTYPE_SIZE[i.dtype], 0, `${i.key} aligned`);
  assert.equal(mem.keys().filter((k) => mem.info(k).dtype === 'F32'), ['empty', 'scalar', 'w.f32', 'w.f32.odd', 'ünïcode.kéy']);
  await withTmp(async (dir) => {
    const path = join(dir, 'out.safetensors');
    await writeSafetensorsFile(path, tensors, { format: 'pt', purpose: 'test' });
    assert.ok(Buffer.from(bytes).equals(readFileSync(path)), 'the file equals the in-memory serialization');
    const f = await SafetensorsFile.open(path);
    try {
      for (const [key, t] of Object.entries(tensors)) checkRoundTrip(await f.readTensor(key), t, `disk ${key}`);
    } finally {
      await f.close();
    }
  });
});

test('float conversion on write: f16 and bf16 round to nearest even', () => {
  const vals = [0.1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 3.4e38, NaN, -0, 65520, 1e-8];
  const bytes = serializeSafetensors({
    h: { dtype: 'F16', shape: [vals.length], data: vals },
    b: { dtype: 'BF16', shape: [vals.length], data: vals },
  });
  const f = parseSafetensors(bytes);
  // Expected values are torch 1.13's float32 -> float16 / bfloat16 conversions of the same numbers.
  const h = Array.from(f.read('h'));
  const wantH = [0.0999755859375, 1.00390625, 1.01171875, -1.00390625, Infinity, NaN, -0, Infinity, 0];
  wantH.forEach((w, i) => assert.ok(Object.is(h[i], w), `f16 ${vals[i]}: ${h[i]} vs ${w}`));
  const b = Array.from(f.read('b'));
  const want = [0.10009765625, 1, 1.015625, -1, Infinity, NaN, -0, 65536, 1.0011717677116394e-8];
  want.forEach((w, i) => assert.ok(Object.is(b[i], w), `bf16 ${vals[i]}: ${b[i]} vs ${w}`));
});

test('corrupt files: errors name the file and the key', async () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [3], data_offsets: [8, 14] } };
  parseSafetensors(rawFile(good, 14)); // the control case is valid
  // Truncated: the data section ends before tensor "b" does.
  const full = rawFile(good, 14);
  await expectError(full.subarray(0, full.byteLength - 3), 'b', /run past the end of the data .*truncated/);
  await expectError(full.subarray(0, 5), undefined, /too short for the 8-byte header length/);
  await expectError(full.subarray(0, 40), undefined, /header length \d+ runs past the end of the file \(40 bytes\)/);
  await expectError(rawFile(good, 14, { length: 2n ** 60n }), undefined, /header length \d+ is absurd/);
  await expectError(rawFile(good, 14, { length: 10_000n }), undefined, /runs past the end of the file/);
  await expectError(rawFile('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', 8), undefined, /header is not valid JSON/);
  await expectError(rawFile('[1, 2, 3]', 0), undefined, /header is not a JSON object/);
  await expectError(rawFile('null', 0), undefined, /header is not a JSON object/);
  const badUtf8 = rawFile('{"a":1}', 0);
  badUtf8[10] = 0xff;
  await expectError(badUtf8, undefined, /not valid UTF-8/);
  await expectError(rawFile({ ...good, c: { dtype: 'F17', shape: [1], data_offsets: [14, 16] } }, 16), 'c', /unknown dtype "F17"/);
  await expectError(rawFile({ c: { dtype: 'constructor', shape: [1], data_offsets: [0, 4] } }, 4), 'c', /unknown dtype "constructor"/);
  await expectError(rawFile({ a: good.a, c: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), 'c', /overlap those of "a" \[0, 8\]/);
  await expectError(rawFile({ a: good.a, c: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 8), 'c', /data_offsets \[8, 12\] run past the end of the data \(8 bytes/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), 'a', /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/);
  await expectError(rawFile({ a: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 4] } }, 4), 'a', /needs 8 bytes/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8), 'a', /end before they begin/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), 'a', /not a list of non-negative integers/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4), 'a', /not a list of non-negative integers/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4), 'a', /data_offsets \[0\] is not \[begin, end\]/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [1] } }, 4), 'a', /data_offsets undefined/);
  await expectError(rawFile({ a: [1, 2] }, 0), 'a', /header entry is not an object/);
  await expectError(rawFile({ a: { dtype: 5, shape: [1], data_offsets: [0, 4] } }, 4), 'a', /dtype is 5/);
  await expectError(rawFile({ __metadata__: { format: 1 } }, 0), '__metadata__', /value of "format" is not a string/);
  await expectError(rawFile({ __metadata__: 'pt' }, 0), '__metadata__', /is not an object/);
  await expectError(rawFile({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 4] } }, 4), 'a', /too large/);
  // The format allows no holes, no trailing bytes, and no key twice.
  await expectError(rawFile({ a: good.a, c: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } }, 16), 'c', /bytes \[8, 12\) before it belong to no tensor/);
  await expectError(rawFile({ c: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), 'c', /bytes \[0, 4\) before it belong to no tensor/);
  await expectError(rawFile(good, 20), undefined, /6 bytes after the last tensor belong to none/);
  await expectError(rawFile('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 4), 'a', /appears twice in the header/);
  // Zero-byte tensors sit anywhere without overlapping.
  parseSafetensors(rawFile({ a: good.a, z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, 8));
});

test('reading: missing keys, integer tensors as floats, undecodable dtypes', async () => {
  const bytes = rawFile({
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    pos: { dtype: 'I64', shape: [1], data_offsets: [4, 12] },
    f8: { dtype: 'F8_E4M3', shape: [2], data_offsets: [12, 14] },
  }, 14);
  const f = parseSafetensors(bytes, 'x.safetensors');
  assert.throws(() => f.read('nope'), /^x\.safetensors: tensor "nope": is not in the file \(it has 3 tensors\)/);
  assert.throws(() => f.read('pos'), /x\.safetensors: tensor "pos": has dtype I64, expected a float tensor/);
  assert.throws(() => f.readTensor('f8'), /x\.safetensors: tensor "f8": dtype F8_E4M3 cannot be decoded/);
  assert.equal(f.info('f8').numel, 2);
  await withTmp(async (dir) => {
    const path = join(dir, 'x.safetensors');
    writeFileSync(path, bytes);
    const d = await SafetensorsFile.open(path);
    await assert.not.throws(() => d.info('a'));
    try {
      await d.read('nope');
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, `${path}: tensor "nope": is not in the file`);
    }
    await d.close();
    try {
      await d.read('a');
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /file is closed/);
    }
    // The file shrinking after open is reported, not returned as garbage.
    const d2 = await SafetensorsFile.open(path);
    writeFileSync(path, bytes.subarray(0, bytes.byteLength - 4));
    try {
      await d2.readBytes('f8');
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /tensor "f8": file ended after/);
    } finally {
      await d2.close();
    }
    try {
      await SafetensorsFile.open(join(dir, 'missing.safetensors'));
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /missing\.safetensors: cannot open \(ENOENT\)/);
    }
  });
});

test('sharded checkpoints load through model.safetensors.index.json', async () => {
  const dir = join(FIX, 'sharded');
  for (const opened of [await openSafetensors(dir), await ShardedSafetensors.open(join(dir, 'model.safetensors.index.json'))]) {
    try {
      assert.instance(opened, ShardedSafetensors);
      assert.equal(opened.keys().sort(), ['brain', 'half', 'position_ids', 'scalar', 'text.weight']);
      for (const key of opened.keys()) checkAgainstExpected(await opened.readTensor(key), expected.tensors[key], `sharded ${key}`);
      assert.equal(opened.metadata, { format: 'pt' });
      assert.equal((opened as ShardedSafetensors).indexMetadata, { total_size: 123 });
      assert.throws(() => opened.info('ids32'), /model\.safetensors\.index\.json: tensor "ids32": is not in the file/);
    } finally {
      await opened.close();
    }
  }
  const all = await loadSafetensorsFile(join(dir, 'model.safetensors.index.json'));
  assert.is(all.size, 5);

  await withTmp(async (tmp) => {
    const idx = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const shardA = 'model-00001-of-00002.safetensors';
    copyFileSync(join(dir, shardA), join(tmp, shardA));
    const tryIndex = async (index: unknown, pattern: RegExp) => {
      const p = join(tmp, 'model.safetensors.index.json');
      writeFileSync(p, typeof index === 'string' ? index : JSON.stringify(index));
      try {
        (await openSafetensors(tmp)).close();
        assert.unreachable(`no error for ${pattern}`);
      } catch (e) {
        if ((e as Error).name === 'Assertion') throw e;
        assert.instance(e, SafetensorsError);
        assert.match((e as Error).message, pattern);
      }
    };
    // The second shard is missing from this folder.
    await tryIndex(idx, /model-00002-of-00002\.safetensors: cannot open \(ENOENT\)/);
    await tryIndex({ weight_map: { ...idx.weight_map, extra: shardA } }, /model-00002/);
    await tryIndex({ weight_map: { 'text.weight': shardA, ghost: shardA } }, new RegExp(`${shardA}: tensor "ghost": is listed in model\\.safetensors\\.index\\.json but not in this shard`));
    await tryIndex({ weight_map: { a: '../secret.safetensors' } }, /tensor "a": weight_map names "\.\.\/secret\.safetensors"/);
    await tryIndex({ weight_map: { a: '/etc/passwd' } }, /tensor "a": weight_map names "\/etc\/passwd"/);
    await tryIndex({ weight_map: { a: 3 } }, /tensor "a": weight_map names 3/);
    await tryIndex({ metadata: {} }, /index has no "weight_map" object/);
    await tryIndex('{not json', /index is not valid JSON/);
    const ok = await (async () => {
      writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'text.weight': shardA, half: shardA } }));
      return openSafetensors(tmp);
    })();
    assert.equal(ok.keys(), ['text.weight', 'half']);
    await ok.close();
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    try {
      await openSafetensors(empty);
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /no weights found; looked for .*model\.safetensors and .*model\.safetensors\.index\.json/);
    }
  });
});

test('writer: argument errors name the key; writes are atomic', async () => {
  const w = (t: Record<string, TensorToWrite>, m?: Record<string, string>) => () => serializeSafetensors(t, m);
  assert.throws(w({ a: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3] } }), /serializeSafetensors: tensor "a": shape \[2, 3\] has 6 elements but the data has 3/);
  assert.throws(w({ a: { dtype: 'F8' as 'F32', shape: [1], data: [1] } }), /tensor "a": cannot write dtype "F8"/);
  assert.throws(w({ a: { dtype: 'U8' as 'F32', shape: [1], data: [1] } }), /tensor "a": cannot write dtype "U8"/);
  assert.throws(w({ __metadata__: { dtype: 'F32', shape: [1], data: [1] } }), /is reserved for metadata/);
  assert.throws(w({ a: { dtype: 'F32', shape: [-1], data: [] } }), /tensor "a": shape \[-1\]/);
  assert.throws(w({ a: { dtype: 'I32', shape: [1], data: [2 ** 31] } }), /tensor "a": element 0 \(2147483648\) is not an int32/);
  assert.throws(w({ a: { dtype: 'I64', shape: [1], data: [0.5] } }), /tensor "a": element 0 \(0.5\) is not a safe integer/);
  assert.throws(w({}, { format: 3 as unknown as string }), /"__metadata__": value of "format" is not a string/);
  const empty = parseSafetensors(serializeSafetensors({}));
  assert.equal(empty.keys(), []);

  await withTmp(async (dir) => {
    const path = join(dir, 'adapter_model.safetensors');
    await writeSafetensorsFile(path, { a: { dtype: 'F32', shape: [2], data: [1, 2] } });
    const before = readFileSync(path);
    // This error is raised while the tensor bytes are produced, i.e. after the temp file exists.
    try {
      await writeSafetensorsFile(path, { a: { dtype: 'F32', shape: [1], data: [5] }, b: { dtype: 'I32', shape: [1], data: [0.5] } });
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /tensor "b": element 0 \(0.5\) is not an int32/);
    }
    assert.equal(readFileSync(path), before, 'a failed write leaves the old file');
    assert.equal(readdirSync(dir), ['adapter_model.safetensors'], 'no temporary files left behind');
    await writeSafetensorsFile(path, { b: { dtype: 'BF16', shape: [1], data: [2] } }, { format: 'pt' });
    const f = parseSafetensors(readFileSync(path), path);
    assert.equal(f.keys(), ['b']);
    assert.equal(Array.from(f.read('b')), [2]);
    assert.equal(readdirSync(dir), ['adapter_model.safetensors']);
  });
});

test.run();
