/**
 * The server's buckets: one FsBlobStore folder each under `<dir>/buckets`, opened on first use.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../core/index.js';
import { FsBlobStore } from '../blob/fs-blob-store.js';
import { StorageError } from '../storage-error.js';

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** S3 bucket naming: 3-63 characters of a-z 0-9 . -, starting and ending alphanumeric, no `..`. */
export function isBucketName(b: string): boolean {
  return BUCKET_RE.test(b) && !b.includes('..');
}

export function invalidBucketName(b: string) {
  return new StorageError(
    'InvalidBucketName',
    400,
    `${JSON.stringify(b)} is not a bucket name: use 3-63 characters of a-z 0-9 . - (starting and ending with a letter or digit)`,
  );
}

function beingDeleted(b: string) {
  return new StorageError(
    'OperationAborted',
    409,
    `bucket ${b} is being deleted; create it again before writing to it`,
  );
}

export function notFoundBucket(b: string) {
  return new StorageError('NoSuchBucket', 404, `bucket ${b} does not exist; create it first`);
}

/**
 * Writes in flight are counted per bucket: DeleteBucket refuses (409 OperationAborted) while
 * one runs, and a write arriving while a delete runs is refused the same way, so a writer
 * never meets a folder removed under it and a deleted bucket never comes back half made.
 */
export class Buckets {
  readonly #root: string;
  readonly #writing = new Map<string, number>();
  readonly #deleting = new Set<string>();
  readonly #clock: Clock;
  readonly #fsync: boolean;
  readonly #stores = new Map<string, Promise<FsBlobStore>>();

  constructor(o: { root: string; clock: Clock; fsync: boolean }) {
    this.#root = o.root;
    this.#clock = o.clock;
    this.#fsync = o.fsync;
  }

  dir(b: string): string {
    if (!isBucketName(b)) throw invalidBucketName(b);
    return join(this.#root, b);
  }

  async exists(b: string): Promise<boolean> {
    try {
      return (await stat(this.dir(b))).isDirectory();
    } catch {
      return false;
    }
  }

  /** The bucket's store; NoSuchBucket when it does not exist. */
  async store(b: string): Promise<FsBlobStore> {
    if (!(await this.exists(b))) {
      this.#stores.delete(b);
      throw notFoundBucket(b);
    }
    let s = this.#stores.get(b);
    if (!s) {
      s = FsBlobStore.open({ dir: this.dir(b), clock: this.#clock, fsync: this.#fsync });
      this.#stores.set(b, s);
    }
    return s;
  }

  async create(b: string): Promise<void> {
    await mkdir(this.dir(b), { recursive: true });
  }

  /** Run a write into bucket `b`'s store; DeleteBucket waits for none, it refuses. */
  async writing<T>(b: string, fn: (s: FsBlobStore) => Promise<T>): Promise<T> {
    if (this.#deleting.has(b)) throw beingDeleted(b);
    this.#writing.set(b, (this.#writing.get(b) ?? 0) + 1);
    try {
      return await fn(await this.store(b));
    } finally {
      const n = this.#writing.get(b)! - 1;
      if (n === 0) this.#writing.delete(b);
      else this.#writing.set(b, n);
    }
  }

  /**
   * Delete an empty bucket: BucketNotEmpty when it holds objects, OperationAborted while a
   * write into it runs.
   */
  async remove(b: string): Promise<void> {
    if (this.#writing.has(b) || this.#deleting.has(b)) {
      throw new StorageError(
        'OperationAborted',
        409,
        `an upload into bucket ${b} is in progress; delete the bucket after it ends`,
      );
    }
    this.#deleting.add(b);
    try {
      const s = await this.store(b);
      const page = await s.list({ maxKeys: 1 });
      if (page.objects.length)
        throw new StorageError(
          'BucketNotEmpty',
          409,
          'the bucket is not empty; delete its objects first',
        );
      this.#stores.delete(b);
      await rm(this.dir(b), { recursive: true, force: true });
    } finally {
      this.#deleting.delete(b);
    }
  }

  /** Bucket names with their creation time, sorted. */
  async list(): Promise<{ name: string; created: number }[]> {
    const names = (await readdir(this.#root)).filter(isBucketName).sort();
    return Promise.all(
      names.map(async (name) => ({ name, created: (await stat(this.dir(name))).birthtimeMs })),
    );
  }
}
