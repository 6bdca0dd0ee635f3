import { randomBytes } from 'node:crypto';
import mysql, { type Pool } from 'mysql2/promise';
import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import { createTempDatabase } from '../../testing/temp-database.js';
import { MariaDbTwoPhaseParticipant } from '../../workflow/mariadb-participant.js';
import { PgTwoPhaseParticipant } from '../../workflow/pg-participant.js';
import { createBranch } from '../../workflow/two-phase-commit.js';
import { TwoPhaseCommitCoordinator } from '../../workflow/two-phase-commit-coordinator.js';
import { type BenchSuite, interleaveRounds, median, result, roundRatios } from '../harness.js';

/**
 * The same money transfer between a PostgreSQL account and a MariaDB account, two ways:
 *
 * - two-phase commit: the coordinator logs the transaction (its log on the same PostgreSQL
 *   server, another database), both branches prepare in parallel, the decision is logged, both
 *   commit in parallel, the outcome is logged;
 * - a saga of three local transactions: debit with a pending transfer row in PostgreSQL, credit
 *   in MariaDB (with the transfer id, so a retry credits once), confirm the transfer row; a
 *   failed credit is compensated by a refund. A plain local saga written here (no saga log of
 *   its own beyond the transfer row), as a service would write it by hand.
 *
 * Each worker moves money between its own pair of accounts, so the figures measure the protocol,
 * not lock waits. Needs CDP_PG_PREPARED_URL and CDP_MARIADB_URL.
 */
const ACCOUNTS = 64;

interface World {
  pg: PgSqlClient;
  log: PgSqlClient;
  maria: MariaDbTwoPhaseParticipant;
  /** Plain local transactions on the MariaDB database, for the saga. */
  mariaPool: Pool;
  pgParticipant: PgTwoPhaseParticipant;
  coordinator: TwoPhaseCommitCoordinator;
  close(): Promise<void>;
}

async function openWorld(
  pgServer: string,
  mariaServer: string,
  workers: number,
  prepare: 'in-order' | 'parallel',
): Promise<World> {
  const accounts = await createTempDatabase(pgServer, { prefix: 'cdp_bench_2pc' });
  const logDb = await createTempDatabase(pgServer, { prefix: 'cdp_bench_2pclog' });
  const pg = await PgSqlClient.open({ url: accounts.url, max: workers + 2 });
  const log = await PgSqlClient.open({ url: logDb.url, max: workers + 2 });
  await pg.exec(`
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
    CREATE TABLE transfers (id text PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL, status text NOT NULL);
    INSERT INTO accounts SELECT g, 1000000000 FROM generate_series(0, ${ACCOUNTS - 1}) g;`);
  const mariaName = `cdp_bench_2pc_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection({ uri: mariaServer });
  await conn.query(`CREATE DATABASE ${mariaName}`);
  await conn.query(
    `CREATE TABLE ${mariaName}.accounts (id int PRIMARY KEY, balance bigint NOT NULL) ENGINE=InnoDB`,
  );
  await conn.query(
    `CREATE TABLE ${mariaName}.credits (transfer varchar(64) PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL) ENGINE=InnoDB`,
  );
  await conn.query(
    `INSERT INTO ${mariaName}.accounts (id, balance) SELECT seq, 0 FROM seq_0_to_${ACCOUNTS - 1}`,
  );
  const url = new URL(mariaServer);
  url.pathname = `/${mariaName}`;
  const maria = await MariaDbTwoPhaseParticipant.open({
    name: 'ledger',
    url: url.toString(),
    connectionLimit: workers + 2,
  });
  const mariaPool = mysql.createPool({ uri: url.toString(), connectionLimit: workers + 2 });
  const pgParticipant = new PgTwoPhaseParticipant({ name: 'wallet', sql: pg });
  const coordinator = await TwoPhaseCommitCoordinator.open({
    sql: log,
    id: `b${randomBytes(4).toString('hex')}`,
    participants: [pgParticipant, maria],
    recoveryIntervalMs: 0,
    prepare,
  });
  return {
    pg,
    log,
    maria,
    mariaPool,
    pgParticipant,
    coordinator,
    close: async () => {
      await coordinator.close();
      await maria.close();
      await mariaPool.end();
      await pg.close();
      await log.close();
      await accounts.drop();
      await logDb.drop();
      await conn.query(`DROP DATABASE ${mariaName}`);
      await conn.end();
    },
  };
}

async function twoPhaseTransfer(w: World, account: number, amount: number): Promise<void> {
  await w.coordinator.execute([
    createBranch(w.pgParticipant, async (tx) => {
      const { rowCount } = await tx.query(
        'UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2',
        [account, amount],
      );
      if (rowCount !== 1) throw new Error('insufficient funds');
    }),
    createBranch(w.maria, async (db) => {
      await db.query('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, account]);
    }),
  ]);
}

async function sagaTransfer(w: World, account: number, amount: number): Promise<void> {
  const id = randomBytes(16).toString('hex');
  // 1. Debit, with the transfer recorded as pending (the saga's state, in the same transaction).
  await w.pg.transaction(async (tx) => {
    const { rowCount } = await tx.query(
      'UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2',
      [account, amount],
    );
    if (rowCount !== 1) throw new Error('insufficient funds');
    await tx.query(`INSERT INTO transfers VALUES ($1, $2, $3, 'pending')`, [id, account, amount]);
  });
  // 2. Credit, once per transfer id; 3. confirm. A failed credit is compensated by a refund.
  try {
    const conn = await w.mariaPool.getConnection();
    try {
      await conn.beginTransaction();
      await conn.query('INSERT INTO credits VALUES (?, ?, ?)', [id, account, amount]);
      await conn.query('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, account]);
      await conn.commit();
    } catch (err) {
      await conn.rollback().catch(() => {});
      throw err;
    } finally {
      conn.release();
    }
  } catch (err) {
    await w.pg.transaction(async (tx) => {
      await tx.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [account, amount]);
      await tx.query(`UPDATE transfers SET status = 'compensated' WHERE id = $1`, [id]);
    });
    throw err;
  }
  await w.pg.query(`UPDATE transfers SET status = 'done' WHERE id = $1`, [id]);
}

/** `workers` loops of transfers for `ms`; transfers per second. */
async function throughput(
  workers: number,
  ms: number,
  transfer: (account: number) => Promise<void>,
): Promise<number> {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms * 1e6);
  await Promise.all(
    Array.from({ length: workers }, async (_, i) => {
      while (process.hrtime.bigint() < end) {
        await transfer(i % ACCOUNTS);
        n++;
      }
    }),
  );
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

const suite: BenchSuite = {
  name: '2pc',
  description:
    'Transfers per second between a PostgreSQL and a MariaDB account: two-phase commit against a saga of local transactions',
  requires: ['CDP_PG_PREPARED_URL', 'CDP_MARIADB_URL'],
  async run(ctx) {
    const pgServer = ctx.env.CDP_PG_PREPARED_URL!;
    const mariaServer = ctx.env.CDP_MARIADB_URL!;
    const roundMs = ctx.quick ? 1_500 : 5_000;
    const rounds = ctx.quick ? 3 : 7;
    const results = [];
    const configs = [
      { id: '2pc.vs-saga.serial', workers: 1, prepare: 'in-order' },
      { id: '2pc.vs-saga', workers: 8, prepare: 'in-order' },
      { id: '2pc.parallel-prepare.vs-saga', workers: 8, prepare: 'parallel' },
    ] as const;
    for (const { id, workers, prepare } of configs) {
      ctx.progress(`${id}: ${rounds} rounds of ${roundMs} ms per contender`);
      const w = await openWorld(pgServer, mariaServer, workers, prepare);
      try {
        const samples = await interleaveRounds(
          {
            twoPhase: () => throughput(workers, roundMs, (a) => twoPhaseTransfer(w, a, 1)),
            saga: () => throughput(workers, roundMs, (a) => sagaTransfer(w, a, 1)),
          },
          rounds,
        );
        results.push(
          result({
            id,
            metric: 'throughput',
            unit: 'transfers/s',
            ours: Math.round(median(samples.twoPhase)),
            peer: { name: 'saga (3 local transactions)', value: Math.round(median(samples.saga)) },
            higherIsBetter: true,
            params: {
              workers,
              prepare,
              rounds,
              roundMs,
              mode: ctx.quick ? 'quick' : 'full',
              ratioSpread: roundRatios(samples.twoPhase, samples.saga),
              engines:
                'PostgreSQL 15 (max_prepared_transactions 64) + MariaDB 10.11, both on localhost; decision log on the PostgreSQL server',
              saga: 'a local saga written in the suite: debit + pending row, credit (idempotent by transfer id), confirm; refund on a failed credit; no saga log beyond the transfer row',
            },
          }),
        );
      } finally {
        await w.close();
      }
    }
    return results;
  },
};

export default suite;
