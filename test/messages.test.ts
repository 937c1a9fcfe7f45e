/**
 * Messages users see when the file system says no (a full disk, a read-only file system) and
 * while a long build runs: the file the user asked for is named, never a temporary one, the
 * cause is the real one, and a long build says how far it is.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAtomicWith, writeFileAtomic } from '../src/io/atomic-write-node.js';
import { Progress } from '../src/cli/progress-node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATA_CLI = join(ROOT, 'build', 'src', 'data.js');
const TRACE_CLI = join(ROOT, 'build', 'src', 'trace.js');
const EMBED_CLI = join(ROOT, 'build', 'src', 'embed.js');
const TMP = mkdtempSync(join(tmpdir(), 'messages-'));

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });

test('an atomic write that hits a full disk names the file being written, not its temporary file, and leaves nothing', async () => {
  const target = join(TMP, 'report.json');
  try {
    await writeAtomicWith(target, async () => { throw enospc(); });
    assert.unreachable('the write must fail');
  } catch (e) {
    assert.is((e as Error).message, `${target}: cannot write (no space left on the device (ENOSPC))`);
    assert.is((e as { code?: string }).code, 'ENOSPC');
  }
  assert.equal(readdirSync(TMP).filter((n) => n.includes('report')), [], 'no temporary file left');
  // Into a folder that is not there: the target is named, with the cause in words.
  await writeFileAtomic(join(TMP, 'nowhere', 'x.json'), '{}').then(
    () => assert.unreachable('must fail'),
    (e: Error) => assert.match(e.message, /nowhere\/x\.json: cannot write \(no such file or folder \(ENOENT\)\)$/),
  );
  // The caller's own errors pass through as they are.
  await writeAtomicWith(join(TMP, 'y.json'), async () => { throw new RangeError('mine'); }).then(
    () => assert.unreachable('must fail'),
    (e: Error) => assert.is(e.message, 'mine'),
  );
});

/** Runs `script` as root of a private mount namespace with a tmpfs at `dir`; null where that is not possible. */
function inTmpfs(dir: string, mountOpts: string, script: string): { status: number | null; stdout: string; stderr: string } | null {
  if (process.platform !== 'linux' || spawnSync('unshare', ['-rm', 'true']).status !== 0) return null;
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', `mkdir -p "$1" && mount -t tmpfs -o ${mountOpts} tmpfs "$1" || exit 99; ${script}`, 'sh', dir], { encoding: 'utf8' });
  return r.status === 99 ? null : r;
}

test('a full disk during data.js build: one line naming the file under --out, no temporary names, no folder left', () => {
  const dir = join(TMP, 'small');
  const r = inTmpfs(dir, 'size=256k', `node ${JSON.stringify(DATA_CLI)} build --from world --world-count 300 --out "$1/out"; echo "status $?"; ls -A "$1"`);
  if (!r) return console.log('  (skipped: no unshare/mount namespaces here)');
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`^data: ${dir}/out/\\S+: cannot write \\(no space left on the device \\(ENOSPC\\)\\)$`));
  assert.not.match(r.stderr, /\.tmp|\.build-/);
  assert.equal(r.stdout.trim().split('\n'), ['status 1'], 'nothing is left on the full file system');
});

test('a read-only file system is named as such, not as ENOENT from mkdir', () => {
  const dir = join(TMP, 'ro');
  const r = inTmpfs(dir, 'ro,size=64k', [
    `node ${JSON.stringify(DATA_CLI)} build --from world --world-count 3 --out "$1/sub/out"`,
    `node ${JSON.stringify(TRACE_CLI)} --model m --pairs p.jsonl --out "$1/sub/t"`,
    `node ${JSON.stringify(EMBED_CLI)} --model m --text x --out "$1/sub/e.json"`,
    `node ${JSON.stringify(DATA_CLI)} build --from world --world-count 3 --out "$1/out"`,
  ].join('; '));
  if (!r) return console.log('  (skipped: no unshare/mount namespaces here)');
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 4, r.stderr);
  assert.match(lines[0]!, new RegExp(`^data: --out ${dir}/sub/out: cannot create the folder ${dir}/sub \\(read-only file system \\(EROFS\\)\\)$`));
  assert.match(lines[1]!, new RegExp(`^trace: --out ${dir}/sub/t/cte\\.json: cannot create the folder ${dir}/sub/t \\(read-only file system \\(EROFS\\)\\); nothing was computed$`));
  assert.match(lines[2]!, /^embed: --out \S+e\.json: cannot create the folder \S+ \(read-only file system \(EROFS\)\); nothing was computed$/);
  assert.match(lines[3]!, new RegExp(`^data: --out ${dir}/out: cannot write in ${dir} \\(read-only file system \\(EROFS\\)\\)$`));
  assert.not.match(r.stderr, /ENOENT|mkdir/);
});

test('Progress: silent for a quick run, then a line per interval; in place at a terminal; nothing with --quiet', () => {
  let t = 0;
  const out: string[] = [];
  const p = new Progress('data', true, { firstMs: 2000, everyMs: 10_000, tty: false, now: () => t, write: (s) => out.push(s) });
  const tick = (ms: number) => { t = ms; p.update(() => `at ${ms}`); };
  for (const ms of [0, 1000, 1999, 2000, 2500, 11_999, 12_000]) tick(ms);
  p.done();
  assert.equal(out, ['data: at 2000\n', 'data: at 12000\n']);

  const tty: string[] = [];
  t = 0;
  const q = new Progress('data', true, { firstMs: 0, everyMs: 250, tty: true, now: () => t, write: (s) => tty.push(s) });
  q.update(() => 'a');
  t = 100;
  q.update(() => 'b');
  t = 300;
  q.update(() => 'c');
  q.done();
  assert.equal(tty, ['\rdata: a\x1b[K', '\rdata: c\x1b[K', '\n']);

  const none: string[] = [];
  const quiet = new Progress('data', false, { firstMs: 0, now: () => 1e9, write: (s) => none.push(s) });
  quiet.update(() => 'x');
  quiet.done();
  assert.equal(none, []);
});

test('data.js build shows progress on stderr (phase and counts), and none with --quiet', () => {
  const env = { ...process.env, NEGCLIP_PROGRESS_FIRST_MS: '0' };
  const args = [DATA_CLI, 'build', '--from', 'world', '--world-count', '24'];
  const r = spawnSync('node', [...args, '--out', join(TMP, 'progress')], { encoding: 'utf8', env });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /^data: rendering world images: 0\/24$/m);
  const q = spawnSync('node', [...args, '--out', join(TMP, 'quiet'), '--quiet'], { encoding: 'utf8', env });
  assert.is(q.status, 0, q.stderr);
  assert.is(q.stderr, '');
  assert.ok(existsSync(join(TMP, 'quiet', 'dataset.json')));
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
