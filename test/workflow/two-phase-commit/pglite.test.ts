import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteSqlClient } from '../../../src/engines/sql/pglite-sql-client.js';
import {
  createBranch,
  PgTwoPhaseParticipant,
  PreparedTransactionsDisabledError,
  TwoPhaseAbortedError,
  TwoPhaseCommitCoordinator,
} from '../../../src/workflow/index.js';

/**
 * Two-phase commit between two embedded databases: PGlite prepares transactions when started
 * with max_prepared_transactions > 0, and keeps them across a close and reopen of its folder.
 */
describe('two-phase commit on PGlite', () => {
  let folder: string;
  let left: PgliteSqlClient;
  let right: PgliteSqlClient;
  let log: PgliteSqlClient;

  const open = (name: string) =>
    PgliteSqlClient.open({ dataDir: join(folder, name), maxPreparedTransactions: 8 });

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'cdp-2pc-'));
    [left, right, log] = [await open('left'), await open('right'), await open('log')];
    for (const db of [left, right]) {
      await db.exec(
        `CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
         INSERT INTO accounts VALUES ('x', 100);`,
      );
    }
  }, 120_000);
  afterAll(async () => {
    await left?.close();
    await right?.close();
    await log?.close();
    rmSync(folder, { recursive: true, force: true });
  });

  const balances = async () => {
    const read = async (db: PgliteSqlClient) =>
      Number(
        (await db.query<{ balance: string }>(`SELECT balance FROM accounts`)).rows[0]!.balance,
      );
    return [await read(left), await read(right)];
  };
  const prepared = async () => {
    let n = 0;
    for (const db of [left, right]) {
      n += (await db.query('SELECT gid FROM pg_prepared_xacts')).rowCount;
    }
    return n;
  };
  const move = (p: PgTwoPhaseParticipant, q: PgTwoPhaseParticipant, amount: number) => [
    createBranch(p, async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE accounts SET balance = balance - $1 WHERE id = 'x' AND balance >= $1`,
        [amount],
      );
      if (rowCount !== 1) throw new Error('insufficient funds');
    }),
    createBranch(q, async (tx) => {
      await tx.query(`UPDATE accounts SET balance = balance + $1 WHERE id = 'x'`, [amount]);
    }),
  ];

  it('commits on both, aborts on both, and recovers a logged commit after a reopen', async () => {
    const p = new PgTwoPhaseParticipant({ name: 'left', sql: left });
    const q = new PgTwoPhaseParticipant({ name: 'right', sql: right });
    await p.check();
    const coordinator = await TwoPhaseCommitCoordinator.open({
      sql: log,
      id: 'embedded',
      participants: [p, q],
      recoveryIntervalMs: 0,
    });
    expect((await coordinator.execute(move(p, q, 30))).status).toBe('committed');
    expect(await balances()).toEqual([70, 130]);
    await expect(coordinator.execute(move(p, q, 500))).rejects.toBeInstanceOf(TwoPhaseAbortedError);
    expect(await balances()).toEqual([70, 130]);
    expect(await prepared()).toBe(0);
    await coordinator.close();

    // Stopped after the decision: both branches stay prepared, through a close and reopen.
    const stopping = await TwoPhaseCommitCoordinator.open({
      sql: log,
      id: 'embedded',
      participants: [p, q],
      recoveryIntervalMs: 0,
      onStep: (s) => {
        if (s.kind === 'decided') throw new Error('stopped');
      },
    });
    await expect(stopping.execute(move(p, q, 20))).rejects.toThrow('stopped');
    await stopping.close();
    expect(await prepared()).toBe(2);
    await left.close();
    await right.close();
    [left, right] = [await open('left'), await open('right')];
    expect(await prepared()).toBe(2);

    const p2 = new PgTwoPhaseParticipant({ name: 'left', sql: left });
    const q2 = new PgTwoPhaseParticipant({ name: 'right', sql: right });
    const recovered = await TwoPhaseCommitCoordinator.open({
      sql: log,
      id: 'embedded',
      participants: [p2, q2],
      recoveryIntervalMs: 0,
    });
    expect(await prepared()).toBe(0);
    expect(await balances()).toEqual([50, 150]);
    expect(await recovered.inDoubt()).toEqual([]);
    await recovered.close();
  });

  it('PGlite without the setting cannot prepare: the participant says so', async () => {
    const plain = await PgliteSqlClient.open();
    try {
      const p = new PgTwoPhaseParticipant({ name: 'plain', sql: plain });
      await expect(p.check()).rejects.toBeInstanceOf(PreparedTransactionsDisabledError);
      await expect(
        p.prepare('cdp.t.0.plain', async (tx) => void (await tx.query('SELECT 1'))),
      ).rejects.toBeInstanceOf(PreparedTransactionsDisabledError);
    } finally {
      await plain.close();
    }
  });
});
