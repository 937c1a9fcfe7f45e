/**
 * File-system errors in words a user can act on (Node). Node's own messages name the syscall and
 * whatever path it was given, which for an atomic write is a temporary name the user never chose
 * ("ENOSPC: no space left on device, write"), and a recursive mkdir on a read-only file system
 * reports ENOENT. These helpers name the file the user asked for and the real cause.
 */
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

const WORDS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this file system or limit',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** The errno code of a Node error, if it has one. */
export function fsCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** "no space left on the device (ENOSPC)"; a non-fs error's own message. */
export function describeFsError(e: unknown): string {
  const code = fsCode(e);
  if (!code) return (e as Error)?.message ?? String(e);
  return WORDS[code] ? `${WORDS[code]} (${code})` : code;
}

/** An fs failure on a file the user named, with the cause in words and no temporary names. */
export class FileAccessError extends Error {
  readonly code: string | undefined;
  constructor(readonly path: string, verb: string, cause: unknown) {
    super(`${path}: cannot ${verb} (${describeFsError(cause)})`);
    this.name = 'FileAccessError';
    this.code = fsCode(cause);
  }
}

/**
 * Why making `dir` failed: a recursive mkdir answers ENOENT where the nearest existing folder
 * above cannot be written (a read-only file system, for one), and EEXIST where that nearest
 * existing thing is a file; asking it tells the truth.
 */
function mkdirCause(dir: string, e: unknown): unknown {
  // EEXIST from mkdir -p: a file stands where a folder of the path should be.
  if (!['ENOENT', 'EEXIST', 'ENOTDIR'].includes(fsCode(e) ?? '')) return e;
  let up = resolve(dir);
  while (!existsSync(up) && dirname(up) !== up) up = dirname(up);
  try {
    if (!statSync(up).isDirectory()) return Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    accessSync(up, constants.W_OK);
  } catch (why) {
    return why;
  }
  return e;
}

/** Why making `dir` failed with `e`, in words ("read-only file system (EROFS)"). */
export function describeMkdirError(dir: string, e: unknown): string {
  return describeFsError(mkdirCause(dir, e));
}

/** mkdir -p, failing with one line that names `dir` and the real cause. */
export async function makeFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new FileAccessError(dir, 'create the folder', mkdirCause(dir, e));
  }
}

/** makeFolder, synchronously. */
export function makeFolderSync(dir: string): string | undefined {
  try {
    // The first folder created (mkdirSync's answer), undefined when `dir` existed.
    return mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new FileAccessError(dir, 'create the folder', mkdirCause(dir, e));
  }
}
