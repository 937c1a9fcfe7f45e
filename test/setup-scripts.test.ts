import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to build/test/, so the repository root is two levels up.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs setup-lavapipe.sh's debian_archive_uri on the named sample files (sourced: nothing is installed). */
function archiveUri(files: Record<string, string>, suite = 'bookworm'): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'apt-sources-'));
  const paths = Object.entries(files).map(([name, text]) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  });
  const r = spawnSync('bash', ['-c', 'source "$1"; shift; debian_archive_uri "$@"', 'bash', join(ROOT, 'scripts', 'setup-lavapipe.sh'), suite, ...paths, join(dir, 'missing.list')], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, out: r.stdout };
}

test('setup-lavapipe: backports come from the URI of the machine\'s own deb822 Debian source', () => {
  const r = archiveUri({
    'debian.sources': [
      'Types: deb',
      '# http://snapshot.debian.org/archive/debian/20250520T000000Z',
      'URIs: http://mirror.internal.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://mirror.internal.example/debian-security',
      'Suites: bookworm-security',
      '',
    ].join('\n'),
  });
  assert.equal(r, { status: 0, out: 'http://mirror.internal.example/debian\n' });
});

test('setup-lavapipe: deb822 stanzas that are disabled, deb-src only, security, CD-ROM or another release are passed over', () => {
  const stanza = (fields: string) => fields.replace(/; /g, '\n') + '\n\n';
  const r = archiveUri({
    'a.sources':
      stanza('Types: deb; URIs: http://off.example/debian; Suites: bookworm; Enabled: no') +
      stanza('Types: deb-src; URIs: http://src.example/debian; Suites: bookworm') +
      stanza('Types: deb; URIs: http://sec.example/debian-security; Suites: bookworm-security') +
      stanza('Types: deb; URIs: cdrom:[Debian 12]/; Suites: bookworm') +
      stanza('Types: deb; URIs: http://old.example/debian; Suites: bullseye') +
      // Field names are case-insensitive and a value may continue on the next line.
      stanza('types: deb-src deb; uris:\n  https://proxy.example/debian\n  http://second.example/debian; suites: bookworm-updates'),
  });
  assert.equal(r, { status: 0, out: 'https://proxy.example/debian\n' });
});

test('setup-lavapipe: one-line sources.list entries, with [options], are read too', () => {
  const r = archiveUri({
    'sources.list': [
      '# deb http://commented.example/debian bookworm main',
      'deb-src http://src.example/debian bookworm main',
      'deb http://security.example/debian-security bookworm-security main',
      'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://local.example/debian bookworm main',
    ].join('\n') + '\n',
  });
  assert.equal(r, { status: 0, out: 'http://local.example/debian\n' });
});

test('setup-lavapipe: no Debian source for the release fails, printing nothing (no host is guessed)', () => {
  const r = archiveUri({ 'x.sources': 'Types: deb\nURIs: http://a.example/ubuntu\nSuites: jammy\n', 'y.list': 'deb http://b.example/debian trixie main\n' });
  assert.equal(r, { status: 1, out: '' });
});

test('setup-lavapipe: no fixed mirror host is left in the script', () => {
  const r = spawnSync('grep', ['-n', 'deb.debian.org', join(ROOT, 'scripts', 'setup-lavapipe.sh')], { encoding: 'utf8' });
  assert.is(r.stdout, '');
});

/** Runs interop/torch/setup.sh's pip_index_reachable with python3 and pip's environment `env`. */
function reachableWith(env: NodeJS.ProcessEnv): Promise<boolean> {
  // Asynchronous: the index it asks is served by this very process.
  return new Promise((done) => {
    execFile('bash', ['-c', 'source "$1"; pip_index_reachable python3', 'bash', join(ROOT, 'interop', 'torch', 'setup.sh')], { env, timeout: 90_000 }, (err) => done(!err));
  });
}

/** pip_index_reachable with pip pointed at `index` only (and the wheel folder `findLinks`). */
function indexReachable(index: string, findLinks: string): Promise<boolean> {
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_CONFIG_FILE: '/dev/null', PIP_INDEX_URL: index, PIP_FIND_LINKS: findLinks };
  delete env.PIP_EXTRA_INDEX_URL;
  delete env.PIP_NO_INDEX;
  return reachableWith(env);
}

/** A package index on 127.0.0.1 that lists pip (its simple page only), and how to stop it. */
async function pipIndexServer(): Promise<{ url: string; close: () => Promise<unknown> }> {
  const server = createServer((req, res) => {
    if (req.url === '/simple/pip/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<a href="/files/pip-24.0-py3-none-any.whl">pip-24.0-py3-none-any.whl</a>');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/simple/`, close: () => new Promise((r) => server.close(r)) };
}

const hasPip = spawnSync('python3', ['-m', 'pip', '--version'], { timeout: 30_000 }).status === 0;

test('torch setup: the index probe asks pip, so the configured index (here a local one) is what counts, not a fixed host', async () => {
  if (!hasPip) return console.log('  (skipped: no python3 with pip)');
  // A wheel folder that holds "pip" must not make an unreachable index look reachable.
  const links = mkdtempSync(join(tmpdir(), 'wheels-'));
  writeFileSync(join(links, 'pip-99.0-py3-none-any.whl'), '');
  const index = await pipIndexServer();
  try {
    assert.is(await indexReachable(index.url, links), true, 'a reachable configured index');
  } finally {
    await index.close();
  }
  // The port just closed: nothing listens there now.
  assert.is(await indexReachable(index.url, links), false, 'an unreachable one, wheel folder or not');
});

test('torch setup: only the primary index counts; an extra index (a local mirror) that answers does not make a dead one reachable', async () => {
  if (!hasPip) return console.log('  (skipped: no python3 with pip)');
  const index = await pipIndexServer();
  const live = index.url;
  // An index that was served and has stopped: nothing answers there.
  const gone = await pipIndexServer();
  await gone.close();
  const closed = gone.url;
  const dir = mkdtempSync(join(tmpdir(), 'pip-conf-'));
  const probe = (index: string, extra: string) => {
    // As this machine's pip is set up: index and extra index in a config file, not the environment.
    const conf = join(dir, 'pip.conf');
    writeFileSync(conf, `[global]\nindex-url = ${index}\nextra-index-url = ${extra}\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, PIP_CONFIG_FILE: conf, PIP_FIND_LINKS: '' };
    delete env.PIP_INDEX_URL;
    delete env.PIP_EXTRA_INDEX_URL;
    return reachableWith(env);
  };
  try {
    assert.is(await probe(closed, live), false, 'a dead primary index with a live extra one is unreachable (pip would retry it for every package)');
    assert.is(await probe(live, closed), true, 'the primary index from the config file is the one probed');
  } finally {
    await index.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('setup scripts: no fixed package-index host is left in the torch set-up', () => {
  const r = spawnSync('grep', ['-n', 'pypi.org\\|pythonhosted', join(ROOT, 'interop', 'torch', 'setup.sh')], { encoding: 'utf8' });
  assert.is(r.stdout, '');
});

test.run();
