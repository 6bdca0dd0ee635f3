/**
 * A coordinator process for the two-phase commit fault test: one transfer from `a` (PostgreSQL)
 * to `b` (MariaDB). It prints each protocol step as a line of JSON; at the step named by STOP_AT
 * it prints `STOPPED` and waits, so that the test kills it there with SIGKILL.
 */
import { TwoPhaseCommitCoordinator, type TwoPhaseStep } from '../../../src/workflow/index.js';
import { openSide, type TransferWorld, transferBranches } from './fixture.js';

const world = JSON.parse(process.env.TRANSFER_WORLD ?? '{}') as TransferWorld;
const stopAt = process.env.STOP_AT ?? '';
const amount = Number(process.env.AMOUNT ?? '10');

function label(step: TwoPhaseStep): string {
  return 'participant' in step ? `${step.kind}:${step.participant}` : step.kind;
}

const side = await openSide(world);
const coordinator = await TwoPhaseCommitCoordinator.open({
  sql: side.logSql,
  id: world.coordinatorId,
  participants: [side.pgParticipant, side.mariaParticipant],
  recoveryIntervalMs: 0,
  onStep: (step) => {
    process.stdout.write(`${JSON.stringify({ step: label(step) })}\n`);
    if (label(step) === stopAt) {
      process.stdout.write('STOPPED\n');
      return new Promise<void>(() => {});
    }
  },
});
const result = await coordinator.execute(transferBranches(side, amount));
process.stdout.write(`DONE ${JSON.stringify(result)}\n`);
await coordinator.close();
await side.close();
