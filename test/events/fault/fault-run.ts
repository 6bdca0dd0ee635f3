/**
 * Fault run of the global log on PostgreSQL. Writer processes append in their own transactions
 * with random rollbacks and slow commits, some are killed with SIGKILL mid-flight and
 * replaced, and one transaction stays open and idle for a while after appending. A catch-up
 * reader follows the global log the whole time. At the end the reader must hold every
 * committed event exactly once and in position order (compared with the table), every
 * acknowledged commit must be there and every rollback absent.
 *
 *   CDP_DATABASE_URL=... npx tsx test/events/fault/fault-run.ts            (CDP_FAULT_SCALE appends, default 1,000,000)
 *
 * Prints a JSON summary; exits 1 on any violation.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../../src/events/index.js';
import { eventually } from '../../../src/testing/eventually.js';
import { createTempDatabase } from '../../../src/testing/temp-database.js';

export interface FaultRunOptions {
  url: string;
  appends: number;
  writers?: number;
  killEveryMs?: number;
  idleMs?: number;
  log?: (line: string) => void;
}

export interface FaultRunSummary {
  appendsCommitted: number;
  /** Of appendsCommitted, those autocommitted (one statement, outside a writer's transaction). */
  appendsAutocommitted: number;
  eventsCommitted: number;
  eventsRead: number;
  rollbacks: number;
  slowCommits: number;
  kills: number;
  writerErrors: number;
  idleTransactions: number;
  idleHeldMs: number;
  readerHeldBackObservations: number;
  violations: string[];
  seconds: number;
  appendsPerSecond: number;
}

const here = dirname(fileURLToPath(import.meta.url));

export async function runFault(options: FaultRunOptions): Promise<FaultRunSummary> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const db = await createTempDatabase(options.url, { prefix: 'cdp_evfault' });
  const sql = await PgSqlClient.open({ url: db.url, max: 4 });
  const store = await SqlEventStore.open(sql, { notify: false });
  const s = {
    appendsCommitted: 0,
    appendsAutocommitted: 0,
    eventsCommitted: 0,
    rollbacks: 0,
    slowCommits: 0,
    kills: 0,
    writerErrors: 0,
    idleTransactions: 0,
    idleHeldMs: 0,
    readerHeldBackObservations: 0,
  };
  const committedIds: string[] = [];
  const rolledBackIds: string[] = [];
  const errors: string[] = [];
  const writers = new Set<ChildProcess>();
  let stopping = false;

  const spawnWriter = () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'writer.ts')], {
      env: { ...process.env, FAULT_DB_URL: db.url },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    writers.add(child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const kind = line[0];
      if (kind === 'C' || kind === 'A') {
        const ids = line.slice(2).split(',');
        s.appendsCommitted++;
        if (kind === 'A') s.appendsAutocommitted++;
        s.eventsCommitted += ids.length;
        for (const id of ids) committedIds.push(id);
      } else if (kind === 'R') {
        s.rollbacks++;
        for (const id of line.slice(2).split(',')) rolledBackIds.push(id);
      } else if (kind === 'S') s.slowCommits++;
      else if (kind === 'E') {
        s.writerErrors++;
        if (errors.length < 5) errors.push(line);
      }
    });
    child.on('exit', () => {
      writers.delete(child);
      if (!stopping) spawnWriter();
    });
  };
  const writerCount = options.writers ?? 4;
  for (let i = 0; i < writerCount; i++) spawnWriter();

  // Kill a random writer now and then: its in-flight transactions die with its connections.
  const killEvery = options.killEveryMs ?? 1500;
  const killer = setInterval(() => {
    const list = [...writers];
    const victim = list[randomInt(list.length)];
    if (victim && !stopping && victim.exitCode === null) {
      victim.kill('SIGKILL');
      s.kills++;
    }
  }, killEvery);

  // One transaction that appends and then sits idle, holding readers back.
  const idleMs = options.idleMs ?? 5000;
  const idle = (async () => {
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    await sql.transaction(async (tx) => {
      await store.append('fault-idle', [{ type: 'Fault', data: { idle: true } }], { tx });
      await new Promise((r) => setTimeout(r, idleMs));
    });
    s.idleTransactions++;
    s.idleHeldMs = Date.now() - t0;
  })();

  // The catch-up reader.
  const positions: number[] = [];
  const readIds: string[] = [];
  let pos = 0;
  let lastProgress = Date.now();
  const readOnce = async () => {
    const { events, next } = await store.readAll({ after: pos, limit: 2000 });
    for (const e of events) {
      positions.push(e.position);
      readIds.push(e.id);
    }
    if (store.readerStatus().heldBack) s.readerHeldBackObservations++;
    const moved = next !== pos;
    pos = next;
    return moved;
  };
  while (s.appendsCommitted < options.appends) {
    if (!(await readOnce())) await new Promise((r) => setTimeout(r, 5));
    if (Date.now() - lastProgress > 5000) {
      lastProgress = Date.now();
      log(
        `${s.appendsCommitted.toLocaleString()} appends committed, reader at ${positions.length.toLocaleString()} events, kills ${s.kills}`,
      );
    }
  }
  stopping = true;
  clearInterval(killer);
  await Promise.all(
    [...writers].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.exitCode !== null) return resolve();
          w.once('exit', () => resolve());
          w.kill('SIGTERM');
        }),
    ),
  );
  await idle;
  // Killed writers' transactions are gone with their connections once the server notices.
  await eventually(
    async () =>
      (
        await sql.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'cdp-fault-writer' AND datname = current_database()",
        )
      ).rows[0]!.n === 0,
    "the killed writers' connections to be gone",
    { timeoutMs: 120_000, intervalMs: 50 },
  );
  // Drain up to the table's last committed position: other transactions on the server (any
  // database) may hold the reader back for a while; it waits, it never skips.
  const { rows: topRows } = await sql.query<{ top: number | null }>(
    'SELECT max(position) AS top FROM cdp_events',
  );
  const top = Number(topRows[0]?.top ?? 0);
  const drainDeadline = Date.now() + 120_000;
  while (pos < top && Date.now() < drainDeadline) {
    if (!(await readOnce())) await new Promise((r) => setTimeout(r, 10));
  }

  // Compare with the table itself.
  const violations: string[] = [];
  const { rows: countRows } = await sql.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM cdp_events',
  );
  const tableCount = countRows[0]!.n;
  if (tableCount !== positions.length)
    violations.push(`table has ${tableCount} events, reader read ${positions.length}`);
  let idx = 0;
  let after = 0;
  for (;;) {
    const { rows } = await sql.query<{ position: number }>(
      'SELECT position FROM cdp_events WHERE position > $1 ORDER BY position LIMIT 50000',
      [after],
    );
    if (rows.length === 0) break;
    for (const r of rows) {
      const p = Number(r.position);
      if (positions[idx] !== p && violations.length < 20) {
        violations.push(`at index ${idx}: table position ${p}, reader position ${positions[idx]}`);
      }
      idx++;
      after = p;
    }
  }
  for (let i = 1; i < positions.length; i++) {
    if (positions[i]! <= positions[i - 1]! && violations.length < 40)
      violations.push(`reader out of order at ${i}`);
  }
  const readSet = new Set(readIds);
  if (readSet.size !== readIds.length)
    violations.push(`reader read ${readIds.length - readSet.size} duplicates`);
  const missing = committedIds.filter((id) => !readSet.has(id));
  if (missing.length > 0)
    violations.push(`${missing.length} acknowledged commits missing, e.g. ${missing[0]}`);
  const ghosts = rolledBackIds.filter((id) => readSet.has(id));
  if (ghosts.length > 0) violations.push(`${ghosts.length} rolled-back events were read`);
  const { rows: gaps } = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT stream_id, version, row_number() OVER (PARTITION BY stream_id ORDER BY version) AS rn FROM cdp_events) t WHERE version <> rn`,
  );
  if (gaps[0]!.n > 0) violations.push(`${gaps[0]!.n} stream versions out of sequence`);
  // A stream's events must reach a reader of the global log in version order.
  const { rows: inversions } = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT position, lag(position) OVER (PARTITION BY stream_id ORDER BY version) AS prev FROM cdp_events) t WHERE prev > position`,
  );
  if (inversions[0]!.n > 0)
    violations.push(
      `${inversions[0]!.n} events positioned before an earlier version of their stream`,
    );
  for (const e of errors) violations.push(`writer error: ${e}`);

  await sql.close();
  await db.drop();
  const seconds = (Date.now() - started) / 1000;
  return {
    ...s,
    eventsRead: positions.length,
    violations,
    seconds,
    appendsPerSecond: Math.round(s.appendsCommitted / seconds),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const url = process.env.CDP_DATABASE_URL;
  if (!url) {
    console.error(
      'set CDP_DATABASE_URL to a PostgreSQL server (a temporary database is created and dropped)',
    );
    process.exit(2);
  }
  const summary = await runFault({
    url,
    appends: Number(process.env.CDP_FAULT_SCALE ?? 1_000_000),
    writers: Number(process.env.FAULT_WRITERS ?? 4),
    idleMs: Number(process.env.FAULT_IDLE_MS ?? 10_000),
    killEveryMs: Number(process.env.FAULT_KILL_EVERY_MS ?? 2000),
    log: (l) => console.error(l),
  });
  console.log(JSON.stringify(summary, null, 2));
  process.exit(summary.violations.length === 0 ? 0 : 1);
}
