/**
 * What ./fixtures.ts (Node, from disk) and ./fixtures-browser.ts (fetched) share: the path check
 * and the typed readers. Each variant supplies only how bytes are got. Browser-safe.
 */

/** test/fixtures, or ../shared beside the repository (files deliberately not committed). */
export type FixtureRoot = 'fixtures' | 'shared';

/** Reads `rel` under `root`; `what` names the kind of file in error messages. */
export type ReadFixture = (root: FixtureRoot, rel: string, what: string) => Promise<Uint8Array>;

export interface FixtureReaders {
  fixtureBytes(rel: string): Promise<Uint8Array>;
  fixtureText(rel: string): Promise<string>;
  fixtureJson<T = unknown>(rel: string): Promise<T>;
  /** A file from ../shared (not committed; CI keeps it beside the clone). */
  sharedBytes(rel: string): Promise<Uint8Array>;
}

function checkRel(rel: string): void {
  if (rel.startsWith('/') || rel.split('/').includes('..')) throw new Error(`fixture path must be relative and stay inside its folder: ${rel}`);
}

export function fixtureReaders(read: ReadFixture): FixtureReaders {
  const fixtureBytes = async (rel: string) => {
    checkRel(rel);
    return read('fixtures', rel, 'test fixture');
  };
  const fixtureText = async (rel: string) => new TextDecoder().decode(await fixtureBytes(rel));
  return {
    fixtureBytes,
    fixtureText,
    async fixtureJson<T = unknown>(rel: string): Promise<T> {
      const text = await fixtureText(rel);
      try {
        return JSON.parse(text) as T;
      } catch (e) {
        throw new Error(`test fixture ${rel} is not valid JSON: ${(e as Error).message}`);
      }
    },
    async sharedBytes(rel: string) {
      checkRel(rel);
      return read('shared', rel, 'shared file (expected in ../shared beside the repository)');
    },
  };
}
