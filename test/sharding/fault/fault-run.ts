/**
 * Fault run for sharding: writers update rows across 4 PostgreSQL shards (on at least two
 * servers) while a mover process moves slots continuously and is SIGKILLed at random moments
 * and restarted, and one shard server restarts once. Afterwards: every acknowledged write is
 * readable with its last value, no row is on two shards, every slot has exactly one owner (the
 * one the catalog names), and no move is left running.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import {
  type IndexCheckReport,
  IndexTables,
  installShardMap,
  ShardRouter,
} from '../../../src/sharding/index.js';
import { createTempDatabase, type TempDatabase } from '../../../src/testing/index.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface ShardFaultOptions {
  urls: readonly string[];
  rows: number;
  writers: number;
  durationMs: number;
  killEveryMs: [number, number];
  /** Restart the server of shard s1 once, mid-run (pg_ctlcluster). */
  restartServer: boolean;
  /** Run after the writers stop, before the checks (the index checker, say). */
  afterRun?: (ctx: {
    router: ShardRouter;
    catalog: PgSqlClient;
    shards: Record<string, PgSqlClient>;
  }) => Promise<void>;
}

export interface ShardFaultReport {
  rows: number;
  ackedWrites: number;
  kills: number;
  serverRestarts: number;
  movesDone: number;
  /** Moves completed by the extra mover run after the kills (when none completed during them). */
  movesAfterKills: number;
  lostWrites: number;
  missingRows: number;
  duplicateRows: number;
  slotsWithTwoOwners: number;
  slotsWithNoOwner: number;
  slotsOwnerDiffersFromCatalog: number;
  runningMoves: number;
  writeErrors: number;
  /** Index changes the drainer applied during and after the run, and its largest lag, ms. */
  indexApplied: number;
  indexLagMsMax: number;
  /** The index checker's findings after the run (zero divergence expected). */
  index: Pick<IndexCheckReport, 'baseRows' | 'indexRows' | 'missing' | 'extra' | 'stale'> | null;
}

function clusterOf(url: string): { version: string; name: string } {
  const port = new URL(url).port || '5432';
  const line = execFileSync('pg_lsclusters', ['-h'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[2] === port);
  if (!line || line[1] === 'main')
    throw new Error(`no restartable cluster (not main) on port ${port}`);
  return { version: line[0]!, name: line[1]! };
}

export async function runShardFault(o: ShardFaultOptions): Promise<ShardFaultReport> {
  const dbs: TempDatabase[] = [];
  const mk = async (url: string, prefix: string) => {
    const db = await createTempDatabase(url, { prefix });
    dbs.push(db);
    return db.url;
  };
  const catalogUrl = await mk(o.urls[0]!, 'cdp_fcat');
  const shardUrls: Record<string, string> = {};
  for (let i = 0; i < 4; i++)
    shardUrls[`s${i}`] = await mk(o.urls[i % o.urls.length]!, `cdp_fsh${i}`);
  const catalog = await PgSqlClient.open({ url: catalogUrl, max: 4 });
  const shards: Record<string, PgSqlClient> = {};
  for (const [id, url] of Object.entries(shardUrls)) {
    shards[id] = await PgSqlClient.open({ url, max: o.writers + 2 });
    await shards[id]!.exec('CREATE TABLE items (id bigint PRIMARY KEY, val bigint NOT NULL)');
  }
  await installShardMap(catalog, shards, {
    name: 'items',
    strategy: 'hash',
    keyType: 'bigint',
    shards: Object.entries(shardUrls).map(([id, location]) => ({ id, location })),
    tables: [{ name: 'items', keyColumn: 'id' }],
  });
  for (const [id, c] of Object.entries(shards)) {
    await c.query(
      `INSERT INTO items (id, val) SELECT g, g FROM generate_series(1, $1::int) g
       WHERE ('slot:' || cdp_shard_slot(g::text, 4096)) IN (SELECT unit FROM cdp_shard_owned WHERE map = 'items')`,
      [o.rows],
    );
    void id;
  }
  const router = await ShardRouter.open({
    catalog,
    map: 'items',
    shards,
    refreshMs: 100,
    fenceWaitMs: 120_000,
  });
  // A unique index on val (partial: carries id), loaded in bulk for the initial rows; writers keep
  // it through IndexTables.put, a drainer applies the queued cross-shard changes during the run.
  const ix = new IndexTables(router, [
    {
      name: 'items_by_val',
      baseTable: 'items',
      baseKey: 'id',
      column: 'val',
      mode: 'partial',
      columns: ['id'],
      unique: true,
    },
  ]);
  await ix.install();
  for (const c of Object.values(shards)) {
    await c.query(
      `INSERT INTO items_by_val (value, key, data) SELECT g::text, g::text, jsonb_build_object('id', g::bigint)
       FROM generate_series(1, $1::int) g
       WHERE ('slot:' || cdp_shard_slot(g::text, 4096)) IN (SELECT unit FROM cdp_shard_owned WHERE map = 'items')`,
      [o.rows],
    );
  }

  const report: ShardFaultReport = {
    rows: o.rows,
    ackedWrites: 0,
    kills: 0,
    serverRestarts: 0,
    movesDone: 0,
    movesAfterKills: 0,
    lostWrites: 0,
    missingRows: 0,
    duplicateRows: 0,
    slotsWithTwoOwners: 0,
    slotsWithNoOwner: 0,
    slotsOwnerDiffersFromCatalog: 0,
    runningMoves: 0,
    writeErrors: 0,
    indexApplied: 0,
    indexLagMsMax: 0,
    index: null,
  };
  const last = new Map<number, number>();
  let stop = false;
  const writers = Array.from({ length: o.writers }, async (_, w) => {
    let n = 0;
    while (!stop) {
      const id = 1 + w + o.writers * Math.floor(Math.random() * Math.floor(o.rows / o.writers));
      if (id > o.rows) continue;
      const val = (w + 1) * 1_000_000_000 + ++n;
      for (;;) {
        try {
          await ix.put('items', { id, val });
          break;
        } catch {
          report.writeErrors++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      last.set(id, val);
      report.ackedWrites++;
    }
  });

  const drainer = (async () => {
    while (!stop) {
      try {
        const d = await ix.drain(500);
        report.indexApplied += d.applied;
        report.indexLagMsMax = Math.max(report.indexLagMsMax, d.lagMs);
      } catch {
        // A shard restarting: the queue keeps the changes; the next round applies them.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  const env = {
    ...process.env,
    CDP_SHARD_FAULT: JSON.stringify({ catalog: catalogUrl, map: 'items', shards: shardUrls }),
  };
  const spawnMover = (mode?: string): ChildProcess => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'mover-process.ts'), ...(mode ? [mode] : [])],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (b: Buffer) => {
      for (const line of b.toString().split('\n'))
        if (line.includes('"phase":"done"')) report.movesDone++;
    });
    child.stderr!.resume();
    return child;
  };
  const started = Date.now();
  let restarted = false;
  while (Date.now() - started < o.durationMs) {
    const child = spawnMover();
    const [lo, hi] = o.killEveryMs;
    await new Promise((r) => setTimeout(r, lo + Math.random() * (hi - lo)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    report.kills++;
    if (o.restartServer && !restarted && Date.now() - started > o.durationMs / 2) {
      const c = clusterOf(shardUrls.s1!);
      execFileSync('pg_ctlcluster', [
        '--skip-systemctl-redirect',
        c.version,
        c.name,
        'restart',
        '-m',
        'fast',
      ]);
      restarted = true;
      report.serverRestarts++;
    }
  }
  const finisher = spawnMover('finish');
  await new Promise((r) => finisher.once('exit', r));
  // On a loaded machine the kills can come faster than any move completes; the run still needs
  // a completed move under writers, so one more mover, never killed, makes one while they write.
  if (report.movesDone === 0) {
    const oneMore = spawnMover('one');
    await new Promise((r) => oneMore.once('exit', r));
    report.movesAfterKills = report.movesDone;
  }
  stop = true;
  await Promise.all(writers);
  await drainer;
  for (;;) {
    const d = await ix.drain(5000);
    report.indexApplied += d.applied;
    if (d.applied === 0) break;
  }
  const checked = await ix.check('items_by_val');
  report.index = {
    baseRows: checked.baseRows,
    indexRows: checked.indexRows,
    missing: checked.missing,
    extra: checked.extra,
    stale: checked.stale,
  };

  const seen = new Map<number, number>();
  for (const c of Object.values(shards)) {
    for (const r of (await c.query<{ id: number; val: number }>('SELECT id, val FROM items'))
      .rows) {
      if (seen.has(Number(r.id))) report.duplicateRows++;
      seen.set(Number(r.id), Number(r.val));
    }
  }
  for (let id = 1; id <= o.rows; id++) if (!seen.has(id)) report.missingRows++;
  for (const [id, val] of last) if (seen.get(id) !== val) report.lostWrites++;

  const state = await router.catalog.load('items');
  const owners = new Map<string, string[]>();
  for (const [id, c] of Object.entries(shards)) {
    for (const r of (
      await c.query<{ unit: string }>(`SELECT unit FROM cdp_shard_owned WHERE map = 'items'`)
    ).rows) {
      owners.set(r.unit, [...(owners.get(r.unit) ?? []), id]);
    }
  }
  for (let slot = 0; slot < state.slotCount; slot++) {
    const o2 = owners.get(`slot:${slot}`) ?? [];
    if (o2.length > 1) report.slotsWithTwoOwners++;
    if (o2.length === 0) report.slotsWithNoOwner++;
    if (o2.length === 1 && o2[0] !== state.slots[slot]) report.slotsOwnerDiffersFromCatalog++;
  }
  const running = await catalog.query(
    `SELECT 1 FROM cdp_shard_moves WHERE phase NOT IN ('done', 'rolled-back')`,
  );
  report.runningMoves = running.rows.length;

  await router.close();
  for (const c of Object.values(shards)) await c.close();
  await catalog.close();
  for (const db of dbs) await db.drop();
  return report;
}
