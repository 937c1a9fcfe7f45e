#!/usr/bin/env node
// `npm run test:browser`: builds the browser bundles, serves them on 127.0.0.1, runs the in-browser
// test suites (test/browser/suites.ts) and an end-to-end check of the demo page in headless
// Chromium (its numbers checked against the library's in Node, see demo-expected-node.ts), prints
// a summary, and saves a screenshot of the demo page into test-output/browser/.
// Exits 1 on any failure, 2 when Chromium is missing or the set-up fails.
// Options: --grep REGEX (keep matching `file > test` names), --full (every test of each selected
//          file), --timeout SECONDS (whole run; default 900), --no-build, --verbose (page console),
//          --if-available (exit 0 with a note when Chromium is not installed: for `npm test`).
// Environment: CHROMIUM_PATH (default /usr/bin/chromium).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { unzipSync } from 'fflate';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
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

/** The demo's inputs: scene 72:0 is "a small red square on the left", so the caption is true of it. */
const DEMO = {
  modelDir: join(ROOT, 'models', 'tiny-world'),
  captions: ['there is a red square.', 'there is no red square.'],
  worldSeed: 72,
  worldIndex: 0,
  caption: 'there is a red square.',
  foil: 'there is no red square.',
  /** A foil one token longer, for the length message. */
  longFoil: 'there is no red square at all.',
  /** Smaller than the page's defaults (64, 8, 20): SwiftShader runs under one step of 8 a second. */
  train: { images: 32, heldOut: 32, batch: 8, steps: 10 },
};
/** |page - Node| allowed for logits and trace scores (Dawn on lavapipe vs SwiftShader, f32). */
const DEMO_TOL = 1e-3;

/** The values the page must show, computed by the library in Node (Dawn) from the files on disk. */
async function demoExpected() {
  const out = join(ROOT, 'build', 'browser-node', 'demo-expected.mjs');
  await esbuild.build({
    entryPoints: [join(ROOT, 'test', 'browser', 'demo-expected-node.ts')],
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile: out, logLevel: 'warning',
  });
  const mod = await import(pathToFileURL(out).href);
  return { ...(await mod.demoExpected(DEMO)), exportedChecks: (adapterDir, ctePath) => mod.exportedChecks(DEMO, adapterDir, ctePath), userDataFiles: mod.userDataFiles, userCsvFiles: mod.userCsvFiles };
}

/** Waits until a panel's job ends; returns its state ('done' or 'error'). */
async function panelDone(page, id, timeout) {
  await page.waitForSelector(`#${id}[data-state="done"], #${id}[data-state="error"]`, { timeout });
  return page.getAttribute(`#${id}`, 'data-state');
}

/**
 * The demo page in a user's shoes: device ready, a small matmul; the embedded tiny model; two
 * captions against a sampled world scene and the same scene as a PNG file, with the matrix
 * checked against Node's values; the model's files picked from disk: the same matrix; a trace
 * (first a foil of another length: the message, then the pair: heat map, scores against Node);
 * NAST fine-tuning steps with the CTE scales: a loss curve of finite points; then similarity and
 * trace with the adapter (the matrix moved); no error shown.
 */
async function runDemo(browser, base, opts, problems, expected) {
  const t0 = performance.now();
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  watchPage(page, 'demo', opts.verbose, problems);
  const fail = [];
  const lap = (() => { let t = performance.now(); return () => { const d = performance.now() - t; t = performance.now(); return secs(d); }; })();
  // Errors shown anywhere: the top box (errors of no panel) and every panel's own error line.
  const errorBox = async () => {
    const top = (await page.isVisible('#errors')) ? (await page.textContent('#errors')).trim() : '';
    const panels = await page.$$eval('.panel-error:not([hidden])', (ps) => ps.map((p) => `${p.closest('section')?.id}: ${p.querySelector('span')?.textContent}`));
    return [top, ...panels].filter(Boolean).join('\n');
  };
  /** Saves what clicking `selector` downloads into OUT under `name`; returns its path. */
  const downloadOf = async (selector, name) => {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click(selector)]);
    const path = join(OUT, name);
    await dl.saveAs(path);
    return path;
  };
  /** The error line of panel `id` once shown; then dismissed, so later steps see a clean page. */
  const panelError = async (id) => {
    const sel = `#${id} > .panel-error:not([hidden])`;
    await page.waitForSelector(sel, { timeout: 30_000 });
    const text = await page.textContent(`${sel} span`);
    await page.click(`${sel} [data-testid="panel-error-dismiss"]`);
    return text;
  };
  let tuned = null;
  const step = async (what, fn) => {
    if (fail.length) return;
    try {
      await fn();
    } catch (e) {
      fail.push(`${what}: ${e.message.split('\n')[0]}`);
    }
    const err = await errorBox().catch(() => '');
    if (err && !fail.some((f) => f.includes('the page shows errors'))) fail.push(`${what}: the page shows errors: ${err}`);
  };
  try {
    await page.goto(`${base}/`);
    await page.waitForFunction(() => document.body.dataset.gpu !== 'pending', null, { timeout: 60_000 });
    const state = await page.evaluate(() => document.body.dataset.gpu);
    if (state !== 'ready') fail.push(`device state "${state}": ${await page.textContent('#errors')}`);
    lap();
    await step('matmul', async () => {
      await page.selectOption('[data-testid="matmul-form"] select', '128');
      await page.click('[data-testid="matmul-form"] button');
      const row = await page.waitForSelector('[data-testid="matmul-results"] tbody tr[data-size="128"]', { timeout: 120_000 });
      const err = Number(await row.getAttribute('data-max-rel-error'));
      if (!(err <= 1e-5)) throw new Error(`matmul 128: max relative error ${err} above 1e-5`);
      const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
      console.log(`  matmul 128: ${cells[1]}, first run ${cells[2]}, ${cells[3]} per run (wall), GPU ${cells[4]}, ${cells[5]} GFLOP/s, max rel. error ${cells[6]} (${lap()})`);
    });
    await step('embedded model', async () => {
      await page.click('[data-testid="model-embedded"]');
      if (await panelDone(page, 'model', 60_000) !== 'done') throw new Error(`not loaded: ${await page.textContent('[data-testid="model-status"]')}`);
      console.log(`  model: ${await page.textContent('[data-testid="model-status"]')} (${lap()})`);
    });
    /** The matrix on the page: caption columns, and per image row its cells' values and texts. */
    const readMatrix = () => page.$eval('[data-testid="similarity"]', (t) => ({
      cols: t.querySelectorAll('thead th[data-col]').length,
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => ({ value: Number(td.dataset.value), text: td.textContent }))),
    }));
    /** Runs the similarity and checks every row against Node's logits of the world scene. */
    const similarityEqualsNode = async (rows) => {
      await page.click('[data-testid="similarity-run"]');
      if (await panelDone(page, 'clip', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="clip-status"]'));
      const table = await readMatrix();
      if (table.cols !== 2 || table.rows.length !== rows || table.rows.some((r) => r.length !== 2)) {
        throw new Error(`matrix is ${table.rows.length}x${table.rows[0]?.length} with ${table.cols} caption columns, expected ${rows}x2`);
      }
      let maxDiff = 0;
      table.rows.forEach((row) => row.forEach((c, j) => {
        if (!Number.isFinite(c.value)) throw new Error(`cell ${j} shows ${JSON.stringify(c.text)} (value ${c.value}), not a finite number`);
        if (!c.text.startsWith(c.value.toFixed(2))) throw new Error(`cell ${j} shows ${JSON.stringify(c.text)} but holds ${c.value}`);
        maxDiff = Math.max(maxDiff, Math.abs(c.value - expected.logits[0][j]));
      }));
      const got = table.rows.map((r) => `[${r.map((c) => c.value.toFixed(4)).join(', ')}]`).join(' ');
      if (!(maxDiff <= DEMO_TOL)) throw new Error(`logits ${got} differ from Node's [${expected.logits[0].map((v) => v.toFixed(4)).join(', ')}] by ${maxDiff.toExponential(2)} > ${DEMO_TOL}`);
      return `${got} = Node's within ${maxDiff.toExponential(1)}`;
    };
    await step('similarity', async () => {
      await page.fill('[data-testid="captions"]', DEMO.captions.join('\n'));
      await page.fill('[data-testid="world-seed"]', String(DEMO.worldSeed));
      await page.selectOption('[data-testid="world-count"]', '1');
      await page.click('[data-testid="sample-world"]');
      // The same scene as a PNG file: decoded by the browser (createImageBitmap + canvas).
      await page.setInputFiles('[data-testid="image-files"]', { name: 'world-72-0.png', mimeType: 'image/png', buffer: Buffer.from(expected.png) });
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="images"] figure').length === 2);
      const shown = await page.$$eval('[data-testid="images"] figure', (f) => f.map((x) => x.textContent));
      if (!shown[0].includes(expected.truth)) throw new Error(`sampled image ${JSON.stringify(shown[0])}, expected one showing "${expected.truth}"`);
      console.log(`  similarity (world scene and its PNG): ${await similarityEqualsNode(2)} (${lap()})`);
    });
    await step('picked model files', async () => {
      // The same model picked as files from disk (the <input type=file> path): the same matrix.
      const files = ['config.json', 'model.safetensors', 'preprocessor_config.json', 'word_tokenizer.json'].map((f) => join(DEMO.modelDir, f));
      await page.setInputFiles('[data-testid="model-files"]', files);
      if (await panelDone(page, 'model', 60_000) !== 'done') throw new Error(`not loaded: ${await page.textContent('[data-testid="model-status"]')}`);
      const info = await page.textContent('[data-testid="model-info"]');
      if (!info.includes('picked files') || !info.includes('none (base model)')) throw new Error(`after loading picked files the model info says: ${info}`);
      console.log(`  picked files: ${(await page.textContent('[data-testid="model-status"]')).trim().replace(/\.$/, '')}; similarity ${await similarityEqualsNode(2)} (${lap()})`);
    });
    await step('trace', async () => {
      await page.fill('[data-testid="trace-form"] input[name="caption"]', DEMO.caption);
      await page.fill('[data-testid="trace-form"] input[name="foil"]', DEMO.longFoil);
      await page.click('[data-testid="trace-form"] button[type="submit"]');
      await panelDone(page, 'trace', 30_000);
      const note = await page.textContent('[data-testid="trace-message"]');
      if (await page.getAttribute('#trace', 'data-result') !== 'notice' || !/same token length/.test(note)) throw new Error(`a foil of another length gave no length message (${JSON.stringify(note)})`);
      await page.fill('[data-testid="trace-form"] input[name="foil"]', DEMO.foil);
      await page.click('[data-testid="trace-form"] button[type="submit"]');
      if (await panelDone(page, 'trace', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const result = await page.getAttribute('#trace', 'data-result');
      if (result !== 'heatmap') throw new Error(`no heat map: ${await page.textContent('[data-testid="trace-message"]')}`);
      const cells = await page.$$eval('[data-testid="trace-heatmap"] rect.cell', (r) => r.length);
      if (cells !== expected.heatmapCells) throw new Error(`heat map has ${cells} cells, expected ${expected.heatmapCells}`);
      const s = await page.$eval('[data-testid="trace-scores"]', (dl) => [Number(dl.dataset.sCorr), Number(dl.dataset.sFoil)]);
      const diff = Math.max(Math.abs(s[0] - expected.sCorr), Math.abs(s[1] - expected.sFoil));
      if (!(diff <= DEMO_TOL)) throw new Error(`S_corr, S_foil = ${s} differ from Node's ${expected.sCorr}, ${expected.sFoil} by ${diff}`);
      const layers = await page.$$eval('[data-testid="trace-layers"] tbody tr', (rows) => rows.map((r) => Number(r.dataset.cte)));
      if (!layers.every(Number.isFinite)) throw new Error(`CTE_l not finite: ${layers}`);
      console.log(`  trace: ${cells} cells, S_corr ${s[0].toFixed(3)}, S_foil ${s[1].toFixed(3)} = Node's within ${diff.toExponential(1)}, CTE_l [${layers.map((v) => v.toFixed(3)).join(', ')}] (${lap()})`);
    });
    await step('fine-tuning', async () => {
      const t = DEMO.train;
      for (const [name, v] of Object.entries({ images: t.images, heldOut: t.heldOut, batch: t.batch, steps: t.steps })) {
        await page.fill(`[data-testid="train-form"] input[name="${name}"]`, String(v));
      }
      await page.selectOption('[data-testid="train-form"] select[name="scales"]', 'cte');
      await page.click('[data-testid="train-form"] button[type="submit"]');
      if (await panelDone(page, 'train', 240_000) !== 'done') throw new Error(await page.textContent('[data-testid="train-status"]'));
      const losses = await page.$$eval('[data-testid="loss-chart"] circle.pt', (c) => c.map((x) => Number(x.dataset.loss)));
      if (losses.length !== t.steps || !losses.every(Number.isFinite)) throw new Error(`loss curve has ${losses.length} points (${losses.slice(0, 4)}...), expected ${t.steps} finite ones`);
      const facts = await page.$$eval('[data-testid="train-summary"] dd', (dd) => dd.map((d) => d.textContent));
      const heldOut = facts[2] ?? '';
      if (!/negated claims \d+\.\d% → \d+\.\d% \(\d+ sets\), affirmative \d+\.\d% → \d+\.\d% .* of 32 images never trained on/.test(heldOut)) throw new Error(`no held-out evaluation: ${JSON.stringify(heldOut)}`);
      console.log(`  fine-tuning: ${t.steps} steps of ${t.batch} (CTE scales), loss ${losses[0].toFixed(3)} -> ${losses.at(-1).toFixed(3)}; held-out: ${heldOut}; ${facts.at(-1)} (${lap()})`);
    });
    await step('after fine-tuning', async () => {
      // The adapter stays on the model: the matrix moves away from the base model's, the trace runs on it.
      await page.click('[data-testid="similarity-run"]');
      if (await panelDone(page, 'clip', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="clip-status"]'));
      const table = await readMatrix();
      const vals = table.rows.flat().map((c) => c.value);
      if (vals.length !== 4 || !vals.every(Number.isFinite)) throw new Error(`matrix after fine-tuning: ${JSON.stringify(table.rows)}`);
      const moved = Math.max(...table.rows[0].map((c, j) => Math.abs(c.value - expected.logits[0][j])));
      tuned = table.rows;
      if (!(moved > DEMO_TOL)) throw new Error(`the matrix after fine-tuning equals the base model's (moved ${moved}): is the adapter used?`);
      await page.click('[data-testid="trace-form"] button[type="submit"]');
      if (await panelDone(page, 'trace', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const result = await page.getAttribute('#trace', 'data-result');
      console.log(`  after fine-tuning: similarity [${table.rows[0].map((c) => c.value.toFixed(4)).join(', ')}] (moved ${moved.toFixed(3)} from the base model), trace: ${result} (${lap()})`);
    });
    await step('downloads load in the CLIs with equal numbers', async () => {
      const zip = await downloadOf('[data-testid="adapter-export"]', 'adapter.zip');
      const adapterDir = join(OUT, 'adapter');
      await rm(adapterDir, { recursive: true, force: true });
      await mkdir(adapterDir, { recursive: true });
      for (const [name, bytes] of Object.entries(unzipSync(new Uint8Array(await readFile(zip))))) await writeFile(join(adapterDir, name), bytes);
      const ctePath = await downloadOf('[data-testid="cte-export"]', 'cte.json');
      const svg = await readFile(await downloadOf('[data-testid="heatmap-export"]', 'cte_heatmap.svg'), 'utf8');
      if (!svg.startsWith('<svg')) throw new Error(`the heat map download is not an SVG: ${svg.slice(0, 40)}`);
      const metrics = (await readFile(await downloadOf('[data-testid="metrics-export"]', 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      if (metrics.length !== DEMO.train.steps || !metrics.every((m) => Number.isFinite(m.loss) && Number.isInteger(m.step))) throw new Error(`metrics.jsonl: ${metrics.length} lines, expected ${DEMO.train.steps} with step and loss`);
      const cli = await expected.exportedChecks(adapterDir, ctePath);
      const diff = Math.max(...tuned[0].map((c, j) => Math.abs(c.value - cli.logits[0][j])));
      if (!(diff <= DEMO_TOL)) throw new Error(`with the downloaded adapter Node computes [${cli.logits[0].map((v) => v.toFixed(4))}], the page showed [${tuned[0].map((c) => c.value.toFixed(4))}] (differ by ${diff.toExponential(2)})`);
      const shown = await page.$$eval('[data-testid="trace-layers"] tbody tr[data-scale]', (rows) => rows.map((r) => Number(r.dataset.scale)));
      const sdiff = Math.max(...cli.scales.map((v, i) => Math.abs(v - shown[i])));
      if (shown.length !== cli.scales.length || !(sdiff <= 1e-9)) throw new Error(`cte.json gives train.js scales [${cli.scales}], the page showed [${shown}]`);
      console.log(`  downloads: adapter.zip (embed.js's loader: logits within ${diff.toExponential(1)} of the page's), cte.json (train.js's scales = the page's), heat map SVG, metrics.jsonl ${metrics.length} lines (${lap()})`);
    });
    await step('loading them back', async () => {
      await page.click('[data-testid="model-remove-adapter"]');
      await page.setInputFiles('[data-testid="adapter-import"]', join(OUT, 'adapter.zip'));
      if (await panelDone(page, 'model', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="model-status"]'));
      await page.click('[data-testid="similarity-run"]');
      if (await panelDone(page, 'clip', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="clip-status"]'));
      const again = (await readMatrix()).rows;
      const diff = Math.max(...again.flat().map((c, i) => Math.abs(c.value - tuned.flat()[i].value)));
      if (!(diff <= 1e-4)) throw new Error(`the re-loaded adapter gives a matrix ${diff} away from the trained one`);
      await page.setInputFiles('[data-testid="cte-import"]', join(OUT, 'cte.json'));
      if (await panelDone(page, 'trace', 30_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const option = await page.textContent('[data-testid="train-form"] select[name="scales"] option[value="cte"]');
      if (!/cte\.json/.test(option)) throw new Error(`the fine-tuning panel does not offer the loaded cte.json: ${option}`);
      console.log(`  loaded back: adapter.zip (matrix within ${diff.toExponential(1)} of the trained one), cte.json (${option.trim().slice(0, 60)}...) (${lap()})`);
    });
    await step('errors beside their panel; nothing lost', async () => {
      // A pair the model gets wrong (caption and foil swapped: d < 0) does not replace the scales.
      await page.click('[data-testid="trace-swap"]');
      await page.click('[data-testid="trace-form"] button[type="submit"]');
      if (await panelDone(page, 'trace', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const note = await page.textContent('[data-testid="trace-message"]');
      if (!/prefers the foil/.test(note)) throw new Error(`a swapped pair gave no d < 0 note: ${JSON.stringify(note)}`);
      const option = await page.textContent('[data-testid="train-form"] select[name="scales"] option[value="cte"]');
      if (!/cte\.json/.test(option)) throw new Error(`a d < 0 trace replaced the loaded scales: ${option}`);
      await page.click('[data-testid="trace-swap"]');
      await page.fill('[data-testid="train-form"] input[name="lr"]', '1');
      await page.click('[data-testid="train-form"] button[type="submit"]');
      const lrError = await panelError('train');
      if (!/lr: .*at most 0\.1/.test(lrError)) throw new Error(`a learning rate of 1 gave ${JSON.stringify(lrError)}`);
      await page.fill('[data-testid="train-form"] input[name="lr"]', '0.003');
      // Re-training asks first; declined, the adapter stays.
      const asked = new Promise((r) => page.once('dialog', (d) => { r(d.message()); void d.dismiss(); }));
      await page.click('[data-testid="train-form"] button[type="submit"]');
      const question = await asked;
      if (!/replaces the current adapter/.test(question)) throw new Error(`re-training asked ${JSON.stringify(question)}`);
      if (!(await page.isVisible('[data-testid="model-remove-adapter"]'))) throw new Error('declining the re-training removed the adapter');
      // A model that fails to load (a config without weights) keeps the current model and adapter.
      page.once('dialog', (d) => void d.accept());
      await page.setInputFiles('[data-testid="model-files"]', join(DEMO.modelDir, 'config.json'));
      if (await panelDone(page, 'model', 60_000) !== 'error') throw new Error('a config.json alone loaded');
      const loadError = await panelError('model');
      const kept = await page.textContent('[data-testid="model-status"]');
      if (!/stays loaded with its adapter/.test(kept) || !(await page.isVisible('[data-testid="model-remove-adapter"]'))) throw new Error(`after the failed load: ${kept}`);
      await page.click('[data-testid="similarity-run"]');
      if (await panelDone(page, 'clip', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="clip-status"]'));
      const still = (await readMatrix()).rows;
      const diff = Math.max(...still.flat().map((c, i) => Math.abs(c.value - tuned.flat()[i].value)));
      if (!(diff <= 1e-4)) throw new Error(`after the failed load the matrix moved by ${diff}`);
      console.log(`  errors in their panels: lr 1 -> "${lrError.slice(0, 70)}"; failed load -> "${loadError.slice(0, 70)}..." and the model + adapter stayed (${lap()})`);
    });
    await step('trace over many pairs', async () => {
      await page.fill('[data-testid="probe-count"]', '8');
      await page.click('[data-testid="trace-many"]');
      if (await panelDone(page, 'trace', 180_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const intervals = await page.$$eval('[data-testid="trace-heatmap"] line.ci', (l) => l.length);
      const option = await page.textContent('[data-testid="train-form"] select[name="scales"] option[value="cte"]');
      const facts = await page.textContent('[data-testid="trace-scores"]');
      if (!(intervals > 0) || !/world probe pairs/.test(option) || !/noisy/.test(option)) throw new Error(`many-pair trace: ${intervals} interval bars, option ${JSON.stringify(option)}`);
      console.log(`  many pairs: ${facts.replace(/\s+/g, ' ').trim().slice(0, 120)}; ${intervals} interval bars (${lap()})`);
    });
    await step('fine-tuning on your own images (JSONL + image files)', async () => {
      const dir = join(OUT, 'user-data');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      const data = expected.userDataFiles(4242, 16, 32);
      await writeFile(join(dir, 'photos.jsonl'), data.jsonl);
      for (const f of data.images) await writeFile(join(dir, f.name), f.png);
      await page.selectOption('[data-testid="train-data"]', 'user');
      await page.setInputFiles('[data-testid="train-jsonl"]', join(dir, 'photos.jsonl'));
      for (const [name, v] of Object.entries({ heldOut: 6, batch: 4, steps: 3 })) await page.fill(`[data-testid="train-form"] input[name="${name}"]`, String(v));
      // Half the images picked: the panel names what is missing, before anything trains.
      await page.setInputFiles('[data-testid="train-images"]', data.images.slice(0, 8).map((f) => join(dir, f.name)));
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      const missing = await panelError('train');
      if (!/photos\.jsonl: 8 images not among the picked images: photos\/photo-8\.png/.test(missing)) throw new Error(`missing images gave ${JSON.stringify(missing)}`);
      if (!(await page.isVisible('[data-testid="model-remove-adapter"]'))) throw new Error('the failed run lost the adapter');
      await page.setInputFiles('[data-testid="train-images"]', data.images.map((f) => join(dir, f.name)));
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      if (await panelDone(page, 'train', 240_000) !== 'done') throw new Error(await page.textContent('[data-testid="train-status"]'));
      const facts = await page.$$eval('[data-testid="train-summary"] dd', (dd) => dd.map((d) => d.textContent));
      if (!/10 training images from photos\.jsonl \(16 images\)/.test(facts[0]) || !/of 6 images never trained on/.test(facts[2])) throw new Error(`your-data run: ${JSON.stringify(facts.slice(0, 3))}`);
      console.log(`  your data: ${facts[0]}; held-out: ${facts[2]} (${lap()})`);
    });
    await step('your data typed in the page (a line per picked image, then filled in)', async () => {
      const data = expected.userDataFiles(4242, 16, 32);
      const dir = join(OUT, 'user-data');
      await page.click('[data-testid="train-file-clear"]');
      await page.click('[data-testid="train-template"]');
      const template = (await page.inputValue('[data-testid="train-typed"]')).trim().split('\n');
      if (template.length !== 16 || !template.every((l) => JSON.parse(l).caption === '')) throw new Error(`template lines: ${JSON.stringify(template.slice(0, 2))} (${template.length})`);
      // Left unfilled, the lines are refused, saying why.
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      const refused = await panelError('train');
      if (!/typed JSONL: no usable line \(line 1: "caption"\[0\] must be a non-empty string/.test(refused)) throw new Error(`unfilled lines gave ${JSON.stringify(refused)}`);
      await page.fill('[data-testid="train-typed"]', data.jsonl);
      // An image the browser cannot decode (images are decoded as they are embedded) is named.
      const bad = join(OUT, 'user-data-bad');
      await rm(bad, { recursive: true, force: true });
      await mkdir(bad, { recursive: true });
      for (const f of data.images) await writeFile(join(bad, f.name), f.name === 'photo-3.png' ? new TextEncoder().encode('not a png') : f.png);
      await page.setInputFiles('[data-testid="train-images"]', data.images.map((f) => join(bad, f.name)));
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      const undecodable = await panelError('train');
      if (!/photo-3\.png: the browser cannot decode it as an image/.test(undecodable)) throw new Error(`an undecodable image gave ${JSON.stringify(undecodable)}`);
      await page.setInputFiles('[data-testid="train-images"]', data.images.map((f) => join(dir, f.name)));
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      if (await panelDone(page, 'train', 240_000) !== 'done') throw new Error(await page.textContent('[data-testid="train-status"]'));
      const rows = await page.$$eval('[data-testid="train-summary"] dt', (dt) => dt.map((d) => d.textContent));
      const facts = await page.$$eval('[data-testid="train-summary"] dd', (dd) => dd.map((d) => d.textContent));
      const mcq = facts[rows.indexOf('held-out NegBench MCQ')] ?? '';
      if (!/from typed JSONL \(16 images\)/.test(facts[0]) || !/by correct template: Affirmation .*Negation .*Hybrid /.test(mcq)) throw new Error(`typed run: ${JSON.stringify(facts.slice(0, 4))}`);
      await rm(dir, { recursive: true, force: true });
      await rm(bad, { recursive: true, force: true });
      console.log(`  typed lines: ${facts[0]}; held-out MCQ: ${mcq} (${lap()})`);
    });
    await step('a CheXpert-style CSV with its images picked as a folder', async () => {
      const dir = join(OUT, 'user-csv');
      await rm(dir, { recursive: true, force: true });
      const data = expected.userCsvFiles(4343, 16, 32);
      for (const im of data.images) {
        await mkdir(dirname(join(dir, im.path)), { recursive: true });
        await writeFile(join(dir, im.path), im.png);
      }
      await writeFile(join(dir, 'labels.csv'), data.csv);
      await page.fill('[data-testid="train-typed"]', '');
      await page.setInputFiles('[data-testid="train-images"]', []);
      await page.setInputFiles('[data-testid="train-jsonl"]', join(dir, 'labels.csv'));
      await page.setInputFiles('[data-testid="train-image-folder"]', join(dir, 'scans'));
      page.once('dialog', (d) => void d.accept());
      await page.click('[data-testid="train-form"] button[type="submit"]');
      if (await panelDone(page, 'train', 240_000) !== 'done') throw new Error(await page.textContent('[data-testid="train-status"]'));
      const facts = await page.$$eval('[data-testid="train-summary"] dd', (dd) => dd.map((d) => d.textContent));
      if (!/from labels\.csv \(16 images\)/.test(facts[0]) || !/of 6 images never trained on/.test(facts[2])) throw new Error(`CSV run: ${JSON.stringify(facts.slice(0, 3))}`);
      console.log(`  CheXpert-style CSV + folder: ${facts[0]}; held-out: ${facts[2]} (${lap()})`);
    });
    await step('trace your pairs: a data file\'s probe pairs, and a pairs file', async () => {
      const dir = join(OUT, 'user-csv');
      await page.fill('[data-testid="probe-count"]', '6');
      await page.setInputFiles('[data-testid="trace-pairs-file"]', join(dir, 'labels.csv'));
      await page.setInputFiles('[data-testid="trace-pairs-folder"]', join(dir, 'scans'));
      await page.click('[data-testid="trace-pairs"]');
      if (await panelDone(page, 'trace', 120_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const fromCsv = await page.textContent('[data-testid="trace-scores"]');
      if (!/of 6 pairs from labels\.csv/.test(fromCsv)) throw new Error(`pairs from the CSV: ${fromCsv}`);
      // trace.js's pairs format, with one pair whose caption and foil differ in length.
      const lines = [
        { image: 'scans/patient0/study1/view1.png', caption: 'There is no red square.', foil: 'There is a red square.', polarity: 'caption' },
        { image: 'scans/patient1/study1/view1.png', caption: 'There is a blue circle.', foil: 'There is no blue circle.', polarity: 'foil' },
        { image: 'scans/patient2/study1/view1.png', caption: 'There is no green square at all.', foil: 'There is a green square.' },
      ];
      await writeFile(join(dir, 'pairs.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      await page.setInputFiles('[data-testid="trace-pairs-file"]', join(dir, 'pairs.jsonl'));
      await page.click('[data-testid="trace-pairs"]');
      if (await panelDone(page, 'trace', 120_000) !== 'done') throw new Error(await page.textContent('[data-testid="trace-status"]'));
      const fromPairs = await page.textContent('[data-testid="trace-scores"]');
      if (!/of 3 pairs from pairs\.jsonl/.test(fromPairs) || !/1 not traceable/.test(fromPairs)) throw new Error(`pairs file: ${fromPairs}`);
      console.log(`  your pairs: ${fromCsv.replace(/\s+/g, ' ').trim().slice(0, 90)}; ${fromPairs.replace(/\s+/g, ' ').trim().slice(0, 140)} (${lap()})`);
    });
    await step('a folder without tokenizer files (the bundled vocabulary, as the CLI)', async () => {
      // Last: it replaces the model (and, after asking, drops the adapter).
      page.once('dialog', (d) => void d.accept());
      const hf = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
      await page.setInputFiles('[data-testid="model-files"]', ['config.json', 'model.safetensors'].map((f) => join(hf, f)));
      if (await panelDone(page, 'model', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="model-status"]'));
      const said = await page.textContent('[data-testid="model-status"]');
      if (!/bundled CLIP BPE vocabulary/.test(said)) throw new Error(`loaded without saying which tokenizer: ${said}`);
      const info = await page.textContent('[data-testid="model-info"]');
      if (!/byte-level BPE, 49408 ids/.test(info)) throw new Error(`tokenizer shown: ${info}`);
      console.log(`  no tokenizer files: ${said.trim()} (${lap()})`);
    });
    await step('an open_clip / NegBench .pt checkpoint', async () => {
      // The PyTorch reader in the page: a training checkpoint (state dict under "state_dict",
      // DDP's "module." prefix) with the config the tiny model needs.
      const torch = join(ROOT, 'test', 'fixtures', 'torch', 'open_clip-tiny-f16.pt');
      const config = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf', 'config.json');
      await page.setInputFiles('[data-testid="model-files"]', [config, torch]);
      if (await panelDone(page, 'model', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="model-status"]'));
      const said = await page.textContent('[data-testid="model-status"]');
      if (!/open_clip-tiny-f16\.pt/.test(said)) throw new Error(`loaded without naming the .pt: ${said}`);
      await page.click('[data-testid="similarity-run"]');
      if (await panelDone(page, 'clip', 60_000) !== 'done') throw new Error(await page.textContent('[data-testid="clip-status"]'));
      const cells = (await readMatrix()).rows.flat().map((c) => c.value);
      if (!cells.length || !cells.every(Number.isFinite)) throw new Error(`similarity with the .pt model: ${JSON.stringify(cells)}`);
      console.log(`  .pt checkpoint: ${said.trim()} (${lap()})`);
    });
    const err = await errorBox();
    if (err && !fail.some((f) => f.includes('the page shows errors'))) fail.push(`the page shows errors: ${err}`);
  } catch (e) {
    fail.push(e.message.split('\n')[0]);
  }
  const shot = join(OUT, 'demo-page.png');
  await page.screenshot({ path: shot, fullPage: true }).catch((e) => fail.push(`screenshot: ${e.message}`));
  await page.close().catch(() => {});
  const ok = fail.length === 0;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} demo page: matmul, tiny model, similarity = Node's, trace, fine-tuning, picked files, downloads = the CLIs' numbers, loaded back, errors in their panels, nothing lost, no other errors shown (${secs(performance.now() - t0)}); screenshot ${relative(ROOT, shot)}`);
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
  const tExpected = performance.now();
  const expected = await demoExpected();
  console.log(`[test:browser] demo page's expected values from Node (Dawn) in ${secs(performance.now() - tExpected)}`);
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
    const demo = await runDemo(browser, server.url, opts, problems, expected);
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
