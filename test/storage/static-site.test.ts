/**
 * Static hosting: caching headers, conditional and range requests, precompression, MIME,
 * 405s, and every escape attempt listed in the issue, sent raw on a socket (fetch would
 * normalise the paths before they left the client). Then deploy, switch and rollback.
 */
import { mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/index.js';
import { FsBlobStore } from '../../src/storage/blob/fs-blob-store.js';
import {
  DeploymentSource,
  deployStatic,
  rollbackStatic,
} from '../../src/storage/static/static-deploy.js';
import { FolderSource, StaticSite, startStaticSite } from '../../src/storage/static/static-site.js';

let tmp: string;
let root: string;
let site: Awaited<ReturnType<typeof startStaticSite>>;
const SECRET = 'SECRET-OUTSIDE-THE-ROOT';
const appJs = 'console.log("app");'.repeat(50);

/** Every escape attempt the issue lists, and a few more. */
const ESCAPES = [
  '/../secret.txt',
  '/..%2fsecret.txt',
  '/%2e%2e/secret.txt',
  '/..%5csecret.txt',
  '/%252e%252e/secret.txt',
  '/%c0%ae%c0%ae/secret.txt',
  '/x%00.js',
  '/....//secret.txt',
  '//host/%2e%2e/secret.txt',
  '/.env',
  '/%2eenv',
  '/leak',
  '/dirleak/secret.txt',
  '/sub/../../secret.txt',
  '/sub/%2e%2e/%2e%2e/secret.txt',
  '/%2E%2E%2Fsecret.txt',
  '/..\\secret.txt',
  '/sub/..%252f..%252fsecret.txt',
  '/.%2e/secret.txt',
];

function raw(
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
  port = site.port,
): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const i = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(text.slice(9, 12)),
        headers: text.slice(0, i),
        body: text.slice(i + 4),
      });
    });
    const h = Object.entries({ Host: 'localhost', Connection: 'close', ...headers })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    sock.write(`${method} ${target} HTTP/1.1\r\n${h}\r\n`);
  });
}

const header = (r: { headers: string }, name: string) =>
  new RegExp(`^${name}: (.*)$`, 'im').exec(r.headers)?.[1]?.trim();

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cdp-static-'));
  root = join(tmp, 'site');
  await mkdir(join(root, 'sub'), { recursive: true });
  await writeFile(join(tmp, 'secret.txt'), SECRET);
  await writeFile(join(root, 'index.html'), '<!doctype html><script src="/app.js"></script>');
  await writeFile(join(root, 'app.js'), appJs);
  await writeFile(join(root, 'app.js.br'), brotliCompressSync(appJs));
  await writeFile(join(root, 'app.js.gz'), gzipSync(appJs));
  await writeFile(join(root, 'style.3f2a9c1b.css'), 'body{}');
  await writeFile(join(root, 'sub', 'page.html'), '<p>page</p>');
  await writeFile(join(root, 'data.bin'), Buffer.from('0123456789'));
  await writeFile(join(root, '.env'), `TOKEN=${SECRET}`);
  await writeFile(join(root, 'x'), 'x');
  await symlink(join(tmp, 'secret.txt'), join(root, 'leak'));
  await symlink(tmp, join(root, 'dirleak'));
  await utimes(
    join(root, 'data.bin'),
    new Date('2026-01-01T00:00:00Z'),
    new Date('2026-01-01T00:00:00Z'),
  );
  site = await startStaticSite({
    source: new FolderSource({ root, revalidateMs: 0 }),
    headersTimeoutMs: 300,
  });
});

afterAll(async () => {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('static site handler', () => {
  it('serves files with strong ETag, Last-Modified, MIME and cache policy', async () => {
    const r = await raw('/data.bin');
    expect(r.status).toBe(200);
    expect(r.body).toBe('0123456789');
    expect(header(r, 'ETag')).toMatch(/^"[0-9a-f]{32}"$/);
    expect(header(r, 'Last-Modified')).toBe('Thu, 01 Jan 2026 00:00:00 GMT');
    expect(header(r, 'Content-Type')).toBe('application/octet-stream');
    expect(header(r, 'Cache-Control')).toBe('public, max-age=3600');
    const html = await raw('/');
    expect(html.status).toBe(200);
    expect(header(html, 'Content-Type')).toBe('text/html; charset=utf-8');
    expect(header(html, 'Cache-Control')).toBe('public, max-age=60');
    const css = await raw('/style.3f2a9c1b.css');
    expect(header(css, 'Cache-Control')).toBe('public, max-age=31536000, immutable');
    expect(header(css, 'Content-Type')).toBe('text/css; charset=utf-8');
    expect((await raw('/sub/page.html')).body).toBe('<p>page</p>');
    expect((await raw('/absent.txt')).status).toBe(404);
  });

  it('answers 304 to If-None-Match and If-Modified-Since', async () => {
    const etag = header(await raw('/data.bin'), 'ETag')!;
    expect((await raw('/data.bin', { 'If-None-Match': etag })).status).toBe(304);
    expect((await raw('/data.bin', { 'If-None-Match': '"other"' })).status).toBe(200);
    expect(
      (await raw('/data.bin', { 'If-Modified-Since': 'Thu, 01 Jan 2026 00:00:00 GMT' })).status,
    ).toBe(304);
    expect(
      (await raw('/data.bin', { 'If-Modified-Since': 'Wed, 31 Dec 2025 00:00:00 GMT' })).status,
    ).toBe(200);
  });

  it('serves one range (206), refuses unsatisfiable ones (416), ignores 1,000 ranges', async () => {
    const r = await raw('/data.bin', { Range: 'bytes=2-4' });
    expect([r.status, r.body, header(r, 'Content-Range')]).toEqual([206, '234', 'bytes 2-4/10']);
    expect((await raw('/data.bin', { Range: 'bytes=-3' })).body).toBe('789');
    for (const bad of ['bytes=-0', 'bytes=10-', 'bytes=20-30', 'bytes=5-2', 'items=0-1']) {
      const x = await raw('/data.bin', { Range: bad });
      expect([bad, x.status, header(x, 'Content-Range')]).toEqual([bad, 416, 'bytes */10']);
    }
    const many = Array.from({ length: 1000 }, (_, i) => `${i % 10}-${i % 10}`).join(',');
    const m = await raw('/data.bin', { Range: `bytes=${many}` });
    expect([m.status, m.body]).toEqual([200, '0123456789']);
    const etag = header(await raw('/data.bin'), 'ETag')!;
    expect((await raw('/data.bin', { Range: 'bytes=0-1', 'If-Range': '"stale"' })).status).toBe(
      200,
    );
    expect((await raw('/data.bin', { Range: 'bytes=0-1', 'If-Range': etag })).status).toBe(206);
  });

  it('serves precompressed br and gzip with Vary: Accept-Encoding', async () => {
    const br = await raw('/app.js', { 'Accept-Encoding': 'gzip, br' });
    expect(header(br, 'Content-Encoding')).toBe('br');
    expect(header(br, 'Vary')).toBe('Accept-Encoding');
    expect(Number(header(br, 'Content-Length'))).toBe(brotliCompressSync(appJs).length);
    const gz = await raw('/app.js', { 'Accept-Encoding': 'gzip' });
    expect(header(gz, 'Content-Encoding')).toBe('gzip');
    const plain = await raw('/app.js');
    expect(header(plain, 'Content-Encoding')).toBeUndefined();
    expect(header(plain, 'Vary')).toBe('Accept-Encoding');
    expect(plain.body).toBe(appJs);
    expect(header(plain, 'Content-Type')).toBe('text/javascript; charset=utf-8');
    expect(header(br, 'ETag')).not.toBe(header(plain, 'ETag'));
  });

  it('refuses writes with 405', async () => {
    for (const m of ['PUT', 'POST', 'DELETE', 'PATCH']) {
      const r = await raw('/x', { 'Content-Length': '0' }, m);
      expect([m, r.status, header(r, 'Allow')]).toEqual([m, 405, 'GET, HEAD']);
    }
  });

  it('never leaks a byte outside the root, by any encoding or symlink', async () => {
    for (const a of ESCAPES) {
      const r = await raw(a);
      expect([a, r.status === 200 || r.status === 206]).toEqual([a, false]);
      expect(r.body).not.toContain(SECRET);
    }
    const r = await raw('/leak', { Range: 'bytes=0-3' });
    expect(r.status).toBe(404);
  });

  it('cuts off a request whose headers trickle in (408, connection closed)', async () => {
    const sock = connect(site.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    const closed = new Promise<string>((r) =>
      sock.on('close', () => r(Buffer.concat(chunks).toString('latin1'))),
    );
    sock.write('GET /index.html HTTP/1.1\r\n');
    const rest = `Host: x\r\nX-Slow: ${'a'.repeat(10_000)}\r\n\r\n`;
    let i = 0;
    const t = setInterval(() => {
      if (!sock.destroyed && i < rest.length) sock.write(rest[i++]!);
    }, 50);
    expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
    clearInterval(t);
  });

  it('mounts as a plain handler', async () => {
    const s = new StaticSite({ source: new FolderSource({ root }) });
    const srv = createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    expect(await (await fetch(`http://127.0.0.1:${port}/data.bin`)).text()).toBe('0123456789');
    await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
    });
  });
});

describe('static site caches (stat trusted for revalidateMs, headers computed once)', () => {
  let croot: string;
  let clock: ManualClock;
  let cached: Awaited<ReturnType<typeof startStaticSite>>;
  let source: FolderSource;
  const get = (t: string, h: Record<string, string> = {}) => raw(t, h, 'GET', cached.port);
  const strip = (headers: string) => headers.replace(/^Date: .*$/im, '');

  beforeAll(async () => {
    croot = join(tmp, 'cached');
    await mkdir(croot, { recursive: true });
    await writeFile(join(croot, 'f.txt'), 'version one');
    await writeFile(join(croot, 'app.js'), appJs);
    await writeFile(join(croot, 'app.js.gz'), gzipSync(appJs));
    await symlink(join(tmp, 'secret.txt'), join(croot, 'leak'));
    clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
    source = new FolderSource({ root: croot, clock, revalidateMs: 1000 });
    cached = await startStaticSite({ source });
  });

  afterAll(async () => {
    await cached.close();
  });

  it('answers from the caches with the same bytes and headers as the first, uncached answer', async () => {
    expect(source.resolveCached(['f.txt'])).toBeUndefined();
    const first = await get('/f.txt');
    expect(first.body).toBe('version one');
    // Now the fast path is taken: the source answers without I/O.
    expect(source.resolveCached(['f.txt'])?.size).toBe(11);
    expect(source.resolveCached(['f.txt.gz'])).toBeNull();
    const second = await get('/f.txt');
    expect([second.status, second.body, strip(second.headers)]).toEqual([
      200,
      'version one',
      strip(first.headers),
    ]);
    const etag = header(first, 'ETag')!;
    expect((await get('/f.txt', { 'If-None-Match': etag })).status).toBe(304);
    const part = await get('/f.txt', { Range: 'bytes=0-6' });
    expect([part.status, part.body]).toEqual([206, 'version']);
    const gz1 = await get('/app.js', { 'Accept-Encoding': 'gzip' });
    const gz2 = await get('/app.js', { 'Accept-Encoding': 'gzip' });
    expect(header(gz2, 'Content-Encoding')).toBe('gzip');
    expect(strip(gz2.headers)).toBe(strip(gz1.headers));
    const plain = await get('/app.js');
    expect([header(plain, 'Content-Encoding'), plain.body]).toEqual([undefined, appJs]);
    expect(header(plain, 'Vary')).toBe('Accept-Encoding');
  });

  it('serves a changed, deleted or new file fresh once revalidateMs has passed', async () => {
    const before = await get('/f.txt');
    expect((await get('/new.txt')).status).toBe(404);
    await writeFile(join(croot, 'f.txt'), 'version two, longer');
    await writeFile(join(croot, 'new.txt'), 'new');
    // Within the window the cached answer stands (the documented staleness bound)...
    expect((await get('/f.txt')).body).toBe('version one');
    expect((await get('/new.txt')).status).toBe(404);
    await clock.advance(1000);
    // ...and after it, the new bytes with a new ETag; the new file is found.
    const after = await get('/f.txt');
    expect(after.body).toBe('version two, longer');
    expect(header(after, 'ETag')).not.toBe(header(before, 'ETag'));
    expect(header(after, 'Content-Length')).toBe('19');
    expect((await get('/new.txt')).body).toBe('new');
    await unlink(join(croot, 'f.txt'));
    await clock.advance(1000);
    expect((await get('/f.txt')).status).toBe(404);
  });

  it('never leaks a byte outside the root, asked twice (the second answer from the caches)', async () => {
    for (let round = 0; round < 2; round++) {
      for (const a of ESCAPES) {
        const r = await get(a);
        expect([round, a, r.status === 200 || r.status === 206]).toEqual([round, a, false]);
        expect(r.body).not.toContain(SECRET);
      }
    }
  });
});

describe('static deploy', () => {
  it('fingerprints, uploads, switches atomically and rolls back', async () => {
    const storeDir = join(tmp, 'store');
    const store = await FsBlobStore.open({ dir: storeDir, fsync: false });
    const d1 = await deployStatic({ dir: root, store });
    expect(d1.previous).toBeUndefined();
    const source = new DeploymentSource({ store, revalidateMs: 0 });
    const s = new StaticSite({ source });
    const srv = createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    const html1 = await (await fetch(`${base}/`)).text();
    const m = /src="\/(app\.[0-9a-f]{10}\.js)"/.exec(html1);
    expect(m).not.toBeNull();
    const asset = await fetch(`${base}/${m![1]}`);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await asset.text()).toBe(appJs);
    expect((await fetch(`${base}/.env`)).status).toBe(400);
    // v2: a changed page, then roll back to v1.
    const v2 = join(tmp, 'v2');
    await mkdir(v2, { recursive: true });
    await writeFile(join(v2, 'index.html'), '<p>v2</p>');
    const d2 = await deployStatic({ dir: v2, store });
    expect(d2.previous).toBe(d1.version);
    expect(await (await fetch(`${base}/`)).text()).toBe('<p>v2</p>');
    // A page loaded before the switch still gets its own version's fingerprinted assets...
    expect(await (await fetch(`${base}/${m![1]}`)).text()).toBe(appJs);
    // ...but an old non-fingerprinted name is not served from an earlier version.
    expect((await fetch(`${base}/app.js`)).status).toBe(404);
    const rb = await rollbackStatic({ store });
    expect(rb).toEqual({ version: d1.version, from: d2.version });
    expect(await (await fetch(`${base}/`)).text()).toBe(html1);
    await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
    });
  });
});

describe('static deploy as a deploy tool', () => {
  async function serve(store: FsBlobStore) {
    const s = new StaticSite({ source: new DeploymentSource({ store, revalidateMs: 0 }) });
    const srv = createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return {
      base: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
      close: () =>
        new Promise<void>((r) => {
          srv.close(() => r());
          srv.closeAllConnections();
        }),
    };
  }

  async function relativeSite(at: string) {
    await mkdir(join(at, 'css'), { recursive: true });
    await mkdir(join(at, 'img'), { recursive: true });
    await mkdir(join(at, 'docs'), { recursive: true });
    await writeFile(
      join(at, 'index.html'),
      [
        '<!doctype html><html><head>',
        '<link rel="stylesheet" href="css/app.css">',
        "<style>.hero{background:url('img/bg.png')}</style>",
        '</head><body style="background-image: url(img/bg.png)">',
        '<img src="./img/logo.png?x=1#top" alt="a &amp; b">',
        '<a href="docs/">docs</a> <a href="https://cdn.example/css/app.css">cdn</a>',
        '<img src="img/gone.png">',
        '<img src="data:image/png;base64,AAAA"> <script src="//cdn.example/app.js"></script>',
        '<a href="#top">top</a> <a href="mailto:a@example.com">mail</a>',
        '<p>css/app.css stays as text</p>',
        '</body></html>',
      ].join('\n'),
    );
    await writeFile(
      join(at, 'css', 'app.css'),
      '@import "base.css";\nh1{background:url(../img/bg.png)}',
    );
    await writeFile(join(at, 'css', 'base.css'), 'body{margin:0}');
    await writeFile(join(at, 'img', 'bg.png'), 'bg');
    await writeFile(join(at, 'img', 'logo.png'), 'logo');
    await writeFile(join(at, 'docs', 'index.html'), '<img src="../img/logo.png">');
  }

  it('rewrites relative references in HTML and CSS to fingerprinted names, reports them, and those files are cached as immutable', async () => {
    const dir = join(tmp, 'relative');
    await relativeSite(dir);
    const store = await FsBlobStore.open({ dir: join(tmp, 'store-relative'), fsync: false });
    const d = await deployStatic({ dir, store });
    const s = await serve(store);
    try {
      const html = await (await fetch(`${s.base}/`)).text();
      const css = /href="(css\/app\.[0-9a-f]{10}\.css)"/.exec(html)?.[1];
      expect(css, html).toBeDefined();
      expect(html).toMatch(/\.hero\{background:url\(img\/bg\.[0-9a-f]{10}\.png\)\}/);
      expect(html).toMatch(/style="background-image: url\(img\/bg\.[0-9a-f]{10}\.png\)"/);
      expect(html).toMatch(/src="\.\/img\/logo\.[0-9a-f]{10}\.png\?x=1#top" alt="a &amp; b"/);
      expect(html).toContain('href="docs/"');
      expect(html).toContain('href="https://cdn.example/css/app.css"');
      expect(html).toContain('<p>css/app.css stays as text</p>');
      const sheet = await fetch(`${s.base}/${css}`);
      expect(sheet.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const text = await sheet.text();
      const base = /@import "(base\.[0-9a-f]{10}\.css)"/.exec(text)?.[1];
      expect(base, text).toBeDefined();
      const bg = /url\(\.\.\/(img\/bg\.[0-9a-f]{10}\.png)\)/.exec(text)?.[1];
      expect(bg, text).toBeDefined();
      for (const path of [`css/${base}`, bg]) {
        const r = await fetch(`${s.base}/${path}`);
        expect([path, r.status, r.headers.get('cache-control')]).toEqual([
          path,
          200,
          'public, max-age=31536000, immutable',
        ]);
      }
      expect(await (await fetch(`${s.base}/docs/`)).text()).toMatch(
        /src="\.\.\/img\/logo\.[0-9a-f]{10}\.png"/,
      );
      const rewritten = d.rewrites.map((r) => `${r.file}: ${r.from}`).sort();
      expect(rewritten).toEqual([
        'css/app.css: ../img/bg.png',
        'css/app.css: base.css',
        'docs/index.html: ../img/logo.png',
        'index.html: ./img/logo.png?x=1#top',
        'index.html: css/app.css',
        'index.html: img/bg.png',
        'index.html: img/bg.png',
      ]);
      expect(d.missing).toEqual([{ file: 'index.html', ref: 'img/gone.png' }]);
    } finally {
      await s.close();
    }
  });

  it('does not create a new version for identical content, and does for a changed image', async () => {
    const dir = join(tmp, 'same');
    await relativeSite(dir);
    const store = await FsBlobStore.open({ dir: join(tmp, 'store-same'), fsync: false });
    const d1 = await deployStatic({ dir, store });
    const d2 = await deployStatic({ dir, store });
    expect([d2.unchanged, d2.version]).toEqual([true, d1.version]);
    const versions = await store.list({ prefix: 'site/v/', delimiter: '/' });
    expect(versions.commonPrefixes).toEqual([`site/v/${d1.version}/`]);
    // A new image changes the stylesheet that refers to it, hence a new version.
    await writeFile(join(dir, 'img', 'bg.png'), 'bg two');
    const d3 = await deployStatic({ dir, store });
    expect([d3.unchanged, d3.previous]).toEqual([false, d1.version]);
  });

  it('answers a 404 that says no site is deployed', async () => {
    const store = await FsBlobStore.open({ dir: join(tmp, 'store-empty'), fsync: false });
    const s = await serve(store);
    try {
      const r = await fetch(`${s.base}/`);
      expect(r.status).toBe(404);
      expect(await r.text()).toMatch(/no site is deployed under "site\/"/);
    } finally {
      await s.close();
    }
  });
});
