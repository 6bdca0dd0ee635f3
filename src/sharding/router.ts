import { type Clock, systemClock } from '../core/clock.js';
import { counter, histogram, type Registry } from '../core/metrics.js';
import type {
  SqlClient,
  SqlTransaction,
  SqlValue,
  TransactionOptions,
} from '../engines/sql/sql-client.js';
import { ShardCatalog } from './catalog.js';
import { ShardFencedError, ShardKeyRequiredError, ShardUnavailableError } from './errors.js';
import {
  type AggregateQuery,
  type AggregateResult,
  aggregateOverShards,
  type FanOutOptions,
  type FanOutResult,
  fanOutQuery,
} from './fan-out.js';
import { createShardMap, type ShardKey, type ShardMap, type ShardRoute } from './shard-map.js';

export interface ShardRouterOptions {
  /** The catalog database holding the map. */
  catalog: SqlClient;
  /** The map's name. */
  map: string;
  /** A client per shard id of the map. */
  shards: Readonly<Record<string, SqlClient>>;
  clock?: Clock;
  /** How often the router checks the map's version (one `SELECT version`). Default 250 ms. */
  refreshMs?: number;
  /** How long a routed transaction waits out a fence (a move cutting over) before failing. Default 10 s. */
  fenceWaitMs?: number;
  registry?: Registry;
}

/** A transaction on one shard, with the route that chose it. */
export type RoutedWork<T> = (tx: SqlTransaction, route: ShardRoute) => Promise<T>;

/**
 * Routes statements by shard key to one shard, and runs fan-outs over many. It caches the map
 * and notices a new version without restart: it polls the catalog's version every `refreshMs`,
 * and refreshes at once when a shard fences a write (the unit moved or is cutting over).
 * Every routed transaction first checks, on the shard and under a share lock, that the shard
 * owns the key's unit at the router's map version: a stale router can never write to a shard
 * that gave the unit away.
 */
export class ShardRouter {
  readonly catalog: ShardCatalog;
  readonly mapName: string;
  readonly #shards: Readonly<Record<string, SqlClient>>;
  readonly #clock: Clock;
  readonly #fenceWaitMs: number;
  readonly #stop = new AbortController();
  #map: ShardMap;
  #loop: Promise<void> | undefined;
  #refreshing: Promise<void> | undefined;
  readonly #unitCounts = new Map<string, number>();
  readonly #metrics;

  private constructor(options: ShardRouterOptions, map: ShardMap) {
    this.catalog = new ShardCatalog(options.catalog);
    this.mapName = options.map;
    this.#shards = options.shards;
    this.#clock = options.clock ?? systemClock;
    this.#fenceWaitMs = options.fenceWaitMs ?? 10_000;
    this.#map = map;
    this.#metrics = options.registry
      ? {
          latency: histogram(
            options.registry,
            'cdp_sharding_shard_query_seconds',
            'Time of statements on one shard, routed or as part of a fan-out',
            ['shard', 'kind'],
          ),
          fenced: counter(
            options.registry,
            'cdp_sharding_fenced_total',
            'Routed transactions a shard fenced and the router retried',
          ),
        }
      : undefined;
  }

  static async open(options: ShardRouterOptions): Promise<ShardRouter> {
    const map = createShardMap(await new ShardCatalog(options.catalog).load(options.map));
    const router = new ShardRouter(options, map);
    const refreshMs = options.refreshMs ?? 250;
    router.#loop = router.#poll(refreshMs);
    return router;
  }

  async #poll(ms: number): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#clock.sleep(ms, this.#stop.signal);
      } catch {
        return;
      }
      try {
        const v = await this.catalog.version(this.mapName);
        if (v !== this.#map.state.version) await this.refresh();
      } catch {
        // The catalog is unreachable: keep routing by the cached map; the fence keeps writes safe.
      }
    }
  }

  /** The map this router routes by now. */
  get map(): ShardMap {
    return this.#map;
  }

  /** Reloads the map from the catalog (one reload at a time; concurrent callers share it). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.catalog
      .load(this.mapName)
      .then((state) => {
        if (state.version >= this.#map.state.version) this.#map = createShardMap(state);
      })
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  route(key: ShardKey | null | undefined): ShardRoute {
    if (key === null || key === undefined) throw new ShardKeyRequiredError('a routed statement');
    return this.#map.route(key);
  }

  /** The client of one shard; throws naming the shard when the router has none. */
  client(shard: string): SqlClient {
    const c = this.#shards[shard];
    if (!c) {
      throw new ShardUnavailableError(
        shard,
        `the router of map "${this.mapName}" has no client for shard "${shard}": open the router with every shard of the map`,
      );
    }
    return c;
  }

  shardIds(): string[] {
    return this.#map.state.shards.map((s) => s.id);
  }

  /** One statement on the key's shard, in a fenced transaction. */
  async query<R = Record<string, unknown>>(
    key: ShardKey | null | undefined,
    text: string,
    params: readonly SqlValue[] = [],
  ): Promise<R[]> {
    return this.transaction(key, async (tx) => (await tx.query<R>(text, params)).rows);
  }

  /**
   * A transaction on the key's shard. `fn` may run more than once: when the shard fences the
   * unit (a cut-over, or a stale map), the transaction rolls back, the map refreshes and `fn`
   * runs again on the shard that owns the key now.
   */
  async transaction<T>(
    key: ShardKey | null | undefined,
    fn: RoutedWork<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    if (key === null || key === undefined) throw new ShardKeyRequiredError('a routed transaction');
    return this.#fenced((map) => map.route(key), fn, options);
  }

  /**
   * A transaction on the shard owning the slot of `text` (hash maps): how index tables reach the
   * shard of an indexed value, whatever the map's key type.
   */
  transactionByHash<T>(text: string, fn: RoutedWork<T>, options?: TransactionOptions): Promise<T> {
    return this.#fenced((map) => map.routeHashed(text), fn, options);
  }

  async #fenced<T>(
    routeOf: (map: ShardMap) => ShardRoute,
    fn: RoutedWork<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    const started = this.#clock.now();
    let pause = 2;
    for (;;) {
      const map = this.#map;
      const route = routeOf(map);
      const client = this.client(route.shard);
      const t0 = performance.now();
      try {
        const out = await client.transaction(async (tx) => {
          const owned = await tx.query(
            'SELECT 1 FROM cdp_shard_owned WHERE map = $1 AND unit = $2 AND since_version <= $3 FOR SHARE',
            [this.mapName, route.unit, map.state.version],
          );
          if (owned.rows.length === 0) throw new ShardFencedError(route.shard, route.unit);
          return fn(tx, route);
        }, options);
        this.#metrics?.latency.observe(
          { shard: route.shard, kind: 'routed' },
          (performance.now() - t0) / 1000,
        );
        this.#unitCounts.set(route.unit, (this.#unitCounts.get(route.unit) ?? 0) + 1);
        return out;
      } catch (err) {
        if (!(err instanceof ShardFencedError) || this.#clock.now() - started > this.#fenceWaitMs)
          throw err;
        this.#metrics?.fenced.inc();
        await this.refresh();
        if (this.#map.state.version === map.state.version) {
          await this.#clock.sleep(pause);
          pause = Math.min(pause * 2, 10);
        }
      }
    }
  }

  /** Scatter-gather: the statement on every shard (or `options.shards`) in parallel, merged. */
  fanOut<R extends Record<string, unknown>>(
    text: string,
    params: readonly SqlValue[] = [],
    options: FanOutOptions = {},
  ): Promise<FanOutResult<R>> {
    return fanOutQuery<R>(
      this.#fanOutTargets(options.shards),
      text,
      params,
      options,
      this.#clock,
      (shard, s) => this.#metrics?.latency.observe({ shard, kind: 'fanout' }, s),
    );
  }

  /** Aggregates (count, sum, min, max, avg) over shards, merged exactly (avg from sums and counts). */
  aggregate(query: AggregateQuery, options: FanOutOptions = {}): Promise<AggregateResult> {
    return aggregateOverShards(this.#fanOutTargets(options.shards), query, options, this.#clock);
  }

  #fanOutTargets(only?: readonly string[]): { shard: string; client: SqlClient }[] {
    const ids = only ?? this.shardIds();
    return ids.map((shard) => ({ shard, client: this.client(shard) }));
  }

  /** Routed transactions per unit since the router opened: the input of hot-spot detection. */
  unitCounts(): ReadonlyMap<string, number> {
    return this.#unitCounts;
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await this.#refreshing?.catch(() => {});
  }
}
