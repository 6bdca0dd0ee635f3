import { performance } from 'node:perf_hooks';
import { ValidationError } from '../core/errors.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type { ReplicaRouter } from './replica-router.js';

export interface StalenessOptions {
  /** A table name of your own for the probe rows; created when missing. */
  table: string;
  /** Writes measured. Default 200. */
  trials?: number;
  /** 'sync': the write waits for one standby to apply (ANY 1 remote_apply). */
  commit: 'sync' | 'async';
  /** The curve's points: t = 0, step, 2·step, ... up to this, in ms. Default 20. */
  horizonMs?: number;
  /** Default 0.5 ms. */
  stepMs?: number;
  /** A replica read that has not seen the write after this long gives up. Default 2000 ms. */
  giveUpMs?: number;
  /** High-resolution time in ms. Default performance.now. */
  now?: () => number;
}

/** One point of the PBS curve: the probability that a replica read issued t ms after the write was acknowledged misses it. */
export interface StalenessPoint {
  tMs: number;
  pStale: number;
}

export interface StalenessReport {
  commit: 'sync' | 'async';
  trials: number;
  replicas: string[];
  /** Median and p99 write latency (acknowledged by the primary), ms. */
  writeMs: { p50: number; p99: number };
  /**
   * Per trial and replica: ms from the acknowledgement to the start of the first read that saw
   * the row (0 when the first read saw it).
   */
  visibleAfterMs: { p50: number; p99: number; max: number };
  curve: StalenessPoint[];
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Measures probabilistically bounded staleness (PBS) on real replicas: each trial writes one
 * row on the primary and, from the moment the write is acknowledged, reads it in a tight loop
 * on every replica until it appears. The curve is the fraction of (trial, replica) pairs whose
 * row was not yet visible t ms after the acknowledgement; its resolution is one replica round
 * trip. The probe table gets one row per trial.
 */
export async function measureStaleness(
  router: ReplicaRouter,
  options: StalenessOptions,
): Promise<StalenessReport> {
  const now = options.now ?? (() => performance.now());
  const trials = options.trials ?? 200;
  const horizon = options.horizonMs ?? 20;
  const step = options.stepMs ?? 0.5;
  const giveUp = options.giveUpMs ?? 2000;
  const table = options.table;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) {
    throw new ValidationError(
      `not a plain table name: ${table}; use lowercase letters, digits and _`,
    );
  }
  const writer: SqlClient =
    options.commit === 'sync'
      ? (router.primary.syncClient ?? router.primary.client)
      : router.primary.client;
  await router.primary.client.query(
    `CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY, commit text NOT NULL)`,
  );
  const { rows } = await router.primary.client.query<{ n: string }>(
    `SELECT (coalesce(max(id), 0) + 1)::text AS n FROM ${table}`,
  );
  let id = Number(rows[0]!.n);
  const replicas = router.replicas.filter((r) => r.healthy && !r.excluded).map((r) => r.server);
  // The table must exist on every replica before the first probe.
  for (const replica of replicas) {
    const deadline = now() + 30_000;
    for (;;) {
      const { rows } = await replica.client.query<{ ok: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS ok',
        [table],
      );
      if (rows[0]?.ok) break;
      if (now() > deadline) {
        throw new ValidationError(`the probe table ${table} did not reach ${replica.name} in 30 s`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const writes: number[] = [];
  const delays: number[] = [];
  for (let i = 0; i < trials; i++) {
    const key = id++;
    const started = now();
    await writer.query(`INSERT INTO ${table} (id, commit) VALUES ($1, $2)`, [key, options.commit]);
    const acked = now();
    writes.push(acked - started);
    await Promise.all(
      replicas.map(async (replica) => {
        for (let stale = 0; ; stale++) {
          const at = now();
          const res = await replica.client.query(`SELECT 1 FROM ${table} WHERE id = $1`, [key]);
          if (res.rowCount > 0) {
            // Visible by the start of this read at the latest; 0 when no read missed it.
            delays.push(stale === 0 ? 0 : Math.max(0, at - acked));
            return;
          }
          if (at - acked > giveUp) {
            delays.push(Number.POSITIVE_INFINITY);
            return;
          }
        }
      }),
    );
  }
  writes.sort((a, b) => a - b);
  delays.sort((a, b) => a - b);
  const curve: StalenessPoint[] = [];
  for (let t = 0; t <= horizon + 1e-9; t += step) {
    const stale = delays.filter((d) => d > t).length;
    curve.push({ tMs: round(t), pStale: delays.length ? round(stale / delays.length) : 0 });
  }
  return {
    commit: options.commit,
    trials,
    replicas: replicas.map((r) => r.name),
    writeMs: { p50: round(quantile(writes, 0.5)), p99: round(quantile(writes, 0.99)) },
    visibleAfterMs: {
      p50: round(quantile(delays, 0.5)),
      p99: round(quantile(delays, 0.99)),
      max: round(delays[delays.length - 1] ?? Number.NaN),
    },
    curve,
  };
}
