/**
 * Browser variant of ./fixtures.ts (swapped in by scripts/build-web.mjs): the same functions,
 * fetching from scripts/serve.mjs, which serves test/fixtures at /fixtures/ and ../shared at /shared/.
 */

function checkRel(rel: string): void {
  if (rel.startsWith('/') || rel.split('/').includes('..')) throw new Error(`fixture path must be relative and stay inside its folder: ${rel}`);
}

async function read(prefix: string, rel: string, what: string): Promise<Uint8Array> {
  checkRel(rel);
  const url = new URL(`${prefix}${rel.split('/').map(encodeURIComponent).join('/')}`, location.origin).href;
  let res: Response;
  try {
    res = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`${what} ${rel} could not be fetched from ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`${what} ${rel} could not be fetched from ${url} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

export function fixtureBytes(rel: string): Promise<Uint8Array> {
  return read('/fixtures/', rel, 'test fixture');
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
  return read('/shared/', rel, 'shared file (expected in ../shared beside the repository)');
}
