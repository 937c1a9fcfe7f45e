/**
 * What ./fixtures.ts (Node, from disk) and ./fixtures-browser.ts (fetched) share: the path check
 * and the typed readers. Each variant supplies only how bytes are got. Browser-safe.
 */

/** test/fixtures, or the repository's shipped models and assets (models/). */
export type FixtureRoot = 'fixtures' | 'models';

/** Reads `rel` under `root`; `what` names the kind of file in error messages. */
export type ReadFixture = (root: FixtureRoot, rel: string, what: string) => Promise<Uint8Array>;

export interface FixtureReaders {
  fixtureBytes(rel: string): Promise<Uint8Array>;
  fixtureText(rel: string): Promise<string>;
  fixtureJson<T = unknown>(rel: string): Promise<T>;
  /** A file the repository ships under models/ (e.g. models/openai-bpe/bpe_simple_vocab_16e6.txt.gz). */
  repoBytes(rel: string): Promise<Uint8Array>;
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
    async repoBytes(rel: string) {
      checkRel(rel);
      if (!rel.startsWith('models/')) throw new Error(`repoBytes reads the repository's models/ folder only: ${rel}`);
      return read('models', rel.slice('models/'.length), 'shipped file');
    },
  };
}
