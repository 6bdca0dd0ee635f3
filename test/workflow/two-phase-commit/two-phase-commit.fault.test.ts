import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TwoPhaseCommitCoordinator } from '../../../src/workflow/index.js';
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

/**
 * The coordinator killed (SIGKILL) after every protocol message, and the PostgreSQL participant
 * restarted while a branch is prepared: after recovery the sum of both balances is what it was,
 * the transfer happened exactly when the commit decision had been logged, and nothing stays
 * prepared on either database. Needs the PostgreSQL cluster with prepared transactions
 * (tooling/pg-prepared-cluster.sh, CDP_PG_PREPARED_URL) and MariaDB (CDP_MARIADB_URL); the
 * restart uses pg_ctlcluster, so it runs on the machine that hosts the cluster.
 */
const here = dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

/** Stop points, in protocol order, and whether the transfer must have happened after recovery. */
const STOPS: [string, boolean][] = [
  ['logged', false],
  ['prepared:pg', false],
  ['prepared:maria', false],
  ['decided', true],
  ['committed:pg', true],
  ['committed:maria', true],
  ['finished', true],
];

function killAt(
  world: TransferWorld,
  stopAt: string,
): Promise<{ lines: string[]; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'coordinator-process.ts')],
      {
        env: {
          ...process.env,
          TRANSFER_WORLD: JSON.stringify(world),
          STOP_AT: stopAt,
          AMOUNT: '10',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const lines: string[] = [];
    let stderr = '';
    let killed = false;
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        lines.push(line);
        if (line === 'STOPPED' && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (killed && signal === 'SIGKILL') resolve({ lines, killed });
      else
        reject(
          new Error(`coordinator process ended (${code ?? signal}) before ${stopAt}: ${stderr}`),
        );
    });
  });
}

describeServer('two-phase commit faults: PostgreSQL', 'CDP_PG_PREPARED_URL', (preparedUrl) => {
  describeServer(
    'two-phase commit faults: PostgreSQL and MariaDB',
    'CDP_MARIADB_URL',
    (mariaUrl) => {
      let world: TransferWorld;
      let side: TransferSide;
      let injected = 0;

      beforeAll(async () => {
        world = await createTransferWorld(preparedUrl, mariaUrl);
        side = await openSide(world);
      });
      afterAll(async () => {
        await side?.close();
        await world?.close();
      });

      it.each(STOPS)(
        'coordinator killed after %s: recovery conserves the sum and leaves nothing prepared',
        async (stopAt, transferred) => {
          const before = await inspect(world);
          const { lines } = await killAt(world, stopAt);
          injected++;
          expect(lines).toContain('STOPPED');
          const atKill = await inspect(world);
          // The kill left what the step says: a prepared branch from the first prepare until the
          // last commit (the decision and the commits of the other branch run in parallel).
          if (stopAt.startsWith('prepared') || stopAt === 'decided') {
            expect(atKill.preparedPg + atKill.preparedMaria).toBeGreaterThan(0);
          }
          const restarted = await TwoPhaseCommitCoordinator.open({
            sql: side.logSql,
            id: world.coordinatorId,
            participants: [side.pgParticipant, side.mariaParticipant],
            recoveryIntervalMs: 0,
          });
          try {
            const after = await inspect(world);
            expect(after.a + after.b).toBe(2 * START_BALANCE);
            expect({ preparedPg: after.preparedPg, preparedMaria: after.preparedMaria }).toEqual({
              preparedPg: 0,
              preparedMaria: 0,
            });
            expect({ a: after.a, b: after.b }).toEqual(
              transferred ? { a: before.a - 10, b: before.b + 10 } : { a: before.a, b: before.b },
            );
            const counts = await restarted.statusCounts();
            expect({
              preparing: counts.preparing,
              committing: counts.committing,
              aborting: counts.aborting,
            }).toEqual({
              preparing: 0,
              committing: 0,
              aborting: 0,
            });
            // The next transfer goes through: no lock is left behind.
            await restarted.execute(transferBranches(side, 1));
            const next = await inspect(world);
            expect(next.a + next.b).toBe(2 * START_BALANCE);
          } finally {
            await restarted.close();
          }
        },
      );

      it('a prepared branch survives a restart of its PostgreSQL server, and phase 2 then commits it', async () => {
        const before = await inspect(world);
        const survived: string[] = [];
        const coordinator = await TwoPhaseCommitCoordinator.open({
          sql: side.logSql,
          id: world.coordinatorId,
          participants: [side.pgParticipant, side.mariaParticipant],
          recoveryIntervalMs: 0,
          phaseTwoRetryMs: 30_000,
          onStep: async (step) => {
            if (step.kind !== 'decided') return;
            const port = new URL(preparedUrl).port || '5432';
            const cluster = await clusterOnPort(port);
            await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...cluster, 'restart'], {
              timeout: 60_000,
            });
            injected++;
            const client = new pg.Client({ connectionString: world.pgUrl });
            await client.connect();
            const { rows } = await client.query<{ gid: string }>(
              'SELECT gid FROM pg_prepared_xacts WHERE database = current_database()',
            );
            await client.end();
            survived.push(...rows.map((r) => r.gid));
          },
        });
        try {
          const result = await coordinator.execute(transferBranches(side, 4));
          expect(survived).toEqual([`cdp.${world.coordinatorId}.${result.id}.pg`]);
          expect(result.status).toBe('committed');
          const after = await inspect(world);
          expect(after).toEqual({
            a: before.a - 4,
            b: before.b + 4,
            preparedPg: 0,
            preparedMaria: 0,
          });
        } finally {
          await coordinator.close();
        }
      });

      it('counted every injected fault', () => {
        expect(injected).toBe(STOPS.length + 1);
      });
    },
  );
});

/** The `version name` of the local cluster on `port`, from pg_lsclusters. */
async function clusterOnPort(port: string): Promise<[string, string]> {
  const { stdout } = await run('pg_lsclusters', ['-h']);
  for (const line of stdout.split('\n')) {
    const [version, name, p] = line.trim().split(/\s+/);
    if (p === port && version && name) return [version, name];
  }
  throw new Error(`no local PostgreSQL cluster on port ${port} (pg_lsclusters)`);
}
