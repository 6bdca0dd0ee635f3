import type { Clock } from '../core/clock.js';
import type { SqlClient, SqlValue } from '../engines/sql/sql-client.js';
import { checkIdentifier } from './catalog.js';
import { FanOutDeadlineError, ShardingError } from './errors.js';
import { compareValues, kWayMerge } from './internal/merge.js';

export interface FanOutOptions {
  /** Shards to ask; default every shard of the map. */
  shards?: readonly string[];
  /** Give up waiting after this many ms. Default 5000. */
  deadlineMs?: number;
  /**
   * Return what answered by the deadline, flagged `complete: false` with the missing shards
   * named. Default false: a missing shard throws FanOutDeadlineError.
   */
  allowPartial?: boolean;
  /**
   * Merge order. Each shard runs the statement ordered and limited to offset + limit; the router
   * merges the shards' sorted lists (k-way) instead of sorting everything. Text compares by
   * code point, as the "C" collation orders it.
   */
  orderBy?: readonly { column: string; direction?: 'asc' | 'desc' }[];
  limit?: number;
  offset?: number;
  /**
   * With `orderBy` and `limit`: how many rows each shard is asked for. `'adaptive'` (default)
   * asks each of n shards for about 1.5 (offset + limit) / n + 8 rows, then asks again, for
   * offset + limit rows, only a shard whose last row could still rank in the merged result (the
   * data is skewed towards it); the result is the same as `'full'`, which asks every shard for
   * offset + limit rows at once.
   */
  perShardLimit?: 'adaptive' | 'full';
}

export interface ShardFailure {
  shard: string;
  reason: string;
}

export interface FanOutResult<R> {
  rows: R[];
  /** True when every asked shard answered. */
  complete: boolean;
  answered: string[];
  missing: ShardFailure[];
  /** Per-shard time to answer, ms. */
  latencyMs: Record<string, number>;
}

export type AggregateFunction = 'count' | 'sum' | 'min' | 'max' | 'avg';

export interface AggregateQuery {
  /** A table name, or a parenthesised subquery with an alias. */
  from: string;
  /** A condition (without WHERE) with $1.. parameters. */
  where?: string;
  params?: readonly SqlValue[];
  groupBy?: readonly string[];
  /** Output name -> function and column (count without column counts rows). */
  measures: Readonly<Record<string, { fn: AggregateFunction; column?: string }>>;
}

export interface AggregateResult {
  /** One row per group (one row without groupBy): group columns and measures. */
  rows: Record<string, unknown>[];
  complete: boolean;
  answered: string[];
  missing: ShardFailure[];
  latencyMs: Record<string, number>;
}

interface Target {
  shard: string;
  client: SqlClient;
}

const GATHERED = Object.freeze({ reason: 'the fan-out gathered its answers' });

async function gather<T>(
  targets: readonly Target[],
  run: (client: SqlClient) => Promise<T>,
  options: FanOutOptions,
  clock: Clock,
  observe?: (shard: string, seconds: number) => void,
): Promise<{
  answers: Map<string, T>;
  missing: ShardFailure[];
  latencyMs: Record<string, number>;
}> {
  const deadlineMs = options.deadlineMs ?? 5000;
  const answers = new Map<string, T>();
  const failures = new Map<string, string>();
  const latencyMs: Record<string, number> = {};
  const stop = new AbortController();
  const all = Promise.all(
    targets.map(async ({ shard, client }) => {
      const t0 = performance.now();
      try {
        const out = await run(client);
        const ms = performance.now() - t0;
        latencyMs[shard] = Math.round(ms * 1000) / 1000;
        observe?.(shard, ms / 1000);
        if (!stop.signal.aborted) answers.set(shard, out);
      } catch (err) {
        failures.set(shard, err instanceof Error ? err.message : String(err));
      }
    }),
  );
  await Promise.race([all, clock.sleep(deadlineMs, stop.signal).catch(() => {})]);
  // A preallocated reason: abort() without one builds a DOMException (a stack trace) per call.
  stop.abort(GATHERED);
  // Late answers are not merged: a result is complete only if every shard answered in time.
  all.catch(() => {});
  const missing: ShardFailure[] = [];
  for (const { shard } of targets) {
    if (answers.has(shard)) continue;
    missing.push({ shard, reason: failures.get(shard) ?? `no answer within ${deadlineMs} ms` });
  }
  if (missing.length > 0 && !options.allowPartial) {
    const timedOut = missing.filter((m) => !failures.has(m.shard)).map((m) => m.shard);
    if (timedOut.length > 0) throw new FanOutDeadlineError(deadlineMs, timedOut);
    throw new ShardingError(
      'FANOUT_SHARD_FAILED',
      `fan-out failed on shard(s) ${missing.map((m) => `${m.shard} (${m.reason})`).join('; ')}; pass allowPartial to accept the others`,
    );
  }
  return { answers, missing, latencyMs };
}

/** Runs `text` on every target in parallel and merges (ordered k-way merge when orderBy is given). */
export async function fanOutQuery<R extends Record<string, unknown>>(
  targets: readonly Target[],
  text: string,
  params: readonly SqlValue[],
  options: FanOutOptions,
  clock: Clock,
  observe?: (shard: string, seconds: number) => void,
): Promise<FanOutResult<R>> {
  const order = (options.orderBy ?? []).map((o) => ({
    column: checkIdentifier('order column', o.column),
    desc: o.direction === 'desc',
  }));
  const offset = options.offset ?? 0;
  const limit = options.limit;
  const want = limit === undefined ? undefined : Math.max(0, Math.floor(limit + offset));
  const wrap = (n: number | undefined) => {
    if (order.length === 0 && n === undefined) return text;
    const by = order.map((o) => `cdp_q.${o.column} ${o.desc ? 'DESC' : 'ASC'}`).join(', ');
    return `SELECT * FROM (${text}) AS cdp_q${by ? ` ORDER BY ${by}` : ''}${n !== undefined ? ` LIMIT ${n}` : ''}`;
  };
  const cmp = (a: R, b: R) => {
    for (const o of order) {
      const c = compareValues(a[o.column], b[o.column]);
      if (c !== 0) return o.desc ? -c : c;
    }
    return 0;
  };
  // A first round asks each shard for its share of the rows (and a margin) instead of all of them.
  const adaptive =
    order.length > 0 &&
    want !== undefined &&
    targets.length > 1 &&
    (options.perShardLimit ?? 'adaptive') === 'adaptive';
  const first = adaptive ? Math.min(want, Math.ceil((want * 1.5) / targets.length) + 8) : want;
  const sql = wrap(first);
  const started = clock.now();
  const { answers, missing, latencyMs } = await gather(
    targets,
    async (c) => (await c.query<R>(sql, params)).rows,
    options,
    clock,
    observe,
  );
  if (adaptive && first !== undefined && first < want!) {
    // A shard that returned a full first batch has more rows; they sort after its last row. They
    // can only matter if that last row is not strictly before the merged result's last one.
    const merged = kWayMerge(
      targets.flatMap((t) => {
        const a = answers.get(t.shard);
        return a ? [a] : [];
      }),
      cmp,
      0,
      want,
    );
    const cutoff = merged.length === want ? merged[merged.length - 1] : undefined;
    const again = targets.filter((t) => {
      const a = answers.get(t.shard);
      if (!a || a.length < first) return false;
      return cutoff === undefined || cmp(a[a.length - 1]!, cutoff) <= 0;
    });
    if (again.length > 0) {
      const full = wrap(want);
      // The second round has what is left of the deadline.
      const left = Math.max(1, (options.deadlineMs ?? 5000) - (clock.now() - started));
      const more = await gather(
        again,
        async (c) => (await c.query<R>(full, params)).rows,
        { ...options, deadlineMs: left },
        clock,
        observe,
      );
      for (const [shard, rows] of more.answers) answers.set(shard, rows);
      for (const m of more.missing) {
        answers.delete(m.shard);
        missing.push(m);
      }
      for (const [shard, ms] of Object.entries(more.latencyMs))
        latencyMs[shard] = (latencyMs[shard] ?? 0) + ms;
    }
  }
  const lists = targets.flatMap((t) => {
    const a = answers.get(t.shard);
    return a ? [a] : [];
  });
  let rows: R[];
  if (order.length > 0) {
    rows = kWayMerge(lists, cmp, offset, limit);
  } else {
    rows = lists.flat().slice(offset, limit === undefined ? undefined : offset + limit);
  }
  return {
    rows,
    complete: missing.length === 0,
    answered: targets.filter((t) => answers.has(t.shard)).map((t) => t.shard),
    missing,
    latencyMs,
  };
}

/** Aggregates over shards: each shard returns partial sums, counts, minima and maxima. */
export async function aggregateOverShards(
  targets: readonly Target[],
  query: AggregateQuery,
  options: FanOutOptions,
  clock: Clock,
): Promise<AggregateResult> {
  const groups = (query.groupBy ?? []).map((g) => checkIdentifier('group column', g));
  const parts: string[] = groups.map((g) => g);
  for (const [name, m] of Object.entries(query.measures)) {
    checkIdentifier('measure', name);
    const col = m.column === undefined ? undefined : checkIdentifier('measure column', m.column);
    if (m.fn !== 'count' && col === undefined) {
      throw new ShardingError('FANOUT_BAD_QUERY', `measure "${name}" (${m.fn}) needs a column`);
    }
    if (m.fn === 'count') parts.push(`count(${col ?? '*'})::bigint AS ${name}__c`);
    if (m.fn === 'sum' || m.fn === 'avg')
      parts.push(`sum(${col})::text AS ${name}__s`, `count(${col})::bigint AS ${name}__c`);
    if (m.fn === 'min') parts.push(`min(${col}) AS ${name}__m`);
    if (m.fn === 'max') parts.push(`max(${col}) AS ${name}__m`);
  }
  const sql =
    `SELECT ${parts.join(', ')} FROM ${query.from}` +
    (query.where ? ` WHERE ${query.where}` : '') +
    (groups.length > 0 ? ` GROUP BY ${groups.join(', ')}` : '');
  const { answers, missing, latencyMs } = await gather(
    targets,
    async (c) => (await c.query<Record<string, unknown>>(sql, query.params ?? [])).rows,
    options,
    clock,
  );
  const merged = new Map<string, Record<string, unknown>>();
  for (const rows of answers.values()) {
    for (const row of rows) {
      const gk = JSON.stringify(groups.map((g) => row[g]));
      let acc = merged.get(gk);
      if (!acc) {
        acc = Object.fromEntries(groups.map((g) => [g, row[g]]));
        merged.set(gk, acc);
      }
      for (const [name, m] of Object.entries(query.measures)) {
        if (m.fn === 'count')
          acc[`${name}__c`] = Number(acc[`${name}__c`] ?? 0) + Number(row[`${name}__c`]);
        if (m.fn === 'sum' || m.fn === 'avg') {
          const s = row[`${name}__s`];
          if (s !== null && s !== undefined)
            acc[`${name}__s`] = Number(acc[`${name}__s`] ?? 0) + Number(s);
          acc[`${name}__c`] = Number(acc[`${name}__c`] ?? 0) + Number(row[`${name}__c`]);
        }
        if (m.fn === 'min' || m.fn === 'max') {
          const v = row[`${name}__m`];
          const cur = acc[`${name}__m`];
          if (v !== null && v !== undefined) {
            const c = cur === undefined || cur === null ? 0 : compareValues(v, cur);
            if (cur === undefined || cur === null || (m.fn === 'min' ? c < 0 : c > 0))
              acc[`${name}__m`] = v;
          }
        }
      }
    }
  }
  if (merged.size === 0 && groups.length === 0) merged.set('[]', {});
  const rows = [...merged.values()].map((acc) => {
    const out: Record<string, unknown> = Object.fromEntries(groups.map((g) => [g, acc[g]]));
    for (const [name, m] of Object.entries(query.measures)) {
      const c = Number(acc[`${name}__c`] ?? 0);
      if (m.fn === 'count') out[name] = c;
      if (m.fn === 'sum') out[name] = c === 0 ? null : acc[`${name}__s`];
      if (m.fn === 'avg') out[name] = c === 0 ? null : Number(acc[`${name}__s`]) / c;
      if (m.fn === 'min' || m.fn === 'max') out[name] = acc[`${name}__m`] ?? null;
    }
    return out;
  });
  return {
    rows,
    complete: missing.length === 0,
    answered: targets.filter((t) => answers.has(t.shard)).map((t) => t.shard),
    missing,
    latencyMs,
  };
}
