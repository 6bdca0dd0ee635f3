import type { Logger } from 'pino';
import type { Clock } from '../../../core/clock.js';
import { errorMessage } from '../../../core/errors.js';
import type { TwoPhaseParticipant, TwoPhaseRecoveryReport } from '../../two-phase-commit.js';
import type { DecisionLog, LoggedTransaction } from '../2pc-log/decision-log.js';
import { branchId, coordinatorPrefix, parseBranchId } from './branch-id.js';

export interface RecoveryContext {
  coordinator: string;
  owner: string;
  log: DecisionLog;
  participants: ReadonlyMap<string, TwoPhaseParticipant<never>>;
  /** Transactions the live coordinator of this process runs: left alone. */
  active: ReadonlySet<string>;
  clock: Clock;
  logger: Logger | undefined;
  /**
   * Undecided ('preparing') transactions started before this time belong to no live coordinator
   * and are aborted (infinity on open: every one of another process).
   */
  abandonedBefore: number;
}

/**
 * One recovery pass. The prepared branches are listed before the log is read: a branch is
 * prepared only after its transaction was logged, so every listed branch of a logged transaction
 * finds its row, and a branch without one was never decided (presumed abort).
 */
export async function recoverOnce(ctx: RecoveryContext): Promise<TwoPhaseRecoveryReport> {
  const report: TwoPhaseRecoveryReport = {
    committed: 0,
    rolledBack: 0,
    finished: 0,
    unreachable: [],
  };
  const prefix = coordinatorPrefix(ctx.coordinator);
  /** transaction id -> participants holding a prepared branch of it */
  const prepared = new Map<string, Set<string>>();
  const reachable = new Set<string>();
  for (const participant of ctx.participants.values()) {
    let gids: string[];
    try {
      gids = await participant.listPrepared(prefix);
    } catch (err) {
      report.unreachable.push(participant.name);
      ctx.logger?.warn(
        { participant: participant.name, err: errorMessage(err) },
        'two-phase commit recovery: participant unreachable',
      );
      continue;
    }
    reachable.add(participant.name);
    for (const gid of gids) {
      const parsed = parseBranchId(ctx.coordinator, gid);
      if (!parsed || parsed.participant !== participant.name) continue;
      const holders = prepared.get(parsed.transaction) ?? new Set<string>();
      holders.add(participant.name);
      prepared.set(parsed.transaction, holders);
    }
  }

  const logged = await ctx.log.unfinishedOr([...prepared.keys()]);
  const byId = new Map(logged.map((t) => [t.id, t]));
  const ids = new Set([...prepared.keys(), ...byId.keys()]);
  for (const id of ids) {
    if (ctx.active.has(id)) continue;
    const holders = prepared.get(id) ?? new Set<string>();
    let tx: LoggedTransaction | undefined = byId.get(id);
    if (tx?.status === 'preparing') {
      // Not run by this process (checked above): this process gave up on it, or it is old
      // enough that no live coordinator still waits for its votes.
      const abandoned = tx.owner === ctx.owner || tx.startedAt < ctx.abandonedBefore;
      if (!abandoned) continue;
      const status = await ctx.log.transition(
        id,
        'preparing',
        'aborting',
        ctx.clock.now(),
        'aborted by recovery: no decision from a live coordinator',
      );
      tx = { ...tx, status: status ?? 'aborting' };
    }
    const commit = tx?.status === 'committing' || tx?.status === 'committed';
    let complete = true;
    for (const name of tx?.participants ?? holders) {
      if (!reachable.has(name)) {
        complete = false;
        continue;
      }
      if (!holders.has(name)) continue;
      const participant = ctx.participants.get(name);
      if (!participant) continue;
      const gid = branchId(ctx.coordinator, id, name);
      try {
        if (commit) {
          await participant.commitPrepared(gid);
          report.committed++;
        } else {
          await participant.rollbackPrepared(gid);
          report.rolledBack++;
        }
      } catch (err) {
        complete = false;
        ctx.logger?.warn(
          { transaction: id, participant: name, err: errorMessage(err) },
          'two-phase commit recovery: branch not resolved; the next pass retries it',
        );
      }
    }
    if (!tx || !complete) continue;
    if (tx.status === 'committing' || tx.status === 'aborting') {
      const to = tx.status === 'committing' ? 'committed' : 'aborted';
      await ctx.log.transition(id, tx.status, to, ctx.clock.now());
      report.finished++;
    }
  }
  return report;
}
