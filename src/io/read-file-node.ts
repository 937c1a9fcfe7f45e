/**
 * Reading user-given files (Node): regular files only, and never more than their format allows.
 * A path may name /dev/zero (endless: a whole-file read grows until memory runs out), a FIFO
 * (open() waits for a writer that never comes), a folder, a socket or a device. Each is refused
 * by name after a stat and before any open; the file is then opened non-blocking and checked
 * again on its descriptor, so a path swapped in between cannot hang or feed the read. Sizes come
 * from stat, so a file over its format's limit (a sparse 1.5 GB one included) is refused before
 * a byte of it is read.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';

/** Most bytes of a JSON or text configuration read whole (config.json, cte.json, adapter_config.json, tokenizer and index files). */
export const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/** Most bytes of a data file read whole as text (JSONL, CSV): UTF-8 never decodes to more characters than bytes, so it fits one string. */
export const MAX_TEXT_BYTES = bufferConstants.MAX_STRING_LENGTH;

/** Most bytes of a binary file read whole into one buffer (adapter weights, data shards). */
export const MAX_BINARY_BYTES = 2 ** 31 - 1;

export class FileReadError extends Error {
  override name = 'FileReadError';
  /** `code` is the errno name (ENOENT, EACCES...) when the system refused, else undefined. */
  constructor(readonly path: string, readonly reason: string, readonly code?: string) {
    super(`${path}: ${reason}`);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'something else';
}

function systemError(path: string, e: unknown): FileReadError {
  const code = (e as NodeJS.ErrnoException).code;
  return new FileReadError(path, `cannot read (${code ?? (e as Error).message})`, code);
}

function refuseIrregular(path: string, st: Stats): void {
  if (!st.isFile()) throw new FileReadError(path, `${kindOf(st)}, not a regular file: only regular files are read`);
}

function refuseOversize(path: string, size: number, maxBytes: number, what: string): void {
  if (size > maxBytes) throw new FileReadError(path, `${size} bytes, over the ${mib(maxBytes)} limit for ${what}: not read`);
}

function mib(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n}-byte`;
}

// O_NONBLOCK: opening a FIFO swapped in after the stat returns at once instead of waiting for a writer.
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

/** Stats `path` (links followed) and returns its size; throws unless it is a regular file. Opens nothing. */
export function regularFileSize(path: string): number {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    throw systemError(path, e);
  }
  refuseIrregular(path, st);
  return st.size;
}

/** Whether `path` is a regular file (links followed); false for anything else, or nothing. */
export function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Opens a regular file for reading; the caller closes the descriptor. */
export function openRegularSync(path: string): { fd: number; size: number } {
  regularFileSize(path);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw systemError(path, e);
  }
  try {
    const st = fstatSync(fd);
    refuseIrregular(path, st);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Opens a regular file for reading; the caller closes the handle. */
export async function openRegular(path: string): Promise<{ fh: FileHandle; size: number }> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (e) {
    throw systemError(path, e);
  }
  refuseIrregular(path, st);
  let fh: FileHandle;
  try {
    fh = await open(path, OPEN_FLAGS);
  } catch (e) {
    throw systemError(path, e);
  }
  try {
    const st2 = await fh.stat();
    refuseIrregular(path, st2);
    return { fh, size: st2.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Reads up to `length` bytes at `position`; fewer only where the file ends first. */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * A regular file's bytes, refused unread when it is over `maxBytes` (`what` names the format
 * in that message). Reads the size stat gave, no more, so a file growing meanwhile stays bounded.
 */
export function readRegularFileSync(path: string, maxBytes: number, what: string): Buffer {
  const { fd, size } = openRegularSync(path);
  try {
    refuseOversize(path, size, maxBytes, what);
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return done === size ? buf : buf.subarray(0, done);
  } catch (e) {
    throw e instanceof FileReadError ? e : systemError(path, e);
  } finally {
    closeSync(fd);
  }
}

/** As readRegularFileSync, asynchronously. */
export async function readRegularFile(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const { fh, size } = await openRegular(path);
  try {
    refuseOversize(path, size, maxBytes, what);
    const bytes = await readAt(fh, 0, size);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (e) {
    throw e instanceof FileReadError ? e : systemError(path, e);
  } finally {
    await fh.close();
  }
}

/** A regular file as UTF-8 text, within `maxBytes`. */
export function readRegularTextSync(path: string, maxBytes: number, what: string): string {
  return readRegularFileSync(path, maxBytes, what).toString('utf8');
}

/** As readRegularTextSync, asynchronously. */
export async function readRegularText(path: string, maxBytes: number, what: string): Promise<string> {
  return (await readRegularFile(path, maxBytes, what)).toString('utf8');
}

/** The reason of a FileReadError (its message without the path), else the error's message. */
export function readFailure(e: unknown): string {
  return e instanceof FileReadError ? e.reason : String((e as Error)?.message ?? e);
}
