import { errorMessage } from '../core/errors.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { formatLsn, type Lsn, parseLsn } from './consistency-token.js';
import { FailoverError } from './replica-errors.js';
import type { ReplicaRouter, ReplicaState } from './replica-router.js';
import { primaryTimeline } from './replica-router.js';

export interface FailoverOptions {
  /** The standby to promote. Default: the healthy one that has received the most WAL. */
  promote?: string;
  /**
   * Stops the old primary (e.g. `pg_ctlcluster 15 NAME stop -m immediate` run by the caller's
   * tooling). Without it, the router fences the old primary through SQL when it can reach it
   * (`default_transaction_read_only = on` and its client sessions ended).
   */
  stopOldPrimary?: () => Promise<void>;
  /**
   * Connection string for the standbys that are not promoted to follow the new primary
   * (`primary_conninfo`, reloaded; each one's replication slot is created on the new primary).
   * Without it they are excluded from reads: they follow the old primary.
   */
  newPrimaryConninfo?: (standby: string) => string;
  /** A client to the promoted server whose commits wait for a standby (sync writes). */
  syncClient?: SqlClient;
  /** Bound on promotion and catch-up waits. Default 30 s. */
  timeoutMs?: number;
}

export interface FailoverReport {
  previousPrimary: string;
  promoted: string;
  /** The new primary's timeline. */
  timeline: number;
  /**
   * Where the promoted server's history leaves the old timeline: an acknowledged write whose
   * token is on the old timeline past this position may be lost (`router.mayBeLost(token)`).
   */
  forkLsn: string;
  /** How the old primary was fenced. */
  oldPrimary: 'stopped' | 'read-only' | 'unreachable';
  /** Standbys that now follow the new primary, and those excluded from reads. */
  following: string[];
  excluded: string[];
}

async function positions(client: SqlClient) {
  const { rows } = await client.query<{ rec: boolean; recv: string | null; replay: string | null }>(
    'SELECT pg_is_in_recovery() AS rec, pg_last_wal_receive_lsn()::text AS recv, pg_last_wal_replay_lsn()::text AS replay',
  );
  const row = rows[0]!;
  const recv = row.recv ? parseLsn(row.recv) : undefined;
  const replay = row.replay ? parseLsn(row.replay) : undefined;
  const furthest = recv !== undefined && (replay === undefined || recv > replay) ? recv : replay;
  return { inRecovery: row.rec, furthest: furthest ?? 0n };
}

async function fenceBySql(client: SqlClient): Promise<'read-only' | 'unreachable'> {
  try {
    await client.query('ALTER SYSTEM SET default_transaction_read_only = on');
    await client.query('SELECT pg_reload_conf()');
    await client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
    );
    return 'read-only';
  } catch {
    return 'unreachable';
  }
}

/** The position where `timeline` branched off its parent, from its history file. */
async function forkPoint(client: SqlClient, timeline: number): Promise<Lsn> {
  const file = `pg_wal/${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  const { rows } = await client.query<{ text: string }>('SELECT pg_read_file($1) AS text', [file]);
  const lines = rows[0]!.text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const last = lines[lines.length - 1]?.split('\t');
  const lsn = last?.[1] ? parseLsn(last[1].trim()) : undefined;
  if (lsn === undefined) throw new FailoverError(`cannot read the fork point from ${file}`);
  return lsn;
}

/** @internal The failover steps; `ReplicaRouter.failover` holds the write fence around them. */
export async function runFailover(
  router: ReplicaRouter,
  options: FailoverOptions,
): Promise<FailoverReport> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const old = router.primary;
  const oldTimeline = router.timeline;
  if (!router.fenced.includes(old.name)) router.fenced.push(old.name);

  let oldPrimary: FailoverReport['oldPrimary'];
  if (options.stopOldPrimary) {
    await options.stopOldPrimary();
    oldPrimary = 'stopped';
  } else {
    oldPrimary = await fenceBySql(old.client);
  }

  // The standby that has received the most WAL loses the fewest writes; under ANY 1
  // remote_apply it holds every acknowledged one.
  const ranked: { state: ReplicaState; furthest: Lsn }[] = [];
  for (const state of router.replicas) {
    if (state.excluded) continue;
    try {
      const p = await positions(state.server.client);
      if (p.inRecovery) ranked.push({ state, furthest: p.furthest });
    } catch (err) {
      state.healthy = false;
      state.lastError = errorMessage(err);
    }
  }
  ranked.sort((a, b) => (b.furthest > a.furthest ? 1 : b.furthest < a.furthest ? -1 : 0));
  const chosen = options.promote
    ? ranked.find((r) => r.state.server.name === options.promote)
    : ranked[0];
  if (!chosen) {
    throw new FailoverError(
      options.promote
        ? `${options.promote} is not a reachable standby of this router; name one of ${router.replicas.map((r) => r.server.name).join(', ')}`
        : 'no reachable standby to promote',
    );
  }
  const target = chosen.state;
  try {
    const { rows } = await target.server.client.query<{ ok: boolean }>(
      'SELECT pg_promote(true, $1) AS ok',
      [Math.max(1, Math.ceil(timeoutMs / 1000))],
    );
    if (!rows[0]?.ok) throw new Error('pg_promote() returned false (timed out)');
  } catch (err) {
    throw new FailoverError(`promoting ${target.server.name} failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const timeline = await primaryTimeline(target.server.client);
  const fork = await forkPoint(target.server.client, timeline);
  router.forks.set(oldTimeline, fork);

  router.primary = {
    name: target.server.name,
    client: target.server.client,
    ...(options.syncClient ? { syncClient: options.syncClient } : {}),
  };
  router.timeline = timeline;
  router.replicas.splice(router.replicas.indexOf(target), 1);

  const following: string[] = [];
  const excluded: string[] = [];
  for (const state of router.replicas) {
    const name = state.server.name;
    const conninfo = options.newPrimaryConninfo?.(name);
    if (conninfo !== undefined) {
      try {
        const slot = await state.server.client.query<{ s: string }>(
          'SELECT current_setting($1) AS s',
          ['primary_slot_name'],
        );
        const slotName = slot.rows[0]?.s ?? '';
        if (slotName !== '') {
          await target.server.client.query(
            `SELECT pg_create_physical_replication_slot($1, true)
              WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
            [slotName],
          );
        }
        await state.server.client.query(
          `ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`,
        );
        await state.server.client.query('SELECT pg_reload_conf()');
        following.push(name);
        state.replay = undefined;
        continue;
      } catch (err) {
        state.lastError = errorMessage(err);
      }
    }
    state.excluded = `follows the old primary ${old.name}`;
    excluded.push(name);
  }
  router.logger?.warn(
    { previous: old.name, promoted: target.server.name, timeline, fork: formatLsn(fork) },
    'replica router: failover',
  );
  return {
    previousPrimary: old.name,
    promoted: target.server.name,
    timeline,
    forkLsn: formatLsn(fork),
    oldPrimary,
    following,
    excluded,
  };
}
