/**
 * Stands in for `uvu` in the browser test bundle (scripts/build-web.mjs resolves `uvu` here; this
 * module's own `uvu` import is the real one). The tests still run on uvu's runner; this layer
 * keeps only the tests the browser selection names and records each test's name, time and error.
 */
import { suite as uvuSuite, type Callback, type Test } from 'uvu';

export interface TestRecord {
  file: string;
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

interface Selection {
  file: string;
  keep: (name: string) => boolean;
  onStart: (name: string) => void;
  onResult: (r: TestRecord) => void;
}

let current: Selection | null = null;

// uvu reads UVU_DEFER when it loads; without it uvu would start every queued suite by itself,
// concurrently with the runner. index.html sets it in a classic script before any module.
if (!(globalThis as { UVU_DEFER?: unknown }).UVU_DEFER) {
  throw new Error('UVU_DEFER must be set before uvu loads (see test/browser/index.html)');
}

/** Tests registered from now on belong to `sel.file` and are filtered by `sel.keep`. */
export function selectFile(sel: Selection | null): void {
  current = sel;
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    // Assertion messages carry the detail; the stack helps with thrown errors.
    const stack = e.stack && !e.name.startsWith('Assertion') ? `\n${e.stack.split('\n').slice(1, 6).join('\n')}` : '';
    return `${e.name}: ${e.message}${stack}`;
  }
  return String(e);
}

function wrap<T>(inner: Test<T>, suiteName: string): Test<T> {
  const register = (name: string, fn: Callback<T>): void => {
    const sel = current;
    const full = suiteName ? `${suiteName} > ${name}` : name;
    if (!sel) throw new Error(`test "${full}" registered outside a selected test file`);
    if (!sel.keep(full)) return;
    inner(name, async (ctx) => {
      sel.onStart(full);
      const t0 = performance.now();
      try {
        await fn(ctx);
        sel.onResult({ file: sel.file, name: full, ok: true, ms: performance.now() - t0 });
      } catch (e) {
        sel.onResult({ file: sel.file, name: full, ok: false, ms: performance.now() - t0, error: describe(e) });
        throw e;
      }
    });
  };
  return Object.assign(register, {
    only: inner.only,
    skip: inner.skip,
    before: inner.before,
    after: inner.after,
    run: inner.run,
  }) as Test<T>;
}

export function suite<T = Record<string, unknown>>(title?: string, context?: T): Test<T> {
  return wrap(uvuSuite(title, context), title ?? '');
}

export const test = suite();
