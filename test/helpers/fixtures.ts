/**
 * Test fixture files, read the same way in Node and in the browser: Node reads them from disk
 * here; the browser variant (./fixtures-browser.ts) fetches them from scripts/serve.mjs.
 *   fixture paths: relative to test/fixtures/ (served at /fixtures/)
 *   repo paths:    models/... in the repository (served at /models/), such as the shipped CLIP
 *                  vocabulary
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureReaders } from './fixture-readers.js';

// Compiled to build/test/helpers/, so the repository root is three levels up.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BASE = { fixtures: join(ROOT, 'test', 'fixtures'), models: join(ROOT, 'models') };

export const { fixtureBytes, fixtureText, fixtureJson, repoBytes } = fixtureReaders(async (root, rel, what) => {
  const path = join(BASE[root], rel);
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${rel} could not be read from ${path}${code ? ` (${code})` : ''}`);
  }
});
