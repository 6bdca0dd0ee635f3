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
import { type Clock, systemClock } from '../../core/index.js';
import { parseRangeHeader, resolveRange } from '../internal/ranges.js';
import { percentDecode, utf8OrThrow } from '../internal/uri-encoding.js';

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
  /**
   * Optional fast path: the answer when it is known without I/O (cached and still fresh), or
   * undefined when `resolve` must be called. Lets the handler answer without an async hop.
   */
  resolveCached?(segments: readonly string[]): StaticFile | null | undefined;
  /**
   * Optional: a plain-text 404 body saying why nothing can be found at all (no site deployed),
   * or undefined when the site is there and only this path is missing.
   */
  emptyReason?(): string | undefined;
  close?(): Promise<void>;
}

export interface FolderSourceOptions {
  root: string;
  clock?: Clock;
  /**
   * How long a file's stat (or absence) is trusted before checking the disk again. Default
   * 1000 ms: a file changed on disk is served fresh (new bytes, new ETag) within that time.
   */
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

interface StatEntry {
  at: number;
  st: Stats | null;
}

/**
 * Serve a folder. Per file, the stat (or its absence) is trusted for `revalidateMs`; the
 * content hash and small files' bytes are kept until the file's inode, mtime or size changes.
 * While an entry is fresh, `resolveCached` answers with no I/O and no promise.
 */
export class FolderSource implements StaticSource {
  readonly #root: string;
  #realRoot: string | undefined;
  readonly #max: number;
  readonly #cache = new Map<string, Cached>();
  readonly #stats = new Map<string, StatEntry>();
  readonly #clock: Clock;
  readonly #ttl: number;
  #cachedBytes = 0;

  constructor(o: FolderSourceOptions) {
    this.#root = o.root;
    this.#max = o.memoryBytes ?? 1024 * 1024;
    this.#clock = o.clock ?? systemClock;
    this.#ttl = o.revalidateMs ?? 1000;
  }

  async #stat(rel: string, full: string): Promise<Stats | null> {
    const now = this.#clock.now();
    const hit = this.#stats.get(rel);
    if (hit && now - hit.at < this.#ttl) return hit.st;
    const st = await stat(full).catch(() => null);
    if (this.#stats.size > 10_000) this.#stats.clear();
    this.#stats.set(rel, { at: now, st });
    return st;
  }

  resolveCached(segments: readonly string[]): StaticFile | null | undefined {
    const rel = segments.length === 1 ? segments[0]! : segments.join('/');
    const hit = this.#stats.get(rel);
    if (!hit || this.#clock.now() - hit.at >= this.#ttl) return undefined;
    const st = hit.st;
    if (!st) return null;
    if (!st.isFile()) return st.isDirectory() ? undefined : null;
    const c = this.#cache.get(rel);
    if (c && c.ino === st.ino && c.mtimeMs === st.mtimeMs && c.size === st.size) return c.file;
    return undefined;
  }

  async resolve(segments: readonly string[]): Promise<StaticFile | null> {
    this.#realRoot ??= await realpath(this.#root);
    const rel = segments.join('/');
    const full = join(this.#realRoot, ...segments);
    const st = await this.#stat(rel, full);
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
    // The bytes read may be newer than the stat (a write in between): cache them only when
    // the size still matches, so a torn read is never pinned.
    if (!bytes || bytes.length === st.size) {
      if (hit?.file.bytes) this.#cachedBytes -= hit.file.bytes.length;
      if (bytes) this.#cachedBytes += bytes.length;
      this.#cache.set(rel, { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, file });
    }
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

/** A validated request path: the segments to resolve and those of its precompressed twins. */
interface Route {
  key: string;
  path: string[];
  brPath: string[];
  gzPath: string[];
}

/** One representation (identity, br or gzip) with its headers computed once. */
interface Variant {
  body: StaticFile;
  encoding: string | undefined;
  etag: string;
  /** Every header but Content-Length and Content-Range (for 206, 304 and 416). */
  headers: Record<string, string>;
  /** The plain 200's headers, Content-Length included, as a flat name/value list. */
  full: string[];
}

interface Prepared {
  file: StaticFile;
  br: StaticFile | null;
  gz: StaticFile | null;
  identity: Variant;
  brVariant: Variant | undefined;
  gzVariant: Variant | undefined;
}

const DONE: Promise<void> = Promise.resolve();
const ACCEPTS_BR = /\bbr\b/;
const ACCEPTS_GZIP = /\bgzip\b/;
const HTML = /\.html?$/i;
/** Routes and prepared responses kept per site; past this the map starts over. */
const MAX_ENTRIES = 10_000;

function sameFile(a: StaticFile | null, b: StaticFile | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return a.sha256 === b.sha256 && a.lastModified === b.lastModified && a.size === b.size;
}

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

/**
 * The static site handler. The fast path (a cached, fresh file asked for without conditions
 * or ranges) runs without an async hop: the route, the file and its headers come from caches
 * and small files are answered from memory in one `res.end`.
 */
export class StaticSite {
  readonly #o: StaticSiteOptions;
  readonly #routes = new Map<string, Route | null>();
  readonly #prepared = new Map<string, Prepared>();

  constructor(o: StaticSiteOptions) {
    this.#o = o;
  }

  /** Handle one request (never throws; answers 400/404/405/416 itself). */
  handle = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const p = this.#serve(req, res);
      return p === undefined ? DONE : p.catch(() => this.#fail(res));
    } catch {
      this.#fail(res);
      return DONE;
    }
  };

  #fail(res: ServerResponse) {
    if (!res.headersSent) res.writeHead(500, { 'Content-Length': 0 }).end();
    else res.destroy();
  }

  #end(res: ServerResponse, o: Outcome) {
    res.writeHead(o.status, { 'Content-Length': '0', ...(o.headers ?? {}) }).end();
  }

  #route(rawUrl: string): Route | null {
    const q = rawUrl.indexOf('?');
    const raw = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const hit = this.#routes.get(raw);
    if (hit !== undefined) return hit;
    const segs = safeSegments(raw);
    let route: Route | null = null;
    if (segs) {
      const path = segs.length === 0 || raw.endsWith('/') ? [...segs, 'index.html'] : segs;
      const dir = path.slice(0, -1);
      const name = path[path.length - 1]!;
      route = {
        key: path.join('/'),
        path,
        brPath: [...dir, `${name}.br`],
        gzPath: [...dir, `${name}.gz`],
      };
    }
    if (this.#routes.size >= MAX_ENTRIES) this.#routes.clear();
    this.#routes.set(raw, route);
    return route;
  }

  #serve(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') {
      this.#end(res, { status: 405, headers: { Allow: 'GET, HEAD' } });
      return undefined;
    }
    const route = this.#route(req.url ?? '/');
    if (!route) {
      this.#end(res, { status: 400 });
      return undefined;
    }
    const src = this.#o.source;
    if (src.resolveCached) {
      const file = src.resolveCached(route.path);
      if (file === null) {
        this.#end(res, { status: 404 });
        return undefined;
      }
      if (file !== undefined) {
        const br = src.resolveCached(route.brPath);
        const gz = br === undefined ? undefined : src.resolveCached(route.gzPath);
        if (br !== undefined && gz !== undefined)
          return this.#respond(req, res, route, file, br, gz);
      }
    }
    return this.#serveAsync(req, res, route);
  }

  async #serveAsync(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    const src = this.#o.source;
    const file = await src.resolve(route.path);
    if (!file) {
      const why = src.emptyReason?.();
      if (why === undefined) this.#end(res, { status: 404 });
      else {
        const body = Buffer.from(`${why}\n`, 'utf8');
        res.writeHead(404, {
          'Content-Type': 'text/plain; charset=utf-8',
          'Content-Length': String(body.length),
          'Cache-Control': 'no-store',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
      return;
    }
    const br = await src.resolve(route.brPath);
    const gz = await src.resolve(route.gzPath);
    await this.#respond(req, res, route, file, br, gz);
  }

  #variant(
    name: string,
    file: StaticFile,
    body: StaticFile,
    encoding: string | undefined,
    vary: boolean,
  ): Variant {
    const isHtml = HTML.test(name);
    const etag = `"${body.sha256.slice(0, 32)}${encoding ? `-${encoding}` : ''}"`;
    const headers: Record<string, string> = {
      'Content-Type': mimeType(name),
      ETag: etag,
      'Last-Modified': new Date(file.lastModified).toUTCString(),
      'Accept-Ranges': 'bytes',
      'Cache-Control': FINGERPRINT.test(name)
        ? 'public, max-age=31536000, immutable'
        : `public, max-age=${isHtml ? (this.#o.htmlMaxAge ?? 60) : (this.#o.defaultMaxAge ?? 3600)}`,
      'X-Content-Type-Options': 'nosniff',
    };
    if (vary) headers.Vary = 'Accept-Encoding';
    if (encoding) headers['Content-Encoding'] = encoding;
    const full: string[] = [];
    for (const k in headers) full.push(k, headers[k]!);
    full.push('Content-Length', String(body.size));
    return { body, encoding, etag, headers, full };
  }

  #prepare(route: Route, file: StaticFile, br: StaticFile | null, gz: StaticFile | null) {
    const hit = this.#prepared.get(route.key);
    if (hit && sameFile(hit.file, file) && sameFile(hit.br, br) && sameFile(hit.gz, gz)) return hit;
    const name = route.path[route.path.length - 1]!;
    const vary = br !== null || gz !== null;
    const p: Prepared = {
      file,
      br,
      gz,
      identity: this.#variant(name, file, file, undefined, vary),
      brVariant: br ? this.#variant(name, file, br, 'br', vary) : undefined,
      gzVariant: gz ? this.#variant(name, file, gz, 'gzip', vary) : undefined,
    };
    if (this.#prepared.size >= MAX_ENTRIES) this.#prepared.clear();
    this.#prepared.set(route.key, p);
    return p;
  }

  #respond(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    file: StaticFile,
    br: StaticFile | null,
    gz: StaticFile | null,
  ): Promise<void> | undefined {
    const prep = this.#prepare(route, file, br, gz);
    const rh = req.headers;
    // Precompressed variants.
    const ae = rh['accept-encoding'];
    let v = prep.identity;
    if (ae !== undefined) {
      if (prep.brVariant && ACCEPTS_BR.test(ae)) v = prep.brVariant;
      else if (prep.gzVariant && ACCEPTS_GZIP.test(ae)) v = prep.gzVariant;
    }
    const body = v.body;
    const head = req.method === 'HEAD';
    const inm = rh['if-none-match'];
    const ims = rh['if-modified-since'];
    const range = rh.range;
    if (inm === undefined && ims === undefined && range === undefined) {
      // The common case: a plain 200 with headers computed once.
      res.writeHead(200, v.full);
      if (head || body.size === 0) res.end();
      else if (body.bytes) res.end(body.bytes);
      else return body.open(undefined).then((s) => pipeline(s, res));
      return undefined;
    }
    const etag = v.etag;
    if (inm !== undefined) {
      if (
        inm
          .split(',')
          .some((t) => t.trim() === etag || t.trim() === '*' || t.trim() === `W/${etag}`)
      ) {
        this.#end(res, { status: 304, headers: { ...v.headers, 'Content-Length': '0' } });
        return undefined;
      }
    } else if (ims !== undefined && Date.parse(ims) >= file.lastModified) {
      this.#end(res, { status: 304, headers: v.headers });
      return undefined;
    }
    let r: { start: number; end: number } | undefined;
    const ifRange = rh['if-range'];
    if (range !== undefined && (ifRange === undefined || ifRange === etag)) {
      const parsed = parseRangeHeader(range);
      if (parsed === 'invalid') {
        this.#end(res, { status: 416, headers: { 'Content-Range': `bytes */${body.size}` } });
        return undefined;
      }
      if (parsed) {
        try {
          r = resolveRange(parsed, body.size);
        } catch {
          this.#end(res, { status: 416, headers: { 'Content-Range': `bytes */${body.size}` } });
          return undefined;
        }
      }
    }
    const headers = { ...v.headers };
    const len = r ? r.end - r.start + 1 : body.size;
    headers['Content-Length'] = String(len);
    if (r) headers['Content-Range'] = `bytes ${r.start}-${r.end}/${body.size}`;
    res.writeHead(r ? 206 : 200, headers);
    if (head || len === 0) {
      res.end();
      return undefined;
    }
    if (body.bytes) {
      res.end(r ? body.bytes.subarray(r.start, r.end + 1) : body.bytes);
      return undefined;
    }
    return body.open(r).then((s) => pipeline(s, res));
  }
}

/**
 * Start a static server for `source` on `host:port` (0 picks a free port). Close it when done.
 * A request's headers must arrive within `headersTimeoutMs` (10 s) and the whole request
 * within `requestTimeoutMs` (30 s; a static site takes no bodies), or the answer is 408 and
 * the connection closes; idle keep-alive connections close after 5 s, silent ones after 120 s.
 */
export async function startStaticSite(o: {
  source: StaticSource;
  port?: number;
  host?: string;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}): Promise<{ url: string; port: number; server: Server; close(): Promise<void> }> {
  const site = new StaticSite({ source: o.source });
  const headersTimeout = o.headersTimeoutMs ?? 10_000;
  const server = createServer(
    {
      headersTimeout,
      requestTimeout: Math.max(headersTimeout, o.requestTimeoutMs ?? 30_000),
      keepAliveTimeout: 5000,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, headersTimeout / 4)),
    },
    (req, res) => void site.handle(req, res),
  );
  server.timeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host ?? '127.0.0.1'}:${port}`;
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
