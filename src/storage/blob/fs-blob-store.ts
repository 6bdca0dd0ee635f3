/**
 * Filesystem blob store: one folder per bucket. Each object is ONE file named by the SHA-256
 * of its key (so no key, however hostile, becomes a path), holding the bytes, then the metadata
 * as JSON, then an 8-byte footer (`CDPB` + metadata length). A put streams into a temp file in
 * the same folder tree, appends the metadata, fsyncs, and renames over the old object: readers
 * see the old object or the new one, never half of one, even after a crash. A reader holds the
 * file open, so a concurrent overwrite never changes the bytes it is streaming.
 *
 * Listing scans the object files (O(objects) per page): fine for a dev server and for up to
 * some hundred thousand objects; beyond that use the S3 adapter against a real store.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Clock, newId, systemClock } from '../../core/index.js';
import { compareKeys, pageKeys, validateKey } from '../internal/keys.js';
import { checkPut, MeasuringStream, toReadable } from '../internal/measuring-stream.js';
import { resolveRange } from '../internal/ranges.js';
import { noSuchKey, StorageError } from '../storage-error.js';
import type {
  BlobBody,
  BlobStore,
  GetResult,
  ListOptions,
  ListPage,
  ObjectInfo,
  PutOptions,
  RangeRequest,
} from './blob-store.js';

const MAGIC = 0x43445042; // 'CDPB'
const FOOTER = 8;

interface Meta extends ObjectInfo {
  v: 1;
  /** Object tags (S3 tagging), kept with the metadata. */
  tags?: Record<string, string>;
}

export interface FsBlobStoreOptions {
  /** Folder of this bucket; created when absent. */
  dir: string;
  clock?: Clock;
  /** fsync files and folders before a put returns (default true). */
  fsync?: boolean;
  /**
   * At open, temp files older than this are removed: leftovers of writers that crashed
   * mid-put (default 1 hour; a put in progress in another process is younger).
   */
  staleTempMs?: number;
}

function keyHash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

async function readMeta(fh: FileHandle): Promise<Meta> {
  const { size } = await fh.stat();
  if (size < FOOTER) throw new StorageError('InternalError', 500, 'object file is truncated');
  const foot = Buffer.alloc(FOOTER);
  await fh.read(foot, 0, FOOTER, size - FOOTER);
  if (foot.readUInt32BE(0) !== MAGIC) {
    throw new StorageError('InternalError', 500, 'object file has no footer; it is not ours');
  }
  const len = foot.readUInt32BE(4);
  const buf = Buffer.alloc(len);
  await fh.read(buf, 0, len, size - FOOTER - len);
  return JSON.parse(buf.toString('utf8')) as Meta;
}

function infoOf(m: Meta): ObjectInfo {
  return {
    key: m.key,
    size: m.size,
    etag: m.etag,
    sha256: m.sha256,
    contentType: m.contentType,
    lastModified: m.lastModified,
    metadata: m.metadata,
  };
}

export class FsBlobStore implements BlobStore {
  readonly dir: string;
  readonly #clock: Clock;
  readonly #fsync: boolean;

  private constructor(o: FsBlobStoreOptions) {
    this.dir = o.dir;
    this.#clock = o.clock ?? systemClock;
    this.#fsync = o.fsync ?? true;
  }

  static async open(o: FsBlobStoreOptions): Promise<FsBlobStore> {
    await mkdir(join(o.dir, 'objects'), { recursive: true });
    await mkdir(join(o.dir, 'tmp'), { recursive: true });
    const s = new FsBlobStore(o);
    await s.#sweep(o.staleTempMs ?? 3_600_000);
    return s;
  }

  async #sweep(olderThanMs: number) {
    const tmp = join(this.dir, 'tmp');
    const cutoff = this.#clock.now() - olderThanMs;
    for (const f of await readdir(tmp)) {
      const st = await stat(join(tmp, f)).catch(() => null);
      if (st && st.mtimeMs <= cutoff) await rm(join(tmp, f), { force: true });
    }
  }

  #path(key: string): { dir: string; file: string } {
    const h = keyHash(key);
    const dir = join(this.dir, 'objects', h.slice(0, 2));
    return { dir, file: join(dir, h) };
  }

  async #openObject(key: string): Promise<{ fh: FileHandle; meta: Meta } | null> {
    let fh: FileHandle;
    try {
      fh = await open(this.#path(key).file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const meta = await readMeta(fh);
      if (meta.key !== key) throw new StorageError('InternalError', 500, 'key hash collision');
      return { fh, meta };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Write `source` + metadata to a temp file and rename it into place. `build` gets the
   * measured size and digests and returns the metadata to store.
   */
  async #write(
    key: string,
    source: BlobBody,
    o: PutOptions,
    build: (size: number, sha256: string, md5: Buffer) => Meta,
  ): Promise<ObjectInfo> {
    validateKey(key);
    const tmp = join(this.dir, 'tmp', `${newId()}.part`);
    const fh = await open(tmp, 'wx');
    let closed = false;
    try {
      const m = new MeasuringStream(o.maxBytes ?? o.exactBytes);
      const input = toReadable(source);
      input.on('error', (err) => m.destroy(err));
      let pos = 0;
      for await (const chunk of input.pipe(m)) {
        const b = chunk as Buffer;
        await fh.write(b, 0, b.length, pos);
        pos += b.length;
      }
      const d = m.digests();
      checkPut(m, d, o);
      const meta = build(m.bytes, d.sha256, d.md5);
      const json = Buffer.from(JSON.stringify(meta), 'utf8');
      const foot = Buffer.alloc(FOOTER);
      foot.writeUInt32BE(MAGIC, 0);
      foot.writeUInt32BE(json.length, 4);
      await fh.write(Buffer.concat([json, foot]), 0, json.length + FOOTER, m.bytes);
      if (this.#fsync) await fh.sync();
      await fh.close();
      closed = true;
      const p = this.#path(key);
      await mkdir(p.dir, { recursive: true });
      await rename(tmp, p.file);
      if (this.#fsync) await this.#syncDir(p.dir);
      return infoOf(meta);
    } catch (err) {
      if (!closed) await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async #syncDir(dir: string) {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  put(key: string, body: BlobBody, o: PutOptions = {}): Promise<ObjectInfo> {
    return this.#write(key, body, o, (size, sha256, md5) => ({
      v: 1,
      key,
      size,
      etag: o.etag ?? md5.toString('hex'),
      sha256,
      contentType: o.contentType ?? 'application/octet-stream',
      lastModified: this.#clock.now(),
      metadata: { ...(o.metadata ?? {}) },
      ...(o.tags ? { tags: { ...o.tags } } : {}),
    }));
  }

  /** The object's tags (empty when it has none); NoSuchKey when absent. */
  async tags(key: string): Promise<Record<string, string>> {
    validateKey(key);
    const obj = await this.#openObject(key);
    if (!obj) throw noSuchKey(key);
    await obj.fh.close();
    return { ...(obj.meta.tags ?? {}) };
  }

  /**
   * Replace the object's tags. The object file is rewritten (same bytes, ETag and
   * Last-Modified) and renamed into place, as a put is; NoSuchKey when absent.
   */
  async setTags(key: string, tags: Record<string, string>): Promise<void> {
    await this.#rewrite(key, key, (meta) => {
      const { tags: _old, ...rest } = meta;
      return () => ({ ...rest, ...(Object.keys(tags).length ? { tags: { ...tags } } : {}) });
    });
  }

  async get(key: string, o: { range?: RangeRequest } = {}): Promise<GetResult> {
    validateKey(key);
    const obj = await this.#openObject(key);
    if (!obj) throw noSuchKey(key);
    const { fh, meta } = obj;
    try {
      const range = o.range ? resolveRange(o.range, meta.size) : undefined;
      const start = range?.start ?? 0;
      const end = range?.end ?? meta.size - 1;
      if (meta.size === 0) {
        await fh.close();
        return { info: infoOf(meta), body: Readable.from([]), range };
      }
      const body = fh.createReadStream({ start, end });
      return { info: infoOf(meta), body, range };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    const obj = await this.#openObject(key);
    if (!obj) return null;
    await obj.fh.close();
    return infoOf(obj.meta);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await unlink(this.#path(key).file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  async #all(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const root = join(this.dir, 'objects');
    for (const sub of await readdir(root)) {
      let files: string[];
      try {
        files = await readdir(join(root, sub));
      } catch {
        continue;
      }
      for (const f of files) {
        let fh: FileHandle;
        try {
          fh = await open(join(root, sub, f), 'r');
        } catch {
          continue; // deleted meanwhile
        }
        try {
          const m = await readMeta(fh);
          if (m.key.startsWith(prefix)) out.push(infoOf(m));
        } finally {
          await fh.close();
        }
      }
    }
    out.sort((a, b) => compareKeys(a.key, b.key));
    return out;
  }

  async list(o: ListOptions = {}): Promise<ListPage> {
    const all = await this.#all(o.prefix ?? '');
    const p = pageKeys(all, o);
    return {
      objects: p.items,
      commonPrefixes: p.commonPrefixes,
      isTruncated: p.isTruncated,
      nextContinuationToken: p.next,
    };
  }

  async copy(
    fromKey: string,
    toKey: string,
    o: {
      metadata?: Record<string, string>;
      contentType?: string;
      /** Tags of the copy (default: the source's). */
      tags?: Record<string, string>;
    } = {},
  ): Promise<ObjectInfo> {
    return this.#rewrite(fromKey, toKey, (meta) => (size, sha256) => ({
      v: 1,
      key: toKey,
      size,
      etag: meta.etag,
      sha256,
      contentType: o.contentType ?? meta.contentType,
      lastModified: this.#clock.now(),
      metadata: o.metadata ? { ...o.metadata } : { ...meta.metadata },
      ...((o.tags ?? meta.tags) ? { tags: { ...(o.tags ?? meta.tags) } } : {}),
    }));
  }

  /**
   * Write `toKey` from the bytes of `fromKey` (the same key for a metadata change): the object
   * file is written anew and renamed into place, as a put is; NoSuchKey when `fromKey` is absent.
   */
  async #rewrite(
    fromKey: string,
    toKey: string,
    metaFor: (meta: Meta) => (size: number, sha256: string, md5: Buffer) => Meta,
  ): Promise<ObjectInfo> {
    validateKey(fromKey);
    const src = await this.#openObject(fromKey);
    if (!src) throw noSuchKey(fromKey);
    const { fh, meta } = src;
    try {
      const body =
        meta.size === 0
          ? toReadable(Buffer.alloc(0))
          : fh.createReadStream({ start: 0, end: meta.size - 1, autoClose: false });
      return await this.#write(toKey, body, {}, metaFor(meta));
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {}
}
