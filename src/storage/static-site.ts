/**
 * Static Content Hosting: a read-only HTTP handler for a folder or a deployed site in a blob
 * store. Strong ETags from content hashes, Last-Modified, 304s, one byte range (206) or a
 * correct 416, immutable caching for fingerprinted files and a short TTL for HTML,
 * precompressed `.br`/`.gz` variants with `Vary: Accept-Encoding`, MIME types, no dotfiles,
 * 405 for writes, and no path that leaves the root: the raw path is decoded once, refused if
 * it holds `.`/`..` segments, backslashes, NUL or invalid UTF-8, and the real path (symlinks
 * resolved) must stay under the real root.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Clock, systemClock } from '../core/index.js';
import { parseRangeHeader, resolveRange } from './blob-store.js';
import { percentDecode, utf8OrThrow } from './sigv4.js';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.webmanifest': 'application/manifest+json',
};

export function mimeType(path: string): string {
  return MIME[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** `app.3f2a9c1b.js`: a content hash of 8+ hex digits before the extension. */
export const FINGERPRINT = /\.[0-9a-f]{8,64}\.[A-Za-z0-9]+$/;

/** One servable file (or a precompressed variant of it). */
export interface StaticFile {
  /** Path relative to the root, `/`-separated, for MIME and cache decisions. */
  path: string;
  size: number;
  /** Hex SHA-256 of the bytes: the strong ETag. */
  sha256: string;
  lastModified: number;
  /** The bytes when small enough to keep in memory. */
  bytes: Buffer | undefined;
  open(range: { start: number; end: number } | undefined): Promise<Readable>;
}

export interface StaticSource {
  /** The file at these decoded, already-validated segments, or null (404). */
  resolve(segments: readonly string[]): Promise<StaticFile | null>;
  close?(): Promise<void>;
}

export interface FolderSourceOptions {
  root: string;
  clock?: Clock;
  /** How long a file's stat (or absence) is trusted before checking the disk again. Default 1000 ms. */
  revalidateMs?: number;
  /** Files up to this size are kept in memory (default 1 MiB); total cap 64 MiB. */
  memoryBytes?: number;
}

interface Cached {
  ino: number;
  mtimeMs: number;
  size: number;
  file: StaticFile;
}

/** Serve a folder. File hashes (and small files' bytes) are cached, keyed by inode/mtime/size. */
export class FolderSource implements StaticSource {
  readonly #root: string;
  #realRoot: string | undefined;
  readonly #max: number;
  readonly #cache = new Map<string, Cached>();
  readonly #stats = new Map<string, { at: number; st: Stats | null }>();
  readonly #clock: Clock;
  readonly #ttl: number;
  #cachedBytes = 0;

  constructor(o: FolderSourceOptions) {
    this.#root = o.root;
    this.#max = o.memoryBytes ?? 1024 * 1024;
    this.#clock = o.clock ?? systemClock;
    this.#ttl = o.revalidateMs ?? 1000;
  }

  async #stat(full: string): Promise<Stats | null> {
    const now = this.#clock.now();
    const hit = this.#stats.get(full);
    if (hit && now - hit.at < this.#ttl) return hit.st;
    const st = await stat(full).catch(() => null);
    if (this.#stats.size > 10_000) this.#stats.clear();
    this.#stats.set(full, { at: now, st });
    return st;
  }

  async resolve(segments: readonly string[]): Promise<StaticFile | null> {
    this.#realRoot ??= await realpath(this.#root);
    const rel = segments.join('/');
    const full = join(this.#realRoot, ...segments);
    const st = await this.#stat(full);
    if (!st) return null;
    if (st.isDirectory()) return this.resolve([...segments, 'index.html'].filter((s) => s !== ''));
    if (!st.isFile()) return null;
    const hit = this.#cache.get(rel);
    if (hit && hit.ino === st.ino && hit.mtimeMs === st.mtimeMs && hit.size === st.size)
      return hit.file;
    // Symlinks: the real path must stay under the real root.
    const real = await realpath(full).catch(() => null);
    if (!real || !(real === this.#realRoot || real.startsWith(this.#realRoot + sep))) return null;
    const keep = st.size <= this.#max && this.#cachedBytes + st.size <= 64 * 1024 * 1024;
    const h = createHash('sha256');
    let bytes: Buffer | undefined;
    const fh = await open(real, 'r');
    try {
      if (keep) {
        bytes = await fh.readFile();
        h.update(bytes);
      } else {
        for await (const ch of fh.createReadStream({ autoClose: false })) h.update(ch as Buffer);
      }
    } finally {
      await fh.close();
    }
    const file: StaticFile = {
      path: rel,
      size: bytes?.length ?? st.size,
      sha256: h.digest('hex'),
      lastModified: Math.floor(st.mtimeMs / 1000) * 1000,
      bytes,
      open: async (r) =>
        bytes
          ? Readable.from([r ? bytes.subarray(r.start, r.end + 1) : bytes])
          : createReadStream(real, r ? { start: r.start, end: r.end } : {}),
    };
    if (hit?.file.bytes) this.#cachedBytes -= hit.file.bytes.length;
    if (bytes) this.#cachedBytes += bytes.length;
    this.#cache.set(rel, { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, file });
    return file;
  }
}

export interface StaticSiteOptions {
  source: StaticSource;
  /** Cache-Control max-age for HTML, seconds (default 60). */
  htmlMaxAge?: number;
  /** For other non-fingerprinted files (default 3600). */
  defaultMaxAge?: number;
}

type Outcome = { status: number; headers?: Record<string, string> };

/** Validate a raw request path into decoded segments, or null (400). */
export function safeSegments(rawUrl: string): string[] | null {
  const q = rawUrl.indexOf('?');
  const raw = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (!raw.startsWith('/') || raw.includes('\\')) return null;
  let decoded: string;
  try {
    decoded = utf8OrThrow(percentDecode(raw), 'path');
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segs = decoded.split('/').slice(1);
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '') {
      if (i === segs.length - 1) continue; // trailing slash: a directory
      return null; // `//`
    }
    if (s === '.' || s === '..' || s.startsWith('.')) return null; // traversal and dotfiles
    out.push(s);
  }
  return out;
}

export class StaticSite {
  readonly #o: StaticSiteOptions;

  constructor(o: StaticSiteOptions) {
    this.#o = o;
  }

  /** Handle one request (never throws; answers 400/404/405/416 itself). */
  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await this.#serve(req, res);
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'Content-Length': 0 }).end();
      else res.destroy();
    }
  };

  #end(res: ServerResponse, o: Outcome) {
    res.writeHead(o.status, { 'Content-Length': '0', ...(o.headers ?? {}) }).end();
  }

  async #serve(req: IncomingMessage, res: ServerResponse) {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      this.#end(res, { status: 405, headers: { Allow: 'GET, HEAD' } });
      return;
    }
    const segs = safeSegments(req.url ?? '/');
    if (!segs) {
      this.#end(res, { status: 400 });
      return;
    }
    const path =
      segs.length === 0 || (req.url ?? '/').split('?')[0]!.endsWith('/')
        ? [...segs, 'index.html']
        : segs;
    const file = await this.#o.source.resolve(path);
    if (!file) {
      this.#end(res, { status: 404 });
      return;
    }
    // Precompressed variants.
    const ae = String(req.headers['accept-encoding'] ?? '');
    let body = file;
    let encoding: string | undefined;
    const br = await this.#o.source.resolve([...path.slice(0, -1), `${path[path.length - 1]}.br`]);
    const gz =
      br && /\bbr\b/.test(ae)
        ? null
        : await this.#o.source.resolve([...path.slice(0, -1), `${path[path.length - 1]}.gz`]);
    if (br && /\bbr\b/.test(ae)) {
      body = br;
      encoding = 'br';
    } else if (gz && /\bgzip\b/.test(ae)) {
      body = gz;
      encoding = 'gzip';
    }
    const name = path[path.length - 1]!;
    const isHtml = /\.html?$/i.test(name);
    const headers: Record<string, string> = {
      'Content-Type': mimeType(name),
      ETag: `"${body.sha256.slice(0, 32)}${encoding ? `-${encoding}` : ''}"`,
      'Last-Modified': new Date(file.lastModified).toUTCString(),
      'Accept-Ranges': 'bytes',
      'Cache-Control': FINGERPRINT.test(name)
        ? 'public, max-age=31536000, immutable'
        : `public, max-age=${isHtml ? (this.#o.htmlMaxAge ?? 60) : (this.#o.defaultMaxAge ?? 3600)}`,
      'X-Content-Type-Options': 'nosniff',
    };
    if (br || gz || encoding) headers.Vary = 'Accept-Encoding';
    if (encoding) headers['Content-Encoding'] = encoding;

    const inm = req.headers['if-none-match'];
    if (inm !== undefined) {
      if (
        inm
          .split(',')
          .some(
            (t) =>
              t.trim() === headers.ETag || t.trim() === '*' || t.trim() === `W/${headers.ETag}`,
          )
      ) {
        this.#end(res, { status: 304, headers: { ...headers, 'Content-Length': '0' } });
        return;
      }
    } else {
      const ims = req.headers['if-modified-since'];
      if (ims !== undefined && Date.parse(ims) >= file.lastModified) {
        this.#end(res, { status: 304, headers });
        return;
      }
    }
    let range: { start: number; end: number } | undefined;
    const rh = req.headers.range;
    const ifRange = req.headers['if-range'];
    if (rh !== undefined && (ifRange === undefined || ifRange === headers.ETag)) {
      const r = parseRangeHeader(rh);
      if (r === 'invalid') {
        this.#end(res, { status: 416, headers: { 'Content-Range': `bytes */${body.size}` } });
        return;
      }
      if (r) {
        try {
          range = resolveRange(r, body.size);
        } catch {
          this.#end(res, { status: 416, headers: { 'Content-Range': `bytes */${body.size}` } });
          return;
        }
      }
    }
    const len = range ? range.end - range.start + 1 : body.size;
    headers['Content-Length'] = String(len);
    if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${body.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (method === 'HEAD' || len === 0) {
      res.end();
      return;
    }
    if (body.bytes) {
      res.end(range ? body.bytes.subarray(range.start, range.end + 1) : body.bytes);
      return;
    }
    await pipeline(await body.open(range), res);
  }
}

/** Run a static server (for `cdp static serve`): prints `listening on http://127.0.0.1:<port>`. */
export async function serveStaticSite(o: {
  source: StaticSource;
  port?: number;
  host?: string;
  out?: (line: string) => void;
}): Promise<{ url: string; port: number; server: Server; close(): Promise<void> }> {
  const site = new StaticSite({ source: o.source });
  const server = createServer((req, res) => void site.handle(req, res));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host ?? '127.0.0.1'}:${port}`;
  (o.out ?? ((l: string) => process.stdout.write(`${l}\n`)))(`listening on ${url}`);
  return {
    url,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
