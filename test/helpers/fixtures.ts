/**
 * Test fixture files, read the same way in Node and in the browser: Node reads them from disk
 * here; the browser variant (./fixtures-browser.ts) fetches them from scripts/serve.mjs.
 *   fixture paths: relative to test/fixtures/ (served at /fixtures/)
 *   shared paths:  relative to ../shared/ beside the repository (served at /shared/), for files
 *                  deliberately not committed, such as the CLIP vocabulary
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to build/test/helpers/, so the repository root is three levels up.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures');
const SHARED = resolve(ROOT, '..', 'shared');

function checkRel(rel: string): void {
  if (rel.startsWith('/') || rel.split('/').includes('..')) throw new Error(`fixture path must be relative and stay inside its folder: ${rel}`);
}

async function read(base: string, rel: string, what: string): Promise<Uint8Array> {
  checkRel(rel);
  const path = join(base, rel);
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${rel} could not be read from ${path}${code ? ` (${code})` : ''}`);
  }
}

export function fixtureBytes(rel: string): Promise<Uint8Array> {
  return read(FIXTURES, rel, 'test fixture');
}

export async function fixtureText(rel: string): Promise<string> {
  return new TextDecoder().decode(await fixtureBytes(rel));
}

export async function fixtureJson<T = unknown>(rel: string): Promise<T> {
  const text = await fixtureText(rel);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`test fixture ${rel} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A file from ../shared (not committed; CI keeps it beside the clone). */
export function sharedBytes(rel: string): Promise<Uint8Array> {
  return read(SHARED, rel, 'shared file (expected in ../shared beside the repository)');
}
