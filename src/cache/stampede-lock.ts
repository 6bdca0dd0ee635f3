/**
 * The port for a cross-process lock that lets one process load a missing key while the others
 * wait for the value to appear in L2 (bounded wait, then they load anyway).
 */
export interface StampedeLock {
  /** Try once: a token when acquired (hold it at most `ttlMs`), undefined when someone else holds it. */
  tryAcquire(key: string, ttlMs: number): Promise<string | undefined>;
  /** Release if still ours (a lock that expired and was taken by another is left alone). */
  release(key: string, token: string): Promise<void>;
}
