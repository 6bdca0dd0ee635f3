/**
 * The server's buckets: one FsBlobStore folder each under `<dir>/buckets`, opened on first use.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../core/index.js';
import { FsBlobStore } from '../blob/fs-blob-store.js';
import { StorageError } from '../storage-error.js';

export const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function notFoundBucket(b: string) {
  return new StorageError('NoSuchBucket', 404, `bucket ${b} does not exist; create it first`);
}

export class Buckets {
  readonly #root: string;
  readonly #clock: Clock;
  readonly #fsync: boolean;
  readonly #stores = new Map<string, Promise<FsBlobStore>>();

  constructor(o: { root: string; clock: Clock; fsync: boolean }) {
    this.#root = o.root;
    this.#clock = o.clock;
    this.#fsync = o.fsync;
  }

  dir(b: string): string {
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

  async remove(b: string): Promise<void> {
    this.#stores.delete(b);
    await rm(this.dir(b), { recursive: true, force: true });
  }

  /** Bucket names with their creation time, sorted. */
  async list(): Promise<{ name: string; created: number }[]> {
    const names = (await readdir(this.#root)).filter((n) => BUCKET_RE.test(n)).sort();
    return Promise.all(
      names.map(async (name) => ({ name, created: (await stat(this.dir(name))).birthtimeMs })),
    );
  }
}
