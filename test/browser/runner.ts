/**
 * The in-browser test runner (bundled by scripts/build-web.mjs --tests, loaded by index.html).
 * It imports the selected uvu test files one at a time and runs each file's queued suites on
 * uvu's runner. Results go to the page and, when test/browser/run.mjs drives the page, to the
 * launcher through `__testEvent` (a Playwright-exposed function).
 * Query parameters: `grep=REGEX` keeps only matching `file > test` names; `full=1` ignores the
 * per-file selection in suites.ts (every test of each file).
 */
import { selectFile, type TestRecord } from './uvu-select.js';
import { SUITES } from './suites.js';

export type TestEvent =
  | { kind: 'file'; file: string }
  | { kind: 'start'; file: string; name: string }
  | { kind: 'result'; record: TestRecord }
  | { kind: 'done'; summary: Summary };

export interface Summary {
  passed: number;
  failed: number;
  /** Tests suites.ts keeps out of the browser (they run in Node). */
  leftOut: number;
  /** Tests the `grep` parameter filtered out. */
  filtered: number;
  ms: number;
  adapter: string;
  failures: TestRecord[];
}

type UvuRun = () => Promise<[string | true, number, number, number]>;
interface UvuGlobals {
  UVU_QUEUE: [string | null, ...UvuRun[]][];
  UVU_INDEX?: number;
  __testEvent?: (json: string) => Promise<void>;
  __testSummary?: Summary;
}
const g = globalThis as unknown as UvuGlobals;

const out = document.getElementById('log')!;
function line(text: string, cls = ''): void {
  const div = document.createElement('div');
  div.textContent = text;
  if (cls) div.className = cls;
  out.append(div);
}

function describeError(e: unknown): string {
  return e instanceof Error ? (e.stack?.includes(e.message) ? e.stack : `${e.message}\n${e.stack ?? ''}`) : String(e);
}

async function emit(ev: TestEvent): Promise<void> {
  await g.__testEvent?.(JSON.stringify(ev));
}

async function adapterLine(): Promise<string> {
  const a = await navigator.gpu?.requestAdapter();
  if (!a) return 'no WebGPU adapter';
  const i = a.info;
  return `${[i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ')}; features: ${[...a.features].filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ')}`;
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const grep = params.get('grep') ? new RegExp(params.get('grep')!) : null;
  const full = params.get('full') === '1';
  const t0 = performance.now();
  const adapter = await adapterLine();
  line(`WebGPU: ${adapter}`);
  const summary: Summary = { passed: 0, failed: 0, leftOut: 0, filtered: 0, ms: 0, adapter, failures: [] };
  const record = async (r: TestRecord) => {
    if (r.ok) summary.passed++;
    else {
      summary.failed++;
      summary.failures.push(r);
    }
    line(`${r.ok ? 'ok  ' : 'FAIL'} ${r.file} > ${r.name} (${(r.ms / 1000).toFixed(2)} s)${r.error ? `\n     ${r.error}` : ''}`, r.ok ? 'ok' : 'fail');
    await emit({ kind: 'result', record: r });
  };
  for (const s of SUITES) {
    const keep = (name: string): boolean => {
      if (!full && s.keep && !s.keep.some((re) => re.test(name))) summary.leftOut++;
      else if (grep && !grep.test(`${s.file} > ${name}`)) summary.filtered++;
      else return true;
      return false;
    };
    const pending: Promise<void>[] = [];
    let running = '';
    selectFile({
      file: s.file,
      keep,
      onStart: (name) => { running = name; pending.push(emit({ kind: 'start', file: s.file, name })); },
      onResult: (r) => { running = ''; pending.push(record(r)); },
    });
    await emit({ kind: 'file', file: s.file });
    g.UVU_QUEUE.push([s.file]);
    g.UVU_INDEX = g.UVU_QUEUE.length - 1;
    try {
      await s.load();
      const [, ...runs] = g.UVU_QUEUE[g.UVU_INDEX];
      for (const run of runs) {
        const failedBefore = summary.failed;
        let result: Awaited<ReturnType<UvuRun>>;
        try {
          result = await run();
        } catch (e) {
          // An after hook that throws escapes uvu's runner.
          await Promise.all(pending.splice(0));
          await record({ file: s.file, name: '(suite hooks)', ok: false, ms: 0, error: describeError(e) });
          continue;
        }
        const [errors, ran, , total] = result;
        await Promise.all(pending.splice(0));
        if (summary.failed > failedBefore) continue;
        // uvu returns (and does not throw) when a before or after hook throws, so a suite whose
        // tests did not all pass without a failing test record failed in a hook.
        if (errors !== true || ran < total) {
          const detail = errors !== true ? errors.replace(/\x1b\[[0-9;]*m/g, '') : `${total - ran} of ${total} tests did not run or did not finish`;
          await record({ file: s.file, name: running || '(suite hooks)', ok: false, ms: 0, error: detail });
        }
      }
    } catch (e) {
      await record({ file: s.file, name: '(loading the test file)', ok: false, ms: 0, error: describeError(e) });
    }
    await Promise.all(pending.splice(0));
    selectFile(null);
  }
  summary.ms = performance.now() - t0;
  line(`${summary.failed ? 'FAILED' : 'PASSED'}: ${summary.passed} passed, ${summary.failed} failed, ${summary.leftOut} left to Node, ${summary.filtered} filtered out; ${(summary.ms / 1000).toFixed(1)} s`, summary.failed ? 'fail' : 'ok');
  document.title = `${summary.failed ? 'FAIL' : 'PASS'} browser tests`;
  document.body.dataset.done = summary.failed ? 'fail' : 'pass';
  g.__testSummary = summary;
  await emit({ kind: 'done', summary });
}

main().catch(async (e) => {
  const error = describeError(e);
  line(`runner error: ${error}`, 'fail');
  const summary: Summary = { passed: 0, failed: 1, leftOut: 0, filtered: 0, ms: 0, adapter: '', failures: [{ file: '(runner)', name: '(runner)', ok: false, ms: 0, error }] };
  g.__testSummary = summary;
  await emit({ kind: 'done', summary });
});
