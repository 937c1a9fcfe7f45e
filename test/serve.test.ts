import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function get(url: string, path: string, host?: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((done, fail) => {
    const req = request({ host: u.hostname, port: u.port, path, headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** Sends `raw` over a fresh socket and resolves with everything the server wrote before closing. */
function rawRequest(url: string, raw: string): Promise<string> {
  const u = new URL(url);
  return new Promise((done, fail) => {
    const sock = connect({ host: '127.0.0.1', port: Number(u.port) });
    let got = '';
    sock.setTimeout(5000, () => { sock.destroy(); fail(new Error(`no answer to ${JSON.stringify(raw)}`)); });
    sock.on('data', (d) => { got += d; });
    sock.on('end', () => done(got));
    sock.on('error', fail);
    sock.write(raw);
  });
}

test('demo server: a malformed request target is answered 400 and the server keeps serving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-'));
  writeFileSync(join(dir, 'index.html'), '<p>demo</p>');
  const { startServer } = await import(pathToFileURL(join(ROOT, 'scripts', 'serve.mjs')).href);
  const { url, close } = await startServer({ port: 0, mounts: [{ prefix: '/', dir }] });
  try {
    // Each of these made `new URL()` throw before any check, and the server process exited.
    for (const target of ['//[', '//a:99999', '//%', '//', 'http://x/', '*']) {
      const answer = await rawRequest(url, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 400 /, target);
      assert.match(answer, /bad request target/, target);
    }
    assert.equal(await get(url, '/'), { status: 200, body: '<p>demo</p>' });
  } finally {
    await close();
  }
});

test('demo server: an exception inside the handler is answered 500 and the server keeps serving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-'));
  writeFileSync(join(dir, 'index.html'), '<p>demo</p>');
  const { startServer } = await import(pathToFileURL(join(ROOT, 'scripts', 'serve.mjs')).href);
  // A mount that throws when looked at stands in for any bug in the handler.
  const broken = { prefix: '/boom/', get dir(): string { throw new Error('broken mount'); } };
  const { url, close } = await startServer({ port: 0, mounts: [broken, { prefix: '/', dir }] });
  const logged: unknown[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => { logged.push(a.join(' ')); };
  try {
    assert.is((await get(url, '/boom/x')).status, 500);
    assert.match(String(logged[0]), /internal error on "\/boom\/x": broken mount/);
    assert.equal(await get(url, '/'), { status: 200, body: '<p>demo</p>' });
  } finally {
    console.error = error;
    await close();
  }
});

test('demo server: answers only to localhost names, never follows links out of a mount, refuses traversal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-'));
  const site = join(dir, 'site');
  mkdirSync(site);
  writeFileSync(join(site, 'index.html'), '<p>demo</p>');
  writeFileSync(join(dir, 'secret.txt'), 'secret');
  symlinkSync(join(dir, 'secret.txt'), join(site, 'leak.txt'));
  mkdirSync(join(site, 'sub'));
  writeFileSync(join(site, 'sub', 'ok.txt'), 'ok');
  symlinkSync(join(site, 'sub', 'ok.txt'), join(site, 'inside.txt'));
  const { startServer } = await import(pathToFileURL(join(ROOT, 'scripts', 'serve.mjs')).href);
  const { url, close } = await startServer({ port: 0, mounts: [{ prefix: '/', dir: site }] });
  try {
    assert.is((await get(url, '/')).status, 200);
    assert.is((await get(url, '/', `localhost:${new URL(url).port}`)).status, 200);
    const rebound = await get(url, '/', 'evil.example:80');
    assert.is(rebound.status, 403);
    assert.match(rebound.body, /answers only to 127\.0\.0\.1 \/ localhost/);
    assert.is((await get(url, '/leak.txt')).status, 404, 'a link out of the mount is not followed');
    const inside = await get(url, '/inside.txt');
    assert.equal([inside.status, inside.body], [200, 'ok'], 'a link within the mount is');
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/sub/..%2f..%2fsecret.txt', '/.hidden']) {
      assert.is((await get(url, p)).status, 404, p);
    }
  } finally {
    await close();
  }
});

test.run();
