#!/usr/bin/env node
// Browser bundles (esbuild):
//   build/site/          the demo page: index.html, styles.css, main.js, and lib.js, the library as
//                        one ES module (entry web/lib-entry.ts) that main.js imports at run time;
//                        models/tiny-world/ (the embedded tiny CLIP the page fetches), so the folder
//                        is the whole site and can be served by any static server
//   build/browser-test/  the in-browser test page and the uvu test files it loads (with --tests)
// Two rules hold for every bundle:
//   - No Node built-in (fs, path, node:*, ...) and no `webgpu` package: the build fails and names
//     the importing file. Node-only code lives in *-node.ts modules that browser entries never reach.
//   - A project module `x.ts` with a sibling `x-browser.ts` is replaced by that sibling, so a test
//     helper can have a Node and a browser variant (test/helpers/gpu.ts -> gpu-browser.ts).
// Usage: node scripts/build-web.mjs [--tests] [--no-site] [--minify]
import { spawn } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SITE_DIR = join(ROOT, 'build', 'site');
export const TEST_DIR = join(ROOT, 'build', 'browser-test');

const rel = (p) => relative(ROOT, p) || p;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Fails the build on any import of a Node built-in or of `webgpu`, naming the importer. */
export function nodeGuardPlugin() {
  const names = [...new Set(builtinModules.filter((m) => !m.startsWith('_')))].map(escape).join('|');
  const filter = new RegExp(`^(node:.*|webgpu(/.*)?|(${names})(/.*)?)$`);
  return {
    name: 'no-node-in-browser',
    setup(build) {
      build.onResolve({ filter }, (args) => ({
        errors: [{
          text: `"${args.path}" imported by ${args.importer ? rel(args.importer) : '(entry)'}: ` +
            'Node built-ins and the `webgpu` package must stay out of browser bundles ' +
            '(move the Node-only code into a *-node.ts module that browser entries do not import)',
        }],
      }));
    },
  };
}

/** Swaps a project module for its `-browser.ts` sibling when one exists. */
export function browserVariantPlugin() {
  return {
    name: 'browser-variants',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (!args.importer || args.importer.includes(`${'/'}node_modules/`)) return undefined;
        const target = resolve(args.resolveDir, args.path);
        const base = target.replace(/\.(js|ts)$/, '');
        if (base.endsWith('-browser')) return undefined;
        const variant = `${base}-browser.ts`;
        return existsSync(variant) ? { path: variant } : undefined;
      });
    },
  };
}

/**
 * Test files import `uvu`; in the browser bundle that name means test/browser/uvu-select.ts,
 * which wraps the real uvu (its own import of `uvu` resolves normally).
 */
function uvuSelectPlugin() {
  const shim = join(ROOT, 'test', 'browser', 'uvu-select.ts');
  return {
    name: 'uvu-select',
    setup(build) {
      build.onResolve({ filter: /^uvu$/ }, (args) =>
        args.importer === shim ? { path: join(ROOT, 'node_modules', 'uvu', 'dist', 'index.mjs') } : { path: shim });
    },
  };
}

/** main.js loads the library from lib.js at run time, so the demo exercises the shipped bundle. */
function libAsExternalPlugin() {
  return {
    name: 'lib-external',
    setup(build) {
      build.onResolve({ filter: /^\.\/lib-entry\.js$/ }, () => ({ path: './lib.js', external: true }));
    },
  };
}

/** The embedded model's files (web/model-panel.ts fetches the same list). */
const EMBEDDED_MODEL_FILES = ['config.json', 'model.safetensors', 'preprocessor_config.json', 'word_tokenizer.json'];

const COMMON = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: 'linked',
  logLevel: 'warning',
  // A bundle never needs these; left undefined they would be read as globals that do not exist.
  define: { 'process.env.NODE_ENV': '"production"' },
};

async function copyInto(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const f of files) await copyFile(join(ROOT, f), join(dir, f.split('/').pop()));
}

function sizes(metafile) {
  return Object.entries(metafile.outputs)
    .filter(([f]) => f.endsWith('.js'))
    .map(([f, o]) => `${rel(resolve(ROOT, f))} ${(o.bytes / 1024).toFixed(0)} KiB`)
    .join(', ');
}

/**
 * Type-checks web/ and the library modules it reaches with the WebGPU and DOM types only: a Node
 * global (Buffer, process, __dirname) in browser code fails here, where esbuild would let it through.
 */
export function typeCheckWeb() {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', join(ROOT, 'web', 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => code === 0 ? resolvePromise() : reject(new Error(
      'type check of web/ (tsc -p web/tsconfig.json, no Node types) failed: browser code must not use Node globals or modules')));
  });
}

/** The demo site: library bundle, page module, html and css. */
export async function buildSite({ minify = false, typeCheck = true } = {}) {
  if (typeCheck) await typeCheckWeb();
  await rm(SITE_DIR, { recursive: true, force: true });
  const plugins = [nodeGuardPlugin(), browserVariantPlugin()];
  const lib = await esbuild.build({
    ...COMMON, minify, plugins, metafile: true,
    entryPoints: { lib: join(ROOT, 'web', 'lib-entry.ts') },
    outdir: SITE_DIR,
  });
  const main = await esbuild.build({
    ...COMMON, minify, metafile: true,
    plugins: [libAsExternalPlugin(), ...plugins],
    entryPoints: { main: join(ROOT, 'web', 'main.ts') },
    outdir: SITE_DIR,
  });
  await copyInto(SITE_DIR, ['web/index.html', 'web/styles.css']);
  await copyInto(join(SITE_DIR, 'models', 'tiny-world'), EMBEDDED_MODEL_FILES.map((f) => `models/tiny-world/${f}`));
  // CLIP's BPE vocabulary, the tokenizer of a picked folder that has none (as the CLI falls back to it).
  await copyInto(join(SITE_DIR, 'models', 'openai-bpe'), ['models/openai-bpe/bpe_simple_vocab_16e6.txt.gz', 'models/openai-bpe/README.md']);
  return `${sizes(lib.metafile)}, ${sizes(main.metafile)}`;
}

/** The test page: the runner plus one chunk per test file it imports (code splitting). */
export async function buildBrowserTests() {
  await rm(TEST_DIR, { recursive: true, force: true });
  const result = await esbuild.build({
    ...COMMON, metafile: true, splitting: true,
    plugins: [uvuSelectPlugin(), nodeGuardPlugin(), browserVariantPlugin()],
    entryPoints: { runner: join(ROOT, 'test', 'browser', 'runner.ts') },
    outdir: TEST_DIR,
    chunkNames: 'chunks/[name]-[hash]',
  });
  await copyInto(TEST_DIR, ['test/browser/index.html']);
  return `${Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length} files`;
}

async function main(argv) {
  const known = new Set(['--tests', '--no-site', '--minify']);
  for (const a of argv) if (!known.has(a)) throw new Error(`build-web: unknown argument ${a} (usage: node scripts/build-web.mjs [--tests] [--no-site] [--minify])`);
  const t0 = performance.now();
  if (!argv.includes('--no-site')) console.log(`[build-web] site: ${await buildSite({ minify: argv.includes('--minify') })}`);
  if (argv.includes('--tests')) console.log(`[build-web] browser tests: ${await buildBrowserTests()} in ${rel(TEST_DIR)}`);
  console.log(`[build-web] done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e) => {
    // esbuild has already printed its errors with file and line; repeat only other failures.
    if (!e?.errors) console.error(`[build-web] ${e?.message ?? e}`);
    else console.error(`[build-web] failed with ${e.errors.length} error(s)`);
    process.exit(1);
  });
}
