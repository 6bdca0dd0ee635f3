import type { Logger } from 'pino';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errorMessage } from '../core/errors.js';
import { counter, gauge, histogram } from '../core/metrics.js';
import type { EvictionCause, LocalStoreStats } from './local-store.js';
import type { MemoryCacheStore } from './memory-cache-store.js';

export interface CacheStats {
  hits: number;
  misses: number;
  hitRatio: number;
  loads: number;
  loadErrors: number;
  staleServed: number;
  l2Errors: number;
  lockFallbacks: number;
  /** Loads whose L2 write was refused: the key was written or deleted while they loaded. */
  fillsRefused: number;
  l1: ReturnType<MemoryCacheStore['local']['stats']>;
}

interface Metrics {
  hitL1: Counter.Internal;
  hitL2: Counter.Internal;
  miss: Counter.Internal;
  evictions: Counter<'cache' | 'cause'>;
  loadsOk: Counter.Internal;
  loadsErr: Counter.Internal;
  loadDuration: Histogram.Internal<'cache'>;
  l2Errors: Counter<'cache' | 'op'>;
  stale: Counter<'cache' | 'reason'>;
  lockFallbacks: Counter.Internal;
  fillsRefused: Counter.Internal;
  invalidations: Counter<'cache' | 'direction'>;
  hitRatio: Gauge.Internal<'cache'>;
}

/**
 * What a Cache counts: its own counters (for `stats()`), the Prometheus metrics when a registry
 * is given, and the warnings worth a log line (failed L2 calls, lock waits that ran out).
 */
export class CacheInstruments {
  readonly #name: string;
  readonly #m: Metrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #s = {
    hits: 0,
    misses: 0,
    loads: 0,
    loadErrors: 0,
    stale: 0,
    l2Errors: 0,
    lockFallbacks: 0,
    fillsRefused: 0,
  };

  constructor(name: string, registry: Registry | undefined, logger: Logger | undefined) {
    this.#name = name;
    this.#logger = logger;
    if (registry) this.#m = metrics(registry, name);
  }

  hit(tier: 'l1' | 'l2'): void {
    this.#s.hits++;
    if (this.#m) {
      (tier === 'l1' ? this.#m.hitL1 : this.#m.hitL2).inc();
      this.#ratio();
    }
  }

  miss(): void {
    this.#s.misses++;
    if (this.#m) {
      this.#m.miss.inc();
      this.#ratio();
    }
  }

  staleServed(reason: 'revalidate' | 'error'): void {
    this.#s.stale++;
    this.#m?.stale.inc({ cache: this.#name, reason });
  }

  evicted(cause: EvictionCause): void {
    this.#m?.evictions.inc({ cache: this.#name, cause });
  }

  loadFailed(): void {
    this.#s.loadErrors++;
    this.#m?.loadsErr.inc();
  }

  loadSucceeded(): void {
    this.#s.loads++;
    this.#m?.loadsOk.inc();
  }

  loadDuration(seconds: number): void {
    this.#m?.loadDuration.observe(seconds);
  }

  lockFallback(key: string): void {
    this.#s.lockFallbacks++;
    this.#m?.lockFallbacks.inc();
    this.#logger?.warn({ cache: this.#name, key }, 'stampede lock wait ran out: loading anyway');
  }

  fillRefused(): void {
    this.#s.fillsRefused++;
    this.#m?.fillsRefused.inc();
  }

  invalidation(direction: 'in' | 'out'): void {
    this.#m?.invalidations.inc({ cache: this.#name, direction });
  }

  l2Error(op: string, err: unknown): void {
    this.#s.l2Errors++;
    this.#m?.l2Errors.inc({ cache: this.#name, op });
    this.#logger?.warn({ cache: this.#name, op, err: errorMessage(err) }, 'L2 call failed');
  }

  stats(l1: LocalStoreStats): CacheStats {
    const s = this.#s;
    const total = s.hits + s.misses;
    return {
      hits: s.hits,
      misses: s.misses,
      hitRatio: total === 0 ? 0 : s.hits / total,
      loads: s.loads,
      loadErrors: s.loadErrors,
      staleServed: s.stale,
      l2Errors: s.l2Errors,
      lockFallbacks: s.lockFallbacks,
      fillsRefused: s.fillsRefused,
      l1,
    };
  }

  #ratio(): void {
    const t = this.#s.hits + this.#s.misses;
    if ((t & 63) === 0 || t < 64) this.#m!.hitRatio.set(this.#s.hits / t);
  }
}

function metrics(registry: Registry, name: string): Metrics {
  const c = { cache: name };
  const hits = counter(registry, 'cdp_cache_hits_total', 'Cache hits by tier', ['cache', 'tier']);
  const misses = counter(registry, 'cdp_cache_misses_total', 'Cache misses', ['cache']);
  const loads = counter(registry, 'cdp_cache_loads_total', 'Loader calls by result', [
    'cache',
    'result',
  ]);
  const dur = histogram(registry, 'cdp_cache_load_duration_seconds', 'Loader latency', ['cache']);
  return {
    hitL1: hits.labels({ ...c, tier: 'l1' }),
    hitL2: hits.labels({ ...c, tier: 'l2' }),
    miss: misses.labels(c),
    evictions: counter(registry, 'cdp_cache_evictions_total', 'L1 evictions by cause', [
      'cache',
      'cause',
    ]),
    loadsOk: loads.labels({ ...c, result: 'ok' }),
    loadsErr: loads.labels({ ...c, result: 'error' }),
    loadDuration: dur.labels(c),
    l2Errors: counter(registry, 'cdp_cache_l2_errors_total', 'Failed or timed-out L2 calls', [
      'cache',
      'op',
    ]),
    stale: counter(registry, 'cdp_cache_stale_served_total', 'Stale values served', [
      'cache',
      'reason',
    ]),
    lockFallbacks: counter(
      registry,
      'cdp_cache_lock_fallbacks_total',
      'Loads done without the stampede lock after the wait ran out',
      ['cache'],
    ).labels(c),
    fillsRefused: counter(
      registry,
      'cdp_cache_fills_refused_total',
      'Loaded values not stored in L2: the key was written or deleted while they loaded',
      ['cache'],
    ).labels(c),
    invalidations: counter(registry, 'cdp_cache_invalidations_total', 'Bus invalidations', [
      'cache',
      'direction',
    ]),
    hitRatio: gauge(registry, 'cdp_cache_hit_ratio', 'Hits / (hits + misses)', ['cache']).labels(c),
  };
}
