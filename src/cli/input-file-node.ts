/** Node-only: checks the files a CLI's flags name before any work, so an error names the flag. */
import { readFailure, regularFileSize } from '../io/read-file-node.js';

/**
 * Throws `--flag PATH: reason` unless each path is a regular file (a FIFO, device or folder is
 * refused by a stat, without opening it). Checked up front, so a bad path fails in a moment
 * rather than after a model has loaded; the read itself is bounded again where it happens.
 */
export function requireInputFiles(flag: string, paths: string | readonly string[] | undefined): void {
  for (const path of typeof paths === 'string' ? [paths] : paths ?? []) {
    try {
      regularFileSize(path);
    } catch (e) {
      throw new Error(`--${flag} ${path}: ${readFailure(e)}`);
    }
  }
}
