/**
 * Browser variant of ./fixtures.ts (swapped in by scripts/build-web.mjs): the same functions,
 * fetching from scripts/serve.mjs, which serves test/fixtures at /fixtures/ and models/ at /models/.
 */
import { fixtureReaders } from './fixture-readers.js';

export const { fixtureBytes, fixtureText, fixtureJson, repoBytes } = fixtureReaders(async (root, rel, what) => {
  const url = new URL(`/${root}/${rel.split('/').map(encodeURIComponent).join('/')}`, location.origin).href;
  let res: Response;
  try {
    res = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`${what} ${rel} could not be fetched from ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`${what} ${rel} could not be fetched from ${url} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
});
