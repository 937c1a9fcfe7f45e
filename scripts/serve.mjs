#!/usr/bin/env node
// Small static file server for the demo page and the in-browser tests (Node built-ins only).
// It listens on 127.0.0.1 and serves only the mounted folders, never the whole repository:
//   /           build/site       the demo page (`npm run build:web`)
//   /test/      build/browser-test  the in-browser test page (built by `npm run test:browser`)
//   /fixtures/  test/fixtures    test fixtures, fetched by the browser variant of the fixture helper
//   /models/    models           the shipped models and the CLIP vocabulary
// Usage: node scripts/serve.mjs [--port 8080] [--host 127.0.0.1] [--verbose]
import { createReadStream, existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const DEFAULT_MOUNTS = [
  { prefix: '/test/', dir: join(ROOT, 'build', 'browser-test') },
  { prefix: '/fixtures/', dir: join(ROOT, 'test', 'fixtures') },
  { prefix: '/models/', dir: join(ROOT, 'models') },
  { prefix: '/', dir: join(ROOT, 'build', 'site') },
];

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.wasm': 'application/wasm',
  // Served as opaque bytes: a Content-Encoding would make the browser unzip the vocabulary.
  '.gz': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/**
 * Host names the server answers to: anything else is refused, so a page on another origin
 * cannot reach it through DNS rebinding (its requests carry the attacker's host name).
 */
function hostAllowed(header, host) {
  if (!header) return false;
  const name = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.split(':')[0];
  return ['127.0.0.1', 'localhost', '[::1]', host].includes(name.toLowerCase());
}

/** Maps a URL path to a file inside one mount, or null when it would leave the mount or is hidden. */
function locate(mounts, urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  const mount = mounts.filter((m) => path.startsWith(m.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
  if (!mount) return null;
  const rest = path.slice(mount.prefix.length);
  if (rest.split('/').some((seg) => seg.startsWith('.'))) return null; // dotfiles and `..`
  const base = resolve(mount.dir);
  const file = resolve(base, rest);
  if (file !== base && !file.startsWith(base + sep)) return null;
  return { file, base };
}

/** Whether `file`, with every symbolic link followed, still lies inside the mount `base`. */
async function staysInside(file, base) {
  try {
    const [real, root] = await Promise.all([realpath(file), realpath(base)]);
    return real === root || real.startsWith(root + sep);
  } catch {
    return false;
  }
}

/**
 * The request target as a URL, or null when it is not origin-form ("/path?query"). A target
 * starting "//" is refused too: URL would read its first segment as a host (and throw on "//[").
 */
function parseTarget(target) {
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//')) return null;
  try {
    return new URL(target, 'http://localhost');
  } catch {
    return null;
  }
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text + '\n');
}

/**
 * Starts the server; resolves once it listens. Port 0 picks a free port. Returns the base URL
 * (always 127.0.0.1 unless `host` says otherwise) and a close function.
 */
export function startServer({ port = 8080, host = '127.0.0.1', mounts = DEFAULT_MOUNTS, verbose = false } = {}) {
  // One bad request must never stop the server: whatever the handler throws is answered (500
  // while the headers are still unsent, else the connection is cut) and the server goes on.
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      console.error(`[serve] internal error on ${JSON.stringify(req.url)}: ${e?.message ?? e}`);
      try {
        if (!res.headersSent) send(res, 500, 'internal server error');
        else res.destroy();
      } catch {
        res.destroy();
      }
    });
  });
  async function handle(req, res) {
    const url = parseTarget(req.url);
    if (!url) return send(res, 400, `bad request target: ${JSON.stringify(req.url ?? '')} (expected /path)`);
    if (!hostAllowed(req.headers.host, host)) return send(res, 403, `forbidden: this server answers only to 127.0.0.1 / localhost, not ${JSON.stringify(req.headers.host ?? '')}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, `method ${req.method} not allowed`);
    if (mounts.some((m) => m.prefix === `${url.pathname}/`)) {
      res.writeHead(301, { Location: `${url.pathname}/${url.search}` });
      return res.end();
    }
    const found = locate(mounts, url.pathname);
    if (!found) return send(res, 404, `not found: ${url.pathname}`);
    let file = found.file;
    try {
      // Links are followed only where they stay inside the mount.
      if (!(await staysInside(file, found.base))) return send(res, 404, `not found: ${url.pathname}`);
      let st = await stat(file);
      if (st.isDirectory()) {
        if (!url.pathname.endsWith('/')) {
          res.writeHead(301, { Location: url.pathname + '/' + url.search });
          return res.end();
        }
        file = join(file, 'index.html');
        if (!(await staysInside(file, found.base))) return send(res, 404, `not found: ${url.pathname}`);
        st = await stat(file);
      }
      if (!st.isFile()) return send(res, 404, `not found: ${url.pathname}`);
      res.writeHead(200, {
        'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
      });
      if (verbose) console.log(`[serve] 200 ${url.pathname}`);
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).on('error', () => res.destroy()).pipe(res);
    } catch {
      if (verbose) console.log(`[serve] 404 ${url.pathname}`);
      send(res, 404, `not found: ${url.pathname}`);
    }
  }
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolvePromise({
        server,
        url: `http://${host}:${addr.port}`,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

function parseArgs(argv) {
  const opts = { port: 8080, host: '127.0.0.1', verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--verbose') opts.verbose = true;
    else throw new Error(`serve: unknown argument ${a} (usage: node scripts/serve.mjs [--port N] [--host H] [--verbose])`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`serve: --port must be an integer 0..65535`);
  return opts;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  if (!existsSync(join(ROOT, 'build', 'site', 'index.html'))) {
    console.warn('[serve] build/site/index.html is missing: run `npm run build:web` first');
  }
  const { url } = await startServer(opts);
  console.log(`[serve] demo page: ${url}/   (in-browser tests: ${url}/test/ after \`npm run test:browser\`)`);
  process.on('SIGINT', () => process.exit(0));
}
