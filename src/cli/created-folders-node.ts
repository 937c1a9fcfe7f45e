/**
 * Node-only: output folders a CLI run created before its work, removed again when the run fails
 * and they are still empty, so a run refused for bad input leaves no empty `train-out/` behind.
 * A folder that holds anything (a checkpoint, a user's files) is never touched.
 */
import { rmdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const created = new Set<string>();
let hooked = false;
const beforeCleanup: (() => void)[] = [];

/** Runs `fn` (e.g. releasing this process's output locks) before empty folders are removed at a failed exit. */
export function beforeFailedExitCleanup(fn: () => void): void {
  beforeCleanup.push(fn);
}

/**
 * Notes the folders `mkdirSync(dir, { recursive: true })` created: `firstCreated` (its return
 * value) down to `dir`. Nothing when it created none.
 */
export function noteCreatedFolders(dir: string, firstCreated: string | undefined): void {
  if (firstCreated === undefined) return;
  const top = resolve(firstCreated);
  for (let d = resolve(dir); ; d = dirname(d)) {
    created.add(d);
    if (d === top || d === dirname(d)) break;
  }
  if (!hooked) {
    hooked = true;
    process.once('exit', (code) => {
      if (code === 0) return;
      for (const fn of beforeCleanup) fn();
      removeEmptyCreatedFolders();
    });
  }
}

/** Removes the noted folders that are empty, deepest first; a non-empty one stays. */
export function removeEmptyCreatedFolders(): void {
  for (const d of [...created].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch {
      // Not empty, or already gone: it stays as it is.
    }
    created.delete(d);
  }
}
