/**
 * Atomic file writes (Node): the bytes go to a temporary file beside the target (same folder, so
 * the rename stays on one file system), are flushed to disk, and the temporary file is renamed
 * over the target. A crash or an error leaves the old file (or none) under the real name, never a
 * half-written one; on error the temporary file is removed.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileAccessError, fsCode } from './fs-errors-node.js';

/**
 * Runs `write` on a fresh temporary file beside `path`, then syncs it and renames it over `path`.
 * A file-system error (a full disk, a read-only file system) names `path`, never the temporary
 * file, whose name means nothing to the user.
 */
export async function writeAtomicWith(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (e) {
    throw writeError(path, e);
  }
  try {
    await write(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw writeError(path, e);
  }
}

/** An fs error becomes one naming `path`; any other error (the caller's own) passes unchanged. */
function writeError(path: string, e: unknown): unknown {
  return fsCode(e) && !(e instanceof FileAccessError) ? new FileAccessError(path, 'write', e) : e;
}

/** Writes bytes (or UTF-8 text) to `path` atomically. */
export function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  return writeAtomicWith(path, (fh) => fh.writeFile(data));
}

/** Writes `value` as indented JSON with a final newline, atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
