/**
 * Static site deploys into a blob store: every file of the folder is uploaded under a new
 * version prefix; assets (not HTML) are fingerprinted (`app.<sha256:10>.js`) and references to
 * them in HTML and CSS, relative or root-relative, are rewritten (references.ts) and reported;
 * a manifest lists the version; then ONE small object, `<prefix>live.json`, is replaced to make
 * the version live (a put is atomic on both adapters). Rollback points `live.json` back at the
 * previous version. Old versions stay until pruned, so a rollback never re-uploads.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { type Clock, newId, systemClock, ValidationError } from '../../core/index.js';
import type { BlobStore } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';
import type { MissingReference, Rewrite } from './references.js';
import { FINGERPRINT, mimeType, type StaticFile, type StaticSource } from './static-site.js';

export interface ManifestEntry {
  /** Object key in the store. */
  key: string;
  sha256: string;
  size: number;
  contentType: string;
}

export interface DeployManifest {
  version: string;
  createdAt: number;
  /** Site path (`assets/app.3f2a9c1b0d.js`, `index.html`) to object. */
  files: Record<string, ManifestEntry>;
  /** Original asset path to its fingerprinted path. */
  fingerprints: Record<string, string>;
}

interface Live {
  version: string;
  previous: string[];
}

async function walk(dir: string, base = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, base), { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out.sort();
}

async function readJson<T>(store: BlobStore, key: string): Promise<T | null> {
  try {
    const g = await store.get(key);
    const chunks: Buffer[] = [];
    for await (const c of g.body) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  } catch (err) {
    if (err instanceof StorageError && err.s3Code === 'NoSuchKey') return null;
    throw err;
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const HTML_FILE = /\.html?$/i;
const CSS_FILE = /\.css$/i;

export interface DeployResult {
  /** The live version: the new one, or the one already live when nothing changed. */
  version: string;
  /** True when the folder's content is the live version's: nothing was uploaded. */
  unchanged: boolean;
  files: number;
  bytes: number;
  previous: string | undefined;
  /** References in HTML and CSS rewritten to fingerprinted names. */
  rewrites: Rewrite[];
  /** References to files that are not in the folder (left as they are). */
  missing: MissingReference[];
}

export interface DeployOptions {
  dir: string;
  store: BlobStore;
  prefix?: string;
  clock?: Clock;
  /** Called after each file is uploaded (not called when nothing changed). */
  onUpload?: (done: number, total: number, path: string) => void;
}

/**
 * The files as they will be served: assets (not HTML) fingerprinted, CSS after its references
 * are rewritten (so a stylesheet's name changes when an image it uses changes), HTML last.
 */
async function prepare(paths: string[], contents: Map<string, Buffer>) {
  // The HTML and CSS parsers load on the first deploy, not with the storage module.
  const { rewriteCss, rewriteHtml } = await import('./references.js');
  const fingerprints: Record<string, string> = {};
  const rewrites: Rewrite[] = [];
  const missing: MissingReference[] = [];
  const ctx = { fingerprints, paths: new Set(paths) };
  const name = (p: string, body: Buffer) => {
    const ext = posix.extname(p);
    return `${p.slice(0, p.length - ext.length)}.${sha(body).slice(0, 10)}${ext}`;
  };
  const skip = (p: string) => HTML_FILE.test(p) || FINGERPRINT.test(p) || /\.(br|gz)$/.test(p);
  for (const p of paths) {
    if (!skip(p) && !CSS_FILE.test(p)) fingerprints[p] = name(p, contents.get(p)!);
  }
  // Stylesheets in dependency order (one that @imports another is named after it).
  const done = new Set<string>();
  const css = (p: string, stack: Set<string>) => {
    if (done.has(p) || stack.has(p)) return;
    stack.add(p);
    const text = contents.get(p)!.toString('utf8');
    const deps = rewriteCss(p, text, { fingerprints: {}, paths: ctx.paths }).targets;
    for (const dep of deps) if (CSS_FILE.test(dep) && ctx.paths.has(dep)) css(dep, stack);
    const r = rewriteCss(p, text, ctx);
    contents.set(p, Buffer.from(r.text, 'utf8'));
    rewrites.push(...r.rewrites);
    missing.push(...r.missing);
    if (!skip(p)) fingerprints[p] = name(p, contents.get(p)!);
    done.add(p);
    stack.delete(p);
  };
  for (const p of paths) if (CSS_FILE.test(p)) css(p, new Set());
  for (const p of paths) {
    if (!HTML_FILE.test(p)) continue;
    const r = rewriteHtml(p, contents.get(p)!.toString('utf8'), ctx);
    contents.set(p, Buffer.from(r.text, 'utf8'));
    rewrites.push(...r.rewrites);
    missing.push(...r.missing);
  }
  return { fingerprints, rewrites, missing };
}

function sameContent(a: DeployManifest, files: Record<string, { sha256: string }>): boolean {
  const names = Object.keys(files);
  if (names.length !== Object.keys(a.files).length) return false;
  return names.every((n) => a.files[n]?.sha256 === files[n]!.sha256);
}

/**
 * Upload `dir` as a new version under `prefix` and make it live. When the folder, as it would
 * be served, is the live version's content, nothing is uploaded and the result says
 * `unchanged`.
 */
export async function deployStatic(o: DeployOptions): Promise<DeployResult> {
  const prefix = o.prefix ?? 'site/';
  const clock = o.clock ?? systemClock;
  const paths = await walk(o.dir);
  if (paths.length === 0)
    throw new ValidationError(`${o.dir} has no files to deploy`, [
      { path: 'dir', message: 'empty' },
    ]);
  const contents = new Map<string, Buffer>();
  for (const p of paths) contents.set(p, await readFile(join(o.dir, ...p.split('/'))));
  const { fingerprints, rewrites, missing } = await prepare(paths, contents);
  const served = paths.map((p) => ({ path: fingerprints[p] ?? p, body: contents.get(p)! }));
  const hashes: Record<string, { sha256: string }> = {};
  let bytes = 0;
  for (const f of served) {
    hashes[f.path] = { sha256: sha(f.body) };
    bytes += f.body.length;
  }
  const live = await readJson<Live>(o.store, `${prefix}live.json`);
  const liveManifest = live
    ? await readJson<DeployManifest>(o.store, `${prefix}v/${live.version}/manifest.json`)
    : null;
  const base = { files: paths.length, bytes, rewrites, missing };
  if (live && liveManifest && sameContent(liveManifest, hashes)) {
    return { ...base, version: live.version, unchanged: true, previous: live.previous[0] };
  }
  const version = `${clock.now().toString(36)}-${newId().slice(-8)}`;
  const files: Record<string, ManifestEntry> = {};
  let done = 0;
  for (const f of served) {
    const key = `${prefix}v/${version}/${f.path}`;
    const contentType = mimeType(f.path);
    const info = await o.store.put(key, f.body, { contentType });
    files[f.path] = {
      key,
      sha256: info.sha256 ?? hashes[f.path]!.sha256,
      size: f.body.length,
      contentType,
    };
    o.onUpload?.(++done, served.length, f.path);
  }
  const manifest: DeployManifest = { version, createdAt: clock.now(), files, fingerprints };
  await o.store.put(`${prefix}v/${version}/manifest.json`, JSON.stringify(manifest), {
    contentType: 'application/json',
  });
  const next: Live = {
    version,
    previous: live ? [live.version, ...live.previous].slice(0, 20) : [],
  };
  await o.store.put(`${prefix}live.json`, JSON.stringify(next), {
    contentType: 'application/json',
  });
  return { ...base, version, unchanged: false, previous: live?.version };
}

/** Make the previous version live again. */
export async function rollbackStatic(o: {
  store: BlobStore;
  prefix?: string;
}): Promise<{ version: string; from: string }> {
  const prefix = o.prefix ?? 'site/';
  const live = await readJson<Live>(o.store, `${prefix}live.json`);
  if (!live || live.previous.length === 0) {
    throw new ValidationError('there is no previous version to roll back to', [
      { path: 'prefix', message: 'no history' },
    ]);
  }
  const [version, ...rest] = live.previous as [string, ...string[]];
  await o.store.put(
    `${prefix}live.json`,
    JSON.stringify({ version, previous: rest } satisfies Live),
    { contentType: 'application/json' },
  );
  return { version, from: live.version };
}

/**
 * Serve the live version of a deployed site from a blob store. The manifest is re-read when
 * `live.json` changes (checked at most every `revalidateMs`).
 */
/** How many earlier versions' fingerprinted assets the live site still serves. */
const OLDER_VERSIONS_SERVED = 3;

export class DeploymentSource implements StaticSource {
  readonly #store: BlobStore;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #ttl: number;
  #checkedAt = Number.NEGATIVE_INFINITY;
  #manifest: DeployManifest | null = null;
  /** Manifests of recent earlier versions: their fingerprinted assets stay servable. */
  #older: DeployManifest[] = [];
  #liveEtag = '';

  constructor(o: { store: BlobStore; prefix?: string; clock?: Clock; revalidateMs?: number }) {
    this.#store = o.store;
    this.#prefix = o.prefix ?? 'site/';
    this.#clock = o.clock ?? systemClock;
    this.#ttl = o.revalidateMs ?? 1000;
  }

  async #current(): Promise<DeployManifest | null> {
    const now = this.#clock.now();
    if (now - this.#checkedAt < this.#ttl) return this.#manifest;
    this.#checkedAt = now;
    const head = await this.#store.head(`${this.#prefix}live.json`);
    if (!head) {
      this.#manifest = null;
      return null;
    }
    if (head.etag === this.#liveEtag && this.#manifest) return this.#manifest;
    const live = await readJson<Live>(this.#store, `${this.#prefix}live.json`);
    if (!live) {
      this.#manifest = null;
      return null;
    }
    const before = this.#manifest;
    this.#manifest = await readJson<DeployManifest>(
      this.#store,
      `${this.#prefix}v/${live.version}/manifest.json`,
    );
    // A page loaded just before a switch (or a rollback) still asks for its own version's
    // assets: keep the fingerprinted files of the last few versions servable. Fingerprinted
    // names are content hashes, so an old one can never shadow a newer file.
    const older: DeployManifest[] = [];
    // The version served until now (after a rollback it is no longer in `previous`).
    if (before && before.version !== live.version) older.push(before);
    for (const v of live.previous.slice(0, OLDER_VERSIONS_SERVED)) {
      const m = await readJson<DeployManifest>(this.#store, `${this.#prefix}v/${v}/manifest.json`);
      if (m) older.push(m);
    }
    this.#older = older;
    this.#liveEtag = head.etag;
    return this.#manifest;
  }

  emptyReason(): string | undefined {
    if (this.#manifest) return undefined;
    return `no site is deployed under "${this.#prefix}" in this store: deploy a folder to it first`;
  }

  async resolve(segments: readonly string[]): Promise<StaticFile | null> {
    const m = await this.#current();
    if (!m) return null;
    const path = segments.join('/');
    let e = m.files[path] ?? (m.fingerprints[path] ? m.files[m.fingerprints[path]] : undefined);
    if (!e && FINGERPRINT.test(path)) {
      for (const old of this.#older) {
        e = old.files[path];
        if (e) break;
      }
    }
    if (!e) return null;
    const store = this.#store;
    return {
      path,
      size: e.size,
      sha256: e.sha256,
      lastModified: m.createdAt,
      bytes: undefined,
      async open(range): Promise<Readable> {
        const g = await store.get(e.key, range ? { range } : {});
        return g.body;
      },
    };
  }
}
