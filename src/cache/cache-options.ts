import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import { ValidationError } from '../core/errors.js';
import type { CacheStore } from './cache-store.js';
import { checkTtl } from './internal/ttl.js';
import type { InvalidationBus } from './invalidation-bus.js';
import type { LocalStoreOptions } from './local-store.js';
import type { StampedeLock } from './stampede-lock.js';

/**
 * What a tier holds for a key: the value with its freshness, so that stale-while-revalidate and
 * stale-if-error can serve a value past its ttl, and negative entries ("the loader found
 * nothing") can be told apart from misses.
 */
export interface CacheEntry<V> {
  /** The value; absent for a negative entry. */
  v?: V;
  /** Fresh until (ms since epoch); 0 = forever. */
  f: number;
  /** Kept (servable as stale) until; 0 = forever. */
  s: number;
  /** 1 for a negative entry. */
  n?: 1;
  /** Tags, so that a copy taken from L2 into another instance's L1 stays invalidatable by tag. */
  t?: readonly string[];
}

export type Loader<V> = (key: string) => Promise<V | undefined>;

export interface CacheOptions<V> {
  /** Label on metrics. Default 'default'. */
  name?: string;
  /** Prefix of every key in L2, lock and bus: caches sharing L2 share a namespace. Default name. */
  namespace?: string;
  /** The in-process tier (L1). Default `{ maxEntries: 10_000 }` with W-TinyLFU. */
  l1?: LocalStoreOptions<string, CacheEntry<V>>;
  /** A shared tier (L2), e.g. RedisCacheStore. */
  l2?: CacheStore<CacheEntry<V>>;
  /** Time a value stays fresh, in ms; 0 = forever. Default 0. */
  ttlMs?: number;
  /** How long L1 keeps a copy at most (ms, 0 = as long as the value is kept). Default 0. */
  l1TtlMs?: number;
  /** Cache "not found" (the loader returned undefined) for this many ms. Default 0 = off. */
  negativeTtlMs?: number;
  /** After a value's ttl, serve it for this long while one background load refreshes it. */
  staleWhileRevalidateMs?: number;
  /** Within this many ms before a value's ttl ends, a read triggers a background refresh. */
  refreshAheadMs?: number;
  /** After a value's ttl, serve it for this long when the loader fails. */
  staleIfErrorMs?: number;
  /** Read-through: the loader `get` uses on a miss. */
  loader?: Loader<V>;
  /** Abandon a load after this many ms (TimeoutError); 0 = never. Default 0. */
  loadTimeoutMs?: number;
  /** Abandon an L2 call after this many ms and carry on without L2. Default 500. */
  l2TimeoutMs?: number;
  bus?: InvalidationBus;
  /** Cross-process stampede protection (needs l2, where the winner's value appears). */
  lock?: StampedeLock;
  /** Lock lease (ms); also how long the others wait for the winner's value. Default 5000 / 2000. */
  lockTtlMs?: number;
  lockWaitMs?: number;
  /** How often a waiter polls L2 for the winner's value. Default 25 ms. */
  lockPollMs?: number;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
}

export interface GetOrLoadOptions {
  ttlMs?: number;
  tags?: readonly string[];
}

/** A Cache's timings in ms, checked: every one a number >= 0, defaults filled in. */
export interface CacheTimings {
  ttl: number;
  l1Ttl: number;
  negativeTtl: number;
  /** stale-while-revalidate */
  swr: number;
  refreshAhead: number;
  /** stale-if-error */
  sie: number;
  loadTimeout: number;
  l2Timeout: number;
  lockTtl: number;
  lockWait: number;
  lockPoll: number;
}

/**
 * Checks the options' timings and their combinations (ValidationError naming the option) and
 * fills in the defaults.
 */
export function cacheTimings<V>(options: CacheOptions<V>): CacheTimings {
  const t: CacheTimings = {
    ttl: checkTtl(options.ttlMs, 'ttlMs'),
    l1Ttl: checkTtl(options.l1TtlMs, 'l1TtlMs'),
    negativeTtl: checkTtl(options.negativeTtlMs, 'negativeTtlMs'),
    swr: checkTtl(options.staleWhileRevalidateMs, 'staleWhileRevalidateMs'),
    refreshAhead: checkTtl(options.refreshAheadMs, 'refreshAheadMs'),
    sie: checkTtl(options.staleIfErrorMs, 'staleIfErrorMs'),
    loadTimeout: checkTtl(options.loadTimeoutMs, 'loadTimeoutMs'),
    l2Timeout: checkTtl(options.l2TimeoutMs ?? 500, 'l2TimeoutMs'),
    lockTtl: checkTtl(options.lockTtlMs ?? 5000, 'lockTtlMs'),
    lockWait: checkTtl(options.lockWaitMs ?? 2000, 'lockWaitMs'),
    lockPoll: Math.max(1, checkTtl(options.lockPollMs ?? 25, 'lockPollMs')),
  };
  if ((t.swr > 0 || t.refreshAhead > 0 || t.sie > 0) && t.ttl === 0) {
    throw new ValidationError(
      'cache: staleWhileRevalidateMs, refreshAheadMs and staleIfErrorMs need ttlMs > 0',
      [{ path: 'ttlMs', message: 'must be > 0 with stale serving' }],
    );
  }
  if (options.lock && !options.l2) {
    throw new ValidationError('cache: lock needs an l2 tier, where waiters find the value', [
      { path: 'lock', message: 'needs l2' },
    ]);
  }
  return t;
}
