import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
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
