/**
 * Putting a finished folder in place of another (Node). Renames are atomic but a folder cannot
 * be renamed over a non-empty one, so the old folder is renamed aside first and removed after:
 * at every moment the target is the old folder, absent, or the new one, never a mix.
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { FileAccessError } from './fs-errors-node.js';

/** Renames `from` to `to`, replacing a folder already at `to`. Both must be on one file system. */
export async function replaceFolder(from: string, to: string): Promise<void> {
  const aside = `${to}.old-${process.pid}`;
  const had = existsSync(to);
  try {
    if (had) await rename(to, aside);
    await rename(from, to);
  } catch (e) {
    // Put the old folder back where the new one could not go.
    if (had && !existsSync(to) && existsSync(aside)) await rename(aside, to).catch(() => undefined);
    throw new FileAccessError(to, 'put the finished folder in place', e);
  }
  if (had) await rm(aside, { recursive: true, force: true });
}
