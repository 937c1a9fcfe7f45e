#!/usr/bin/env node
// `npm run test:browser`: builds the browser bundles, serves them on 127.0.0.1, runs the in-browser
// test suites (test/browser/suites.ts) and an end-to-end check of the demo page in headless
// Chromium, prints a summary, and saves a screenshot of the demo page into test-output/browser/.
// Exits 1 on any failure, 2 when Chromium is missing or the set-up fails.
// Options: --grep REGEX (keep matching `file > test` names), --full (every test of each selected
//          file), --timeout SECONDS (whole run; default 900), --no-build, --verbose (page console),
//          --if-available (exit 0 with a note when Chromium is not installed: for `npm test`).
// Environment: CHROMIUM_PATH (default /usr/bin/chromium).
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { buildBrowserTests, buildSite } from '../../scripts/build-web.mjs';
import { startServer } from '../../scripts/serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = join(ROOT, 'test-output', 'browser');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'];

function parseArgs(argv) {
  const o = { grep: null, full: false, timeoutS: 900, build: true, verbose: false, ifAvailable: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--grep') o.grep = argv[++i];
    else if (a === '--full') o.full = true;
    else if (a === '--timeout') o.timeoutS = Number(argv[++i]);
    else if (a === '--no-build') o.build = false;
    else if (a === '--verbose') o.verbose = true;
    else if (a === '--if-available') o.ifAvailable = true;
    else throw new Error(`unknown argument ${a} (options: --grep REGEX, --full, --timeout SECONDS, --no-build, --verbose, --if-available)`);
  }
  if (o.grep !== null) new RegExp(o.grep); // a bad pattern fails here, not in the page
  if (!(o.timeoutS > 0)) throw new Error('--timeout must be a positive number of seconds');
  return o;
}

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

async function writeAtomic(path, text) {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** Forwards page errors (and with --verbose, console output) so a broken page explains itself. */
const consoleErrors = [];

function watchPage(page, label, verbose, problems) {
  page.on('pageerror', (e) => {
    problems.push(`${label}: uncaught ${e.message}`);
    console.log(`  [${label} page error] ${e.message}`);
  });
  page.on('crash', () => {
    problems.push(`${label}: the page crashed`);
    console.log(`  [${label}] the page crashed`);
  });
  page.on('console', (m) => {
    // uvu's progress dots go to console.log and tests that expect errors (a 404 fixture) log
    // them, so the console is shown with --verbose; on failure the last errors are printed.
    const text = `[${label} console.${m.type()}] ${m.text()}`;
    if (verbose) console.log(`  ${text}`);
    else if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(text);
  });
}

async function runSuites(browser, base, opts, problems, state) {
  const page = await browser.newPage();
  watchPage(page, 'tests', opts.verbose, problems);
  let file = '';
  let resolveDone;
  const done = new Promise((r) => { resolveDone = r; });
  await page.exposeFunction('__testEvent', (json) => {
    const ev = JSON.parse(json);
    if (ev.kind === 'file') file = ev.file;
    else if (ev.kind === 'start') {
      if (file) console.log(file);
      file = '';
      state.running = `${ev.file} > ${ev.name}`;
    }
    else if (ev.kind === 'result') {
      const r = ev.record;
      state.running = '';
      console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${secs(r.ms)})`);
      if (!r.ok) console.log(`       ${r.error.split('\n').join('\n       ')}`);
    } else if (ev.kind === 'done') resolveDone(ev.summary);
  });
  const q = new URLSearchParams();
  if (opts.grep) q.set('grep', opts.grep);
  if (opts.full) q.set('full', '1');
  await page.goto(`${base}/test/${q.size ? `?${q}` : ''}`);
  const crashed = new Promise((r) => page.on('crash', () => r(null)));
  const summary = await Promise.race([done, crashed]);
  await page.screenshot({ path: join(OUT, 'tests-page.png'), fullPage: true }).catch(() => {});
  await page.close().catch(() => {});
  if (!summary) throw new Error(`the test page crashed${state.running ? ` during ${state.running}` : ''}`);
  return summary;
}

/** The demo page in a user's shoes: device ready, a small matmul run, no error shown. */
async function runDemo(browser, base, opts, problems) {
  const t0 = performance.now();
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  watchPage(page, 'demo', opts.verbose, problems);
  const fail = [];
  try {
    await page.goto(`${base}/`);
    await page.waitForFunction(() => document.body.dataset.gpu !== 'pending', null, { timeout: 60_000 });
    const state = await page.evaluate(() => document.body.dataset.gpu);
    if (state !== 'ready') fail.push(`device state "${state}": ${await page.textContent('#errors')}`);
    else {
      await page.selectOption('[data-testid="matmul-form"] select', '128');
      await page.click('[data-testid="matmul-form"] button');
      const row = await page.waitForSelector('[data-testid="matmul-results"] tbody tr[data-size="128"]', { timeout: 120_000 });
      const err = Number(await row.getAttribute('data-max-rel-error'));
      if (!(err <= 1e-5)) fail.push(`matmul 128: max relative error ${err} above 1e-5`);
      const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
      console.log(`  matmul 128: ${cells[1]}, first run ${cells[2]}, ${cells[3]} per run, ${cells[4]} GFLOP/s, max rel. error ${cells[5]}`);
    }
    if (await page.isVisible('#errors')) fail.push(`the page shows errors: ${(await page.textContent('#errors')).trim()}`);
  } catch (e) {
    fail.push(e.message.split('\n')[0]);
  }
  const shot = join(OUT, 'demo-page.png');
  await page.screenshot({ path: shot, fullPage: true }).catch((e) => fail.push(`screenshot: ${e.message}`));
  await page.close().catch(() => {});
  const ok = fail.length === 0;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} demo page: device ready, matmul checked, no errors shown (${secs(performance.now() - t0)}); screenshot ${relative(ROOT, shot)}`);
  for (const f of fail) console.log(`       ${f}`);
  return { file: 'web/index.html', name: 'demo page', ok, ms: performance.now() - t0, error: fail.join('\n') || undefined };
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`[test:browser] ${e.message}`);
    return 2;
  }
  if (!existsSync(CHROMIUM)) {
    const how = `run \`bash scripts/setup-chromium.sh\` (Debian) or set CHROMIUM_PATH`;
    if (opts.ifAvailable) {
      console.log(`[test:browser] Chromium not found at ${CHROMIUM}: browser tests not run (${how})`);
      return 0;
    }
    console.error(`[test:browser] Chromium not found at ${CHROMIUM}: ${how}`);
    return 2;
  }
  const t0 = performance.now();
  if (opts.build) {
    console.log(`[test:browser] site: ${await buildSite()}`);
    console.log(`[test:browser] tests: ${await buildBrowserTests()}`);
  }
  await mkdir(OUT, { recursive: true });
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  console.log(`[test:browser] Chromium ${browser.version()}, pages from ${server.url}`);
  const problems = [];
  const state = { running: '' };
  const timer = setTimeout(() => {
    const at = state.running;
    console.error(`[test:browser] timed out after ${opts.timeoutS} s${at ? ` during ${at}` : ''}`);
    process.exit(1);
  }, opts.timeoutS * 1000);
  let code = 0;
  try {
    console.log('demo page');
    const demo = await runDemo(browser, server.url, opts, problems);
    const summary = await runSuites(browser, server.url, opts, problems, state);
    // Uncaught errors in a page fail the run even when no test noticed them.
    const pageErrors = problems.map((p) => ({ file: '(page)', name: p, ok: false, ms: 0 }));
    const failures = [...summary.failures, ...(demo.ok ? [] : [demo]), ...pageErrors];
    const passed = summary.passed + (demo.ok ? 1 : 0);
    console.log(`\n[test:browser] WebGPU: ${summary.adapter}`);
    console.log(`[test:browser] ${failures.length ? 'FAILED' : 'passed'}: ${passed} passed, ${failures.length} failed, ` +
      `${summary.leftOut} left to Node by suites.ts${summary.filtered ? `, ${summary.filtered} filtered out by --grep` : ''}; ` +
      `suites ${secs(summary.ms)}, total ${secs(performance.now() - t0)}`);
    for (const f of failures) console.log(`  FAIL ${f.file} > ${f.name}`);
    if (failures.length && consoleErrors.length) {
      console.log(`[test:browser] last page console errors and warnings (all with --verbose):`);
      for (const line of consoleErrors.slice(-20)) console.log(`  ${line}`);
    }
    await writeAtomic(join(OUT, 'results.json'), JSON.stringify({ ...summary, passed, failed: failures.length, failures, demo }, null, 2) + '\n');
    code = failures.length ? 1 : 0;
  } finally {
    clearTimeout(timer);
    await browser.close().catch(() => {});
    await server.close();
  }
  return code;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`[test:browser] ${e?.errors ? `build failed with ${e.errors.length} error(s)` : e?.stack ?? e}`);
  process.exit(2);
});
