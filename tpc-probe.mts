import { createTransferWorld, inspect, openSide, transferBranches } from './test/workflow/two-phase-commit/fixture.js';
import { TwoPhaseCommitCoordinator } from './src/workflow/index.js';
const prepare = (process.env.MODE ?? 'parallel') as 'parallel' | 'in-order';
const world = await createTransferWorld('postgres://postgres@127.0.0.1:5433/postgres', 'mysql://root@127.0.0.1:3306/');
const side = await openSide(world);
const c = await TwoPhaseCommitCoordinator.open({ sql: side.logSql, id: world.coordinatorId, participants: [side.pgParticipant, side.mariaParticipant], voteTimeoutMs: 2000, recoveryIntervalMs: 0, prepare,
 logger: (await import('pino')).default({ level: 'warn' }) });
const outcomes: Record<string, number> = {};
const end = Date.now() + 8000;
await Promise.all(Array.from({ length: 3 }, async () => { while (Date.now() < end) { try { const r = await c.execute(transferBranches(side, 1)); outcomes[r.status] = (outcomes[r.status] ?? 0) + 1; } catch (e: any) { outcomes[e.code ?? e.message] = (outcomes[e.code ?? e.message] ?? 0) + 1; } } }));
console.log(prepare, outcomes, await inspect(world), await c.statusCounts(), await c.inDoubt());
await c.close();
console.log('after close', await inspect(world), await c.statusCounts(), await c.inDoubt());
await side.close(); await world.close();
console.log('closed');
