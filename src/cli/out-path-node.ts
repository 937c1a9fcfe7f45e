/** Node-only: makes an output path's folder before the work whose result goes there. */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './args.js';
import { describeMkdirError } from '../io/fs-errors-node.js';
import { noteCreatedFolders } from './created-folders-node.js';

/**
 * Creates the folder `file` will be written into (as the write would), now rather than after
 * the work, and throws a usage error naming the flag when that is impossible. Created folders
 * go again if the run fails while they are still empty.
 */
export function prepareOutputFolder(flag: string, file: string): void {
  const dir = dirname(resolve(file));
  try {
    noteCreatedFolders(dir, mkdirSync(dir, { recursive: true }));
  } catch (e) {
    throw new UsageError(`--${flag} ${file}: cannot create the folder ${dir} (${describeMkdirError(dir, e)}); nothing was computed`);
  }
}
