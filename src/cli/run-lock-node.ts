/**
 * Node-only: one run per output folder. A run takes `OUT/.negclip.lock` (created exclusively:
 * the tool, its pid, the process's start time and when it began) and removes it when the
 * process exits. A lock whose process is gone (killed with SIGKILL, a crash, a reboot) is stale:
 * it is reported and taken over. A pid is trusted only together with its start time, so a
 * recycled pid does not keep a folder locked.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describeFsError, makeFolderSync } from '../io/fs-errors-node.js';
import { beforeFailedExitCleanup, noteCreatedFolders } from './created-folders-node.js';

export const LOCK_NAME = '.negclip.lock';

interface LockRecord {
  tool: string;
  pid: number;
  /** The process's start time in clock ticks since boot (Linux /proc), or null elsewhere. */
  start: number | null;
  since: string;
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

function alive(rec: LockRecord): boolean {
  try {
    process.kill(rec.pid, 0);
  } catch (e) {
    // EPERM: the process exists but is not ours to signal.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (rec.start === null) return true;
  const now = processStart(rec.pid);
  return now === null || now === rec.start;
}

export class OutputLockedError extends Error {}

const held = new Set<string>();

function releaseAll(): void {
  for (const file of held) rmSync(file, { force: true });
  held.clear();
}
// A failed run's empty output folder is removed at exit: its lock file goes first.
beforeFailedExitCleanup(releaseAll);

/**
 * Takes the lock of `dir` (created if missing) for `tool`, or throws OutputLockedError naming the
 * process that holds it. `note` hears about a stale lock taken over. The lock goes when the
 * process exits, however it exits short of SIGKILL (whose stale lock the next run takes over).
 * `name` locks one output inside a shared folder instead of the folder (eval.js's report file).
 */
export function lockOutput(dir: string, tool: string, note: (line: string) => void = () => {}, name = LOCK_NAME): void {
  noteCreatedFolders(dir, makeFolderSync(dir));
  const file = join(dir, name);
  const what = name === LOCK_NAME ? dir : join(dir, name.replace(/^\.(.*)\.lock$/, '$1'));
  if (held.has(file)) return;
  const rec: LockRecord = { tool, pid: process.pid, start: processStart(process.pid), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${dir}: cannot take the output lock ${file} (${describeFsError(e)})`);
      let other: LockRecord | null = null;
      try {
        other = JSON.parse(readFileSync(file, 'utf8')) as LockRecord;
      } catch {
        // Half-written by a process killed while taking it: as stale as a dead pid.
      }
      if (other && typeof other.pid === 'number' && alive(other)) {
        throw new OutputLockedError(`${what} is in use by ${other.tool} (pid ${other.pid}, since ${other.since}); one run per output: wait for it, or choose another --out`);
      }
      note(`${what}: taking over a stale lock${other ? ` of ${other.tool} (pid ${other.pid}, since ${other.since}), whose process is gone` : ''}`);
      rmSync(file, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(rec)}\n`);
    } finally {
      closeSync(fd);
    }
    if (held.size === 0) process.once('exit', releaseAll);
    held.add(file);
    return;
  }
  throw new OutputLockedError(`${what}: another run took the output lock at the same moment; one run per output`);
}
