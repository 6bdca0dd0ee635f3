import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { createRegistry, type Registry } from '../../../src/core/metrics.js';
import { PgSqlClient } from '../../../src/engines/sql/pg.js';
import type { SqlClient, SqlValue } from '../../../src/engines/sql/sql-client.js';
import { eventually } from '../../../src/testing/index.js';
import {
  createBranch,
  PgTwoPhaseParticipant,
  PreparedTransactionsDisabledError,
  TwoPhaseAbortedError,
  TwoPhaseCommitCoordinator,
  TwoPhaseInDoubtError,
  type TwoPhaseStep,
  TwoPhaseVoteTimeoutError,
} from '../../../src/workflow/index.js';
import { describeServer } from '../../support/servers.js';
import {
  createTransferWorld,
  inspect,
  openSide,
  START_BALANCE,
  type TransferSide,
  type TransferWorld,
  transferBranches,
} from './fixture.js';

describeServer('two-phase commit: PostgreSQL', 'CDP_PG_PREPARED_URL', (preparedUrl) => {
  describeServer('two-phase commit: PostgreSQL and MariaDB', 'CDP_MARIADB_URL', (mariaUrl) => {
    let world: TransferWorld;
    let side: TransferSide;
    let coordinator: TwoPhaseCommitCoordinator;
    let steps: TwoPhaseStep[];
    let registry: Registry;

    beforeAll(async () => {
      world = await createTransferWorld(preparedUrl, mariaUrl);
      side = await openSide(world);
    });
    afterAll(async () => {
      await side?.close();
      await world?.close();
    });
    beforeEach(async () => {
      steps = [];
      registry = createRegistry();
      coordinator = await TwoPhaseCommitCoordinator.open({
        registry,
        sql: side.logSql,
        id: world.coordinatorId,
        participants: [side.pgParticipant, side.mariaParticipant],
        voteTimeoutMs: 5_000,
        recoveryIntervalMs: 0,
        onStep: (s) => {
          steps.push(s);
        },
      });
    });
    afterEach(async () => {
      await coordinator.close();
    });

    async function totals() {
      const s = await inspect(world);
      return { sum: s.a + s.b, prepared: s.preparedPg + s.preparedMaria, ...s };
    }

    it('commits a transfer on both databases and leaves nothing prepared', async () => {
      const before = await totals();
      const result = await coordinator.execute(transferBranches(side, 25));
      expect(result).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{32}$/),
        status: 'committed',
        pending: [],
      });
      const after = await totals();
      expect(after.a).toBe(before.a - 25);
      expect(after.b).toBe(before.b + 25);
      expect(after.sum).toBe(2 * START_BALANCE);
      expect(after.prepared).toBe(0);
      expect(steps.map((s) => s.kind)).toEqual([
        'logged',
        'prepared',
        'prepared',
        'decided',
        'committed',
        'committed',
        'finished',
      ]);
      expect(steps.find((s) => s.kind === 'decided')).toMatchObject({ decision: 'commit' });
      expect((await coordinator.statusCounts()).committed).toBeGreaterThanOrEqual(1);
      expect(await coordinator.inDoubt()).toEqual([]);
      expect(
        await registry.getSingleMetricAsString('cdp_workflow_2pc_transactions_total'),
      ).toContain('cdp_workflow_2pc_transactions_total{outcome="committed"} 1');
    });

    it('rolls back everywhere when the work of one branch fails (insufficient funds)', async () => {
      const before = await totals();
      const err = await coordinator
        .execute(transferBranches(side, 10 * START_BALANCE))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TwoPhaseAbortedError);
      expect(err).toMatchObject({ code: 'TWO_PHASE_ABORTED', participant: 'pg' });
      expect((err as Error).message).toContain('insufficient funds');
      const after = await totals();
      expect({ a: after.a, b: after.b, prepared: after.prepared }).toEqual({
        a: before.a,
        b: before.b,
        prepared: 0,
      });
      expect(steps.find((s) => s.kind === 'decided')).toMatchObject({ decision: 'abort' });
      expect(steps.at(-1)).toMatchObject({ kind: 'finished', status: 'aborted' });
    });

    it('rolls back everywhere when a participant cannot prepare (a deferred constraint fails at PREPARE)', async () => {
      await side.pgSql.exec(
        `CREATE TABLE IF NOT EXISTS receipts (ref text, CONSTRAINT receipts_ref UNIQUE (ref) DEFERRABLE INITIALLY DEFERRED);
         TRUNCATE receipts`,
      );
      const before = await totals();
      const [, mariaBranch] = transferBranches(side, 5);
      const duplicate = createBranch(side.pgParticipant, async (tx) => {
        // Runs and succeeds: the duplicate is found only when PREPARE checks deferred constraints.
        await tx.query(`UPDATE accounts SET balance = balance - 5 WHERE id = 'a'`);
        await tx.query(`INSERT INTO receipts VALUES ('r1'), ('r1')`);
      });
      const err = await coordinator.execute([duplicate, mariaBranch!]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TwoPhaseAbortedError);
      expect(err).toMatchObject({ participant: 'pg' });
      expect((err as Error).message).toMatch(/receipts_ref|duplicate/);
      const after = await totals();
      expect({ a: after.a, b: after.b, prepared: after.prepared }).toEqual({
        a: before.a,
        b: before.b,
        prepared: 0,
      });
    });

    it('aborts on the vote timeout when a participant does not prepare, and rolls its branch back once it does', async () => {
      const fast = await TwoPhaseCommitCoordinator.open({
        sql: side.logSql,
        id: world.coordinatorId,
        participants: [side.pgParticipant, side.mariaParticipant],
        voteTimeoutMs: 300,
        recoveryIntervalMs: 0,
      });
      const before = await totals();
      // Another session holds the row lock the PostgreSQL branch needs: that branch cannot vote.
      const blocker = new pg.Client({ connectionString: world.pgUrl });
      await blocker.connect();
      await blocker.query(`BEGIN; SELECT * FROM accounts WHERE id = 'a' FOR UPDATE`);
      try {
        const err = await fast.execute(transferBranches(side, 7)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TwoPhaseVoteTimeoutError);
        expect(err).toMatchObject({ code: 'TWO_PHASE_VOTE_TIMEOUT', participant: 'pg' });
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      // The blocked branch now prepares; the coordinator rolls it back by the logged abort.
      await fast.close();
      const after = await eventually(async () => {
        const t = await totals();
        return t.prepared === 0 ? t : undefined;
      }, 'the late branch rolled back');
      expect({ a: after.a, b: after.b }).toEqual({ a: before.a, b: before.b });
    });

    it('two transfers on the same rows both commit: branches prepare in order, so no deadlock across the databases', async () => {
      let release!: () => void;
      const released = new Promise<void>((r) => {
        release = r;
      });
      const ordered = await TwoPhaseCommitCoordinator.open({
        sql: side.logSql,
        id: world.coordinatorId,
        participants: [side.pgParticipant, side.mariaParticipant],
        voteTimeoutMs: 5_000,
        recoveryIntervalMs: 0,
      });
      const before = await totals();
      const [pgFirst, mariaFirst] = transferBranches(side, 2);
      // The first transfer's MariaDB work waits until the second transfer is under way.
      const slowMaria = createBranch(side.mariaParticipant, async (db) => {
        await released;
        await db.query(`UPDATE accounts SET balance = balance + 2 WHERE id = 'b'`);
      });
      void mariaFirst;
      const one = ordered.execute([pgFirst!, slowMaria]);
      await eventually(async () => (await totals()).preparedPg === 1, 'the first branch prepared');
      const two = ordered.execute(transferBranches(side, 3));
      // The second transfer's PostgreSQL branch waits for row a. Were its MariaDB branch asked at
      // the same time, it would take row b, which the first transfer then waits for: a cycle
      // across two databases that neither sees. In order, it is asked only after.
      const probe = new pg.Client({ connectionString: world.pgUrl });
      await probe.connect();
      await eventually(
        async () =>
          Number(
            (
              await probe.query<{ n: string }>(
                'SELECT count(*) AS n FROM pg_locks WHERE NOT granted',
              )
            ).rows[0]!.n,
          ) > 0,
        'the second transfer waiting for the row lock',
      );
      await probe.end();
      await new Promise((r) => setTimeout(r, 200)); // room for a parallel branch to take row b
      release();
      expect((await one).status).toBe('committed');
      expect((await two).status).toBe('committed');
      const after = await totals();
      expect({ a: after.a, b: after.b, prepared: after.prepared }).toEqual({
        a: before.a - 5,
        b: before.b + 5,
        prepared: 0,
      });
      await ordered.close();
    });

    it('recovery delivers a logged commit decision that phase 2 did not deliver', async () => {
      const stopping = await TwoPhaseCommitCoordinator.open({
        sql: side.logSql,
        id: world.coordinatorId,
        participants: [side.pgParticipant, side.mariaParticipant],
        recoveryIntervalMs: 0,
        onStep: (s) => {
          if (s.kind === 'decided') throw new Error('stopped after the decision');
        },
      });
      const before = await totals();
      await expect(stopping.execute(transferBranches(side, 3))).rejects.toThrow(
        'stopped after the decision',
      );
      const inDoubt = await stopping.inDoubt();
      expect(inDoubt.map((b) => [b.participant, b.status]).sort()).toEqual([
        ['maria', 'committing'],
        ['pg', 'committing'],
      ]);
      const report = await coordinator.recover();
      expect(report).toMatchObject({ committed: 2, rolledBack: 0, finished: 1, unreachable: [] });
      expect(
        await registry.getSingleMetricAsString('cdp_workflow_2pc_recovered_branches_total'),
      ).toContain('cdp_workflow_2pc_recovered_branches_total{action="commit"} 2');
      const after = await totals();
      expect({ a: after.a, b: after.b, prepared: after.prepared }).toEqual({
        a: before.a - 3,
        b: before.b + 3,
        prepared: 0,
      });
      await stopping.close();
    });

    it('a decision the log cannot take leaves the transaction in doubt, and recovery rolls it back', async () => {
      // The log's database fails exactly when the commit decision is written.
      const log = side.logSql;
      const failing: SqlClient = {
        engine: log.engine,
        query: <R>(text: string, params?: readonly SqlValue[]) =>
          params?.[3] === 'committing'
            ? Promise.reject(new Error('connection to the decision log lost'))
            : log.query<R>(text, params),
        exec: (script) => log.exec(script),
        transaction: (fn, options) => log.transaction(fn, options),
        listen: (channel, handler, options) => log.listen(channel, handler, options),
        notify: (channel, payload) => log.notify(channel, payload),
        ping: () => log.ping(),
        close: async () => {},
      };
      const unlucky = await TwoPhaseCommitCoordinator.open({
        sql: failing,
        id: world.coordinatorId,
        participants: [side.pgParticipant, side.mariaParticipant],
        recoveryIntervalMs: 0,
      });
      const before = await totals();
      const err = await unlucky.execute(transferBranches(side, 6)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TwoPhaseInDoubtError);
      expect(err).toMatchObject({ code: 'TWO_PHASE_IN_DOUBT' });
      expect((await totals()).prepared).toBe(2);
      expect(await unlucky.recover()).toMatchObject({ committed: 0, rolledBack: 2, finished: 1 });
      const after = await totals();
      expect({ a: after.a, b: after.b, prepared: after.prepared }).toEqual({
        a: before.a,
        b: before.b,
        prepared: 0,
      });
      await unlucky.close();
    });

    it('refuses branches of unknown participants, two branches of one participant, and bad names', async () => {
      const stranger = new PgTwoPhaseParticipant({ name: 'pg', sql: side.pgSql });
      await expect(
        coordinator.execute([createBranch(stranger, async () => {})]),
      ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      const [pgBranch] = transferBranches(side, 1);
      await expect(coordinator.execute([pgBranch!, pgBranch!])).rejects.toMatchObject({
        code: 'VALIDATION_FAILED',
      });
      await expect(coordinator.execute([])).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      for (const name of ['', 'Upper', 'a.b', 'x'.repeat(13), '__proto__', 'a:b']) {
        expect(() => new PgTwoPhaseParticipant({ name, sql: side.pgSql })).toThrow(
          /1 to 12 characters/,
        );
      }
      await expect(
        TwoPhaseCommitCoordinator.open({
          sql: side.logSql,
          id: 'has.dot',
          participants: [],
        }),
      ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    });

    describeServer(
      'two-phase commit: a server without prepared transactions',
      'CDP_DATABASE_URL',
      (plainUrl) => {
        it('a PostgreSQL participant on max_prepared_transactions = 0 votes no, and the MariaDB branch rolls back', async () => {
          const plain = await PgSqlClient.open({ url: plainUrl, max: 2 });
          try {
            const disabled = new PgTwoPhaseParticipant({ name: 'plain', sql: plain });
            await expect(disabled.check()).rejects.toBeInstanceOf(
              PreparedTransactionsDisabledError,
            );
            const mixed = await TwoPhaseCommitCoordinator.open({
              sql: side.logSql,
              id: world.coordinatorId,
              participants: [disabled, side.mariaParticipant],
              recoveryIntervalMs: 0,
            });
            const before = await totals();
            const [, mariaBranch] = transferBranches(side, 9);
            const err = await mixed
              .execute([
                createBranch(disabled, async (tx) => void (await tx.query('SELECT 1'))),
                mariaBranch!,
              ])
              .catch((e: unknown) => e);
            expect(err).toBeInstanceOf(TwoPhaseAbortedError);
            expect((err as Error).cause).toBeInstanceOf(PreparedTransactionsDisabledError);
            expect((err as Error).message).toContain('max_prepared_transactions');
            const after = await totals();
            expect({ b: after.b, prepared: after.prepared }).toEqual({ b: before.b, prepared: 0 });
            await mixed.close();
          } finally {
            await plain.close();
          }
        });
      },
    );
  });
});
