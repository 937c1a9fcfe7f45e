/** Node-only: checks an output path's folder before the work whose result goes there. */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './args.js';

/** Throws a usage error naming the flag when the folder `file` would be written into is missing. */
export function checkOutputFolder(flag: string, file: string): void {
  const dir = dirname(resolve(file));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`--${flag} ${file}: the folder ${dir} does not exist (create it first; nothing was computed)`);
  }
}
