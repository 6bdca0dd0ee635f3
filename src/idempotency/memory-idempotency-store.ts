import { randomUUID } from 'node:crypto';
import type {
  BeginRequest,
  BeginResult,
  IdempotencyStore,
  StoredResponse,
} from './idempotency-store.js';

interface Entry {
  fingerprint: string;
  token: string;
  lockedUntil: number;
  expiresAt: number;
  response: StoredResponse | undefined;
}

/**
 * Idempotency keys in this process's memory: for tests and a single embedded process. Keys are
 * lost on restart and not shared between processes; use the SQL or Redis store for those.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #entries = new Map<string, Entry>();

  async begin(r: BeginRequest): Promise<BeginResult> {
    const id = JSON.stringify([r.scope, r.key]);
    const e = this.#entries.get(id);
    if (!e || e.expiresAt <= r.now) {
      const token = randomUUID();
      this.#entries.set(id, {
        fingerprint: r.fingerprint,
        token,
        lockedUntil: r.now + r.leaseMs,
        expiresAt: r.now + r.ttlMs,
        response: undefined,
      });
      return { outcome: 'started', token, recovered: false };
    }
    if (e.fingerprint !== r.fingerprint) return { outcome: 'mismatch' };
    if (e.response) return { outcome: 'replay', response: copy(e.response) };
    if (e.lockedUntil > r.now) return { outcome: 'in-progress', lockedUntil: e.lockedUntil };
    e.token = randomUUID();
    e.lockedUntil = r.now + r.leaseMs;
    return { outcome: 'started', token: e.token, recovered: true };
  }

  async complete(
    scope: string,
    key: string,
    token: string,
    response: StoredResponse,
  ): Promise<boolean> {
    const e = this.#entries.get(JSON.stringify([scope, key]));
    if (!e || e.token !== token || e.response) return false;
    e.response = copy(response);
    return true;
  }

  async release(scope: string, key: string, token: string): Promise<void> {
    const id = JSON.stringify([scope, key]);
    const e = this.#entries.get(id);
    if (e && e.token === token && !e.response) this.#entries.delete(id);
  }

  async purgeExpired(now: number): Promise<number> {
    let n = 0;
    for (const [id, e] of this.#entries)
      if (e.expiresAt <= now) {
        this.#entries.delete(id);
        n++;
      }
    return n;
  }

  /** How many keys are kept (expired ones included until purged). */
  get size(): number {
    return this.#entries.size;
  }
}

function copy(r: StoredResponse): StoredResponse {
  return { status: r.status, headers: { ...r.headers }, body: new Uint8Array(r.body) };
}
