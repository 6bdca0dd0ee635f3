import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { PgSqlClient } from '../../../src/engines/sql/pg.js';
import { createTempDatabase, type TempDatabase } from '../../../src/testing/index.js';
import {
  createBranch,
  PgTwoPhaseParticipant,
  type TwoPhaseBranch,
} from '../../../src/workflow/index.js';
import { MariaDbTwoPhaseParticipant } from '../../../src/workflow/mariadb.js';

/**
 * A money transfer across two databases, for the two-phase commit tests: account `a` lives in
 * PostgreSQL (the participant "pg"), account `b` in MariaDB (the participant "maria"); the
 * coordinator's decision log is a third database. The sum of both balances never changes.
 */
export const START_BALANCE = 1_000;

export interface TransferWorld {
  /** A coordinator id of this world only: MariaDB's XA RECOVER lists the whole server's branches. */
  coordinatorId: string;
  pgUrl: string;
  mariaUrl: string;
  logUrl: string;
  close(): Promise<void>;
}

/** Fresh databases with one account on each side; `close()` drops them. */
export async function createTransferWorld(
  preparedUrl: string,
  mariaServerUrl: string,
): Promise<TransferWorld> {
  const pgDb = await createTempDatabase(preparedUrl, { prefix: 'cdp_2pc' });
  const logDb = await createTempDatabase(preparedUrl, { prefix: 'cdp_2pclog' });
  const mariaName = `cdp_2pc_${randomBytes(6).toString('hex')}`;
  const admin = await mysql.createConnection({ uri: mariaServerUrl });
  await admin.query(`CREATE DATABASE ${mariaName}`);
  await admin.query(
    `CREATE TABLE ${mariaName}.accounts (id varchar(20) PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0)) ENGINE=InnoDB`,
  );
  await admin.query(`INSERT INTO ${mariaName}.accounts VALUES ('b', ?)`, [START_BALANCE]);
  await admin.end();
  const client = new pg.Client({ connectionString: pgDb.url });
  await client.connect();
  await client.query(
    `CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
     INSERT INTO accounts VALUES ('a', ${START_BALANCE});`,
  );
  await client.end();
  const mariaUrl = new URL(mariaServerUrl);
  mariaUrl.pathname = `/${mariaName}`;
  const coordinatorId = `t${randomBytes(4).toString('hex')}`;
  return {
    coordinatorId,
    pgUrl: pgDb.url,
    mariaUrl: mariaUrl.toString(),
    logUrl: logDb.url,
    close: async () => {
      await rollBackEverything(pgDb, mariaUrl.toString(), coordinatorId);
      await pgDb.drop();
      await logDb.drop();
      const conn = await mysql.createConnection({ uri: mariaServerUrl });
      await conn.query(`DROP DATABASE IF EXISTS ${mariaName}`);
      await conn.end();
    },
  };
}

/** A failed test may leave branches prepared: they would keep the databases from being dropped. */
async function rollBackEverything(
  pgDb: TempDatabase,
  mariaUrl: string,
  coordinatorId: string,
): Promise<void> {
  const client = new pg.Client({ connectionString: pgDb.url });
  await client.connect();
  const { rows } = await client.query<{ gid: string }>(
    'SELECT gid FROM pg_prepared_xacts WHERE database = current_database()',
  );
  for (const r of rows) await client.query(`ROLLBACK PREPARED '${r.gid}'`);
  await client.end();
  const conn = await mysql.createConnection({ uri: mariaUrl });
  const [xas] = await conn.query('XA RECOVER');
  for (const x of xas as { data: Buffer | string }[]) {
    const gid = String(x.data);
    if (gid.startsWith(`cdp.${coordinatorId}.`)) await conn.query('XA ROLLBACK ?', [gid]);
  }
  await conn.end();
}

/** The participants and SQL clients of one process. */
export interface TransferSide {
  pgSql: PgSqlClient;
  logSql: PgSqlClient;
  pgParticipant: PgTwoPhaseParticipant;
  mariaParticipant: MariaDbTwoPhaseParticipant;
  close(): Promise<void>;
}

export async function openSide(world: TransferWorld): Promise<TransferSide> {
  const pgSql = await PgSqlClient.open({ url: world.pgUrl, max: 4 });
  const logSql = await PgSqlClient.open({ url: world.logUrl, max: 4 });
  const mariaParticipant = await MariaDbTwoPhaseParticipant.open({
    name: 'maria',
    url: world.mariaUrl,
    connectionLimit: 4,
  });
  return {
    pgSql,
    logSql,
    pgParticipant: new PgTwoPhaseParticipant({ name: 'pg', sql: pgSql }),
    mariaParticipant,
    close: async () => {
      await mariaParticipant.close();
      await pgSql.close();
      await logSql.close();
    },
  };
}

/** Moves `amount` from `a` (PostgreSQL) to `b` (MariaDB). */
export function transferBranches(side: TransferSide, amount: number): TwoPhaseBranch[] {
  return [
    createBranch(side.pgParticipant, async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE accounts SET balance = balance - $1 WHERE id = 'a' AND balance >= $1`,
        [amount],
      );
      if (rowCount !== 1) throw new Error('insufficient funds in a');
    }),
    createBranch(side.mariaParticipant, async (db) => {
      const { affectedRows } = await db.query(
        `UPDATE accounts SET balance = balance + ? WHERE id = 'b'`,
        [amount],
      );
      if (affectedRows !== 1) throw new Error('no account b');
    }),
  ];
}

/** Both balances and the number of prepared branches on each side, read with fresh connections. */
export async function inspect(
  world: TransferWorld,
): Promise<{ a: number; b: number; preparedPg: number; preparedMaria: number }> {
  const client = new pg.Client({ connectionString: world.pgUrl });
  await client.connect();
  const a = await client.query<{ balance: string }>(`SELECT balance FROM accounts WHERE id = 'a'`);
  const p = await client.query<{ n: string }>(
    'SELECT count(*) AS n FROM pg_prepared_xacts WHERE database = current_database()',
  );
  await client.end();
  const conn = await mysql.createConnection({ uri: world.mariaUrl });
  const [rows] = await conn.query(`SELECT balance FROM accounts WHERE id = 'b'`);
  const [xas] = await conn.query('XA RECOVER');
  await conn.end();
  return {
    a: Number(a.rows[0]!.balance),
    b: Number((rows as { balance: string | number }[])[0]!.balance),
    preparedPg: Number(p.rows[0]!.n),
    preparedMaria: (xas as { data: Buffer | string }[]).filter((x) =>
      String(x.data).startsWith(`cdp.${world.coordinatorId}.`),
    ).length,
  };
}
