import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import { CdpError, ClosedError, errorMessage, ValidationError } from '../core/errors.js';
import { type IdGenerator, UuidV7Generator } from '../core/ids.js';
import { counter, histogram } from '../core/metrics.js';
import { backoffDelay } from '../core/retry.js';
import { migrate } from '../engines/sql/migrations.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { DecisionLog } from './internal/2pc-log/decision-log.js';
import { branchId, coordinatorPrefix, transactionId } from './internal/2pc-protocol/branch-id.js';
import { type RecoveryContext, recoverOnce } from './internal/2pc-protocol/recovery.js';
import {
  assertTwoPhaseName,
  TwoPhaseAbortedError,
  type TwoPhaseBranch,
  type TwoPhaseCommitResult,
  TwoPhaseInDoubtError,
  type TwoPhaseParticipant,
  type TwoPhaseRecoveryReport,
  type TwoPhaseStatus,
  type TwoPhaseStep,
  TwoPhaseVoteTimeoutError,
} from './two-phase-commit.js';
import { twoPhaseCommitMigrations } from './two-phase-commit-migrations.js';

export interface TwoPhaseCommitCoordinatorOptions {
  /** The database of the decision log (PGlite or PostgreSQL); migrated on open. */
  sql: SqlClient;
  /**
   * This coordinator's id, part of every branch id: 1 to 12 characters from [a-z0-9-]. One live
   * process per id: a coordinator that opens aborts the undecided transactions of the id that
   * no live coordinator of this process runs (those of a process that died).
   */
  id: string;
  /** Every participant a transaction of this coordinator may use (unique names). */
  participants: readonly TwoPhaseParticipant<never>[];
  /**
   * 'in-order' (default): the branches run and prepare one after the other, in the order given,
   * and a "no" stops the rest: two transactions that touch the same rows on two participants
   * take their locks in one order and cannot deadlock across the databases (a cycle no database
   * sees, which only the vote timeout would break). 'parallel': every branch at once, one
   * prepare's time faster per extra participant when transactions do not contend.
   */
  prepare?: 'parallel' | 'in-order';
  /** A participant that has not prepared within this many ms is a "no" vote. Default 10_000. */
  voteTimeoutMs?: number;
  /**
   * How long `execute` keeps retrying phase 2 on a participant it cannot reach before it returns
   * with that participant pending (recovery delivers the decision later). Default the vote
   * timeout + 5_000: long enough for branches given up on to release their connections.
   */
  phaseTwoRetryMs?: number;
  /** Between recovery passes, in ms; 0 runs recovery only on open and on `recover()`. Default 30_000. */
  recoveryIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
  /**
   * Metrics: `cdp_workflow_2pc_transactions_total{outcome}` (committed, committing, aborted,
   * vote-timeout, in-doubt, failed), `cdp_workflow_2pc_duration_seconds` (of `execute`),
   * `cdp_workflow_2pc_recovered_branches_total{action}` (commit, rollback).
   */
  registry?: Registry;
  /** Ids of transactions; default UUIDv7 from `clock`. */
  ids?: IdGenerator;
  /**
   * Called after each protocol step, before the next one starts; the protocol waits for it. For
   * tracing, and for fault tests that stop the coordinator between two protocol messages.
   */
  onStep?: (step: TwoPhaseStep) => void | Promise<void>;
}

/** A prepared branch that waits for its decision, and the decision the log holds for it. */
export interface InDoubtBranch {
  participant: string;
  gid: string;
  transaction: string;
  /** The logged status; undefined when the log has no row (recovery rolls it back). */
  status: TwoPhaseStatus | undefined;
}

type Vote = { index: number; ok: true } | { index: number; ok: false; error: unknown };

/**
 * The coordinator of two-phase commit, with a durable decision log in its own SQL database.
 *
 * `execute(branches)` logs the transaction with its participants ('preparing'), asks every
 * participant to run its work and prepare (in parallel), then logs the decision (commit when every
 * participant voted yes within the vote timeout, abort otherwise) before it tells any participant,
 * and marks the transaction finished when every participant acknowledged. A coordinator that dies
 * at any point leaves prepared branches behind; the next one finds them on every participant
 * (`recover`, run on open and every `recoveryIntervalMs`) and commits those whose logged decision
 * is commit and rolls back all others (presumed abort), so that nothing stays prepared: prepared
 * transactions hold their locks and keep PostgreSQL's vacuum from cleaning up behind them.
 */
export class TwoPhaseCommitCoordinator {
  readonly id: string;
  readonly #log: DecisionLog;
  readonly #participants: ReadonlyMap<string, TwoPhaseParticipant<never>>;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #ids: IdGenerator;
  readonly #voteTimeoutMs: number;
  readonly #phaseTwoRetryMs: number;
  readonly #onStep: TwoPhaseCommitCoordinatorOptions['onStep'];
  readonly #inOrder: boolean;
  readonly #metrics: ReturnType<typeof coordinatorMetrics> | undefined;
  /** This instance's id in the log's `owner` column. */
  readonly #owner: string;
  /** Transactions this instance is running: recovery leaves them alone. */
  readonly #active = new Set<string>();
  /** Rollbacks of branches that prepared after their transaction was aborted. */
  readonly #stragglers = new Set<Promise<void>>();
  #recovery: Promise<TwoPhaseRecoveryReport> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: TwoPhaseCommitCoordinatorOptions) {
    assertTwoPhaseName('coordinator id', options.id);
    const participants = new Map<string, TwoPhaseParticipant<never>>();
    for (const p of options.participants) {
      assertTwoPhaseName('participant name', p.name);
      if (participants.has(p.name)) {
        throw new ValidationError(`two participants are named "${p.name}": names must be unique`);
      }
      participants.set(p.name, p);
    }
    this.id = options.id;
    this.#participants = participants;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
    this.#ids = options.ids ?? new UuidV7Generator(this.#clock);
    this.#voteTimeoutMs = options.voteTimeoutMs ?? 10_000;
    this.#phaseTwoRetryMs = options.phaseTwoRetryMs ?? this.#voteTimeoutMs + 5_000;
    this.#onStep = options.onStep;
    this.#inOrder = (options.prepare ?? 'in-order') === 'in-order';
    this.#metrics = options.registry ? coordinatorMetrics(options.registry) : undefined;
    this.#owner = this.#ids.next();
    this.#log = new DecisionLog(options.sql, options.id);
  }

  /**
   * Migrates the decision log, runs a first recovery pass (which also aborts the undecided
   * transactions of a coordinator of this id that died) and starts the periodic recovery.
   * A participant that cannot be reached does not stop the open: its branches wait for the next
   * pass (the report of `recover()` names it).
   */
  static async open(options: TwoPhaseCommitCoordinatorOptions): Promise<TwoPhaseCommitCoordinator> {
    const coordinator = new TwoPhaseCommitCoordinator(options);
    await migrate(options.sql, twoPhaseCommitMigrations, { logger: options.logger });
    await coordinator.#recover(true);
    const interval = options.recoveryIntervalMs ?? 30_000;
    if (interval > 0) coordinator.#schedule(interval);
    return coordinator;
  }

  #schedule(interval: number): void {
    this.#timer = setTimeout(() => {
      this.#recover(false)
        .catch((err) =>
          this.#logger?.warn({ err: errorMessage(err) }, 'two-phase commit recovery pass failed'),
        )
        .finally(() => {
          if (!this.#closed) this.#schedule(interval);
        });
    }, interval);
    this.#timer.unref();
  }

  /**
   * Runs one distributed transaction over `branches` (one per participant, made with
   * `createBranch`). Resolves when the decision is commit (see the result's `status`); throws
   * `TwoPhaseAbortedError` (or its subclass `TwoPhaseVoteTimeoutError`) when it was rolled back
   * everywhere.
   */
  async execute(branches: readonly TwoPhaseBranch[]): Promise<TwoPhaseCommitResult> {
    if (this.#closed) throw new ClosedError('TwoPhaseCommitCoordinator');
    const started = this.#clock.now();
    try {
      const result = await this.#run(branches);
      this.#metrics?.transactions.inc({ outcome: result.status });
      return result;
    } catch (err) {
      this.#metrics?.transactions.inc({ outcome: outcomeOf(err) });
      throw err;
    } finally {
      this.#metrics?.duration.observe((this.#clock.now() - started) / 1000);
    }
  }

  async #run(branches: readonly TwoPhaseBranch[]): Promise<TwoPhaseCommitResult> {
    const names = this.#checkBranches(branches);
    const id = transactionId(this.#ids.next());
    await this.#log.begin(id, names, this.#owner, this.#clock.now());
    this.#active.add(id);
    try {
      await this.#step({ kind: 'logged', id });
      const deadline = this.#clock.now() + this.#voteTimeoutMs;
      const vote = await this.#collectVotes(id, branches);
      if (vote.ok) {
        let status: TwoPhaseStatus | undefined;
        try {
          status = await this.#log.transition(id, 'preparing', 'committing', this.#clock.now());
        } catch (err) {
          // Every branch is prepared, and whether the decision was written is unknown: the
          // prepared branches wait for recovery, which follows whatever the log holds.
          throw new TwoPhaseInDoubtError(id, err);
        }
        if (status === 'committing') {
          await this.#step({ kind: 'decided', id, decision: 'commit' });
          return await this.#commit(id, names);
        }
        // A recovery pass decided abort first (the transaction outlived twice the vote timeout).
        await this.#abort(id, branches, vote.pending, 0, 'aborted by recovery before the decision');
        throw new TwoPhaseAbortedError(
          id,
          undefined,
          `transaction ${id} was aborted by a recovery pass before this coordinator decided it; nothing was committed, retry it`,
        );
      }
      const participant = branches[vote.failed]!.participant.name;
      const reason =
        vote.error === undefined
          ? `no vote from ${participant} within ${this.#voteTimeoutMs} ms`
          : `${participant} voted no: ${errorMessage(vote.error)}`;
      await this.#abort(id, branches, vote.pending, deadline, reason);
      if (vote.error === undefined) {
        throw new TwoPhaseVoteTimeoutError(id, participant, this.#voteTimeoutMs);
      }
      throw new TwoPhaseAbortedError(
        id,
        participant,
        `participant "${participant}" could not prepare transaction ${id}, so it was rolled back everywhere: ${errorMessage(vote.error)}`,
        { cause: vote.error },
      );
    } finally {
      this.#active.delete(id);
    }
  }

  #checkBranches(branches: readonly TwoPhaseBranch[]): string[] {
    if (branches.length === 0) throw new ValidationError('a transaction needs at least one branch');
    const names: string[] = [];
    for (const b of branches) {
      const known = this.#participants.get(b.participant.name);
      if (known !== b.participant) {
        throw new ValidationError(
          `participant "${b.participant.name}" is not one of this coordinator's participants: pass it in participants when opening the coordinator`,
        );
      }
      if (names.includes(b.participant.name)) {
        throw new ValidationError(
          `participant "${b.participant.name}" has two branches in one transaction: put its work in one branch`,
        );
      }
      names.push(b.participant.name);
    }
    return names;
  }

  async #step(step: TwoPhaseStep): Promise<void> {
    if (this.#onStep) await this.#onStep(step);
  }

  /**
   * Phase 1: every branch prepares in parallel. Ends at the first "no", at the vote timeout, or
   * when every branch voted yes. `pending` holds the votes still outstanding.
   */
  async #collectVotes(
    id: string,
    branches: readonly TwoPhaseBranch[],
  ): Promise<
    | { ok: true; pending: ReadonlyMap<number, Promise<Vote>> }
    | { ok: false; failed: number; error: unknown; pending: ReadonlyMap<number, Promise<Vote>> }
  > {
    let over = false;
    const ask = (b: TwoPhaseBranch, index: number): Promise<Vote> =>
      b
        .prepare(branchId(this.id, id, b.participant.name), {
          // A second past the vote timeout, so that the coordinator's verdict comes first.
          timeoutMs: this.#voteTimeoutMs + 1_000,
        })
        .then(
          async (): Promise<Vote> => {
            await this.#step({ kind: 'prepared', id, participant: b.participant.name });
            return { index, ok: true };
          },
          (error: unknown): Promise<Vote> => Promise.resolve({ index, ok: false, error }),
        );
    const votes: Promise<Vote>[] = [];
    if (this.#inOrder) {
      // One branch after the other, in the order given: a branch that is not asked (an earlier
      // one voted no, or the vote is over) counts as settled with nothing prepared.
      let previous: Promise<Vote> = Promise.resolve({ index: -1, ok: true });
      branches.forEach((b, index) => {
        previous = previous.then((before) =>
          before.ok && !over
            ? ask(b, index)
            : { index, ok: false, error: new Error('not asked: the vote ended before its turn') },
        );
        votes.push(previous);
      });
    } else {
      for (const [index, b] of branches.entries()) votes.push(ask(b, index));
    }
    const settled = new Set<number>();
    const tracked = votes.map((v) =>
      v.then((r) => {
        settled.add(r.index);
        return r;
      }),
    );
    const firstNo = new Promise<Vote>((resolve) => {
      for (const v of tracked) v.then((r) => (r.ok ? undefined : resolve(r)));
    });
    const timer = new AbortController();
    const timeout = this.#clock
      .sleep(this.#voteTimeoutMs, timer.signal)
      .then(() => 'timeout' as const)
      .catch(() => 'cancelled' as const);
    try {
      const outcome = await Promise.race([Promise.all(tracked), firstNo, timeout]);
      const pending = () =>
        new Map(tracked.map((v, i) => [i, v] as const).filter(([i]) => !settled.has(i)));
      if (Array.isArray(outcome) && outcome.every((r) => r.ok)) {
        return { ok: true, pending: new Map() };
      }
      if (outcome === 'timeout' || outcome === 'cancelled') {
        const failed = branches.findIndex((_, i) => !settled.has(i));
        return { ok: false, failed: Math.max(0, failed), error: undefined, pending: pending() };
      }
      const no = (Array.isArray(outcome) ? outcome.find((r) => !r.ok) : outcome) as Vote & {
        ok: false;
      };
      return { ok: false, failed: no.index, error: no.error, pending: pending() };
    } finally {
      over = true;
      timer.abort();
    }
  }

  /** Phase 2 of a commit decision; retries an unreachable participant for `phaseTwoRetryMs`. */
  async #commit(id: string, names: string[]): Promise<TwoPhaseCommitResult> {
    const results = await Promise.all(
      names.map(async (name) => {
        const ok = await this.#deliver(id, name, 'commit');
        if (ok) await this.#step({ kind: 'committed', id, participant: name });
        return ok ? undefined : name;
      }),
    );
    const pending = results.filter((n): n is string => n !== undefined);
    if (pending.length > 0) {
      this.#logger?.warn(
        { transaction: id, pending },
        'two-phase commit: decision commit is logged; recovery delivers it to the participants not reached',
      );
      return { id, status: 'committing', pending };
    }
    try {
      await this.#log.transition(id, 'committing', 'committed', this.#clock.now());
    } catch (err) {
      // Every participant committed; the log's row stays 'committing' until recovery marks it.
      this.#logger?.warn(
        { transaction: id, err: errorMessage(err) },
        'two-phase commit: committed everywhere, but the outcome was not logged; recovery logs it',
      );
      return { id, status: 'committed', pending: [] };
    }
    await this.#step({ kind: 'finished', id, status: 'committed' });
    return { id, status: 'committed', pending: [] };
  }

  /** Logs the abort decision and rolls back every branch, including those that prepare late. */
  async #abort(
    id: string,
    branches: readonly TwoPhaseBranch[],
    late: ReadonlyMap<number, Promise<Vote>>,
    deadline: number,
    reason: string,
  ): Promise<void> {
    const status = await this.#log.transition(
      id,
      'preparing',
      'aborting',
      this.#clock.now(),
      reason,
    );
    if (status !== 'aborting' && status !== 'aborted') {
      throw new CdpError(
        'TWO_PHASE_LOG_CONFLICT',
        `transaction ${id} is "${status}" in the decision log where this coordinator decided abort; recovery resolves it by the log`,
      );
    }
    await this.#step({ kind: 'decided', id, decision: 'abort' });
    // Votes still outstanding usually come within moments (the other branch's "no" came first):
    // wait for them until the vote deadline, then leave the rest to roll back when they prepare.
    if (late.size > 0) {
      const ac = new AbortController();
      const remaining = Math.max(0, deadline - this.#clock.now());
      await Promise.race([
        Promise.all(late.values()),
        this.#clock.sleep(remaining, ac.signal).catch(() => {}),
      ]);
      ac.abort();
    }
    const stillLate = new Map<number, Promise<Vote>>();
    for (const [index, vote] of late) {
      const marker = Symbol('late');
      if ((await Promise.race([vote, Promise.resolve(marker)])) === marker)
        stillLate.set(index, vote);
    }
    // A branch that voted no may still have prepared (a connection lost during PREPARE):
    // every settled branch gets a rollback, a no-op where nothing is prepared.
    const rollback = async (index: number): Promise<boolean> => {
      const name = branches[index]!.participant.name;
      const ok = await this.#deliver(id, name, 'rollback');
      if (ok) await this.#step({ kind: 'rolled-back', id, participant: name });
      return ok;
    };
    const now = await Promise.all(
      branches.map((_, index) => (stillLate.has(index) ? true : rollback(index))),
    );
    const finish = async (done: boolean[]) => {
      if (!done.every(Boolean)) return; // recovery finishes it
      await this.#log.transition(id, 'aborting', 'aborted', this.#clock.now());
      await this.#step({ kind: 'finished', id, status: 'aborted' });
    };
    if (stillLate.size === 0) {
      await finish(now);
      return;
    }
    // Work still running may prepare after this point: roll it back when it does.
    const straggler: Promise<void> = Promise.all(
      [...stillLate].map(([index, vote]) => vote.then(() => rollback(index))),
    )
      .then((done) => finish([...now, ...done]))
      .catch((err) =>
        this.#logger?.warn(
          { transaction: id, err: errorMessage(err) },
          'two-phase commit: late branch not rolled back; recovery retries it',
        ),
      )
      .finally(() => this.#stragglers.delete(straggler));
    this.#stragglers.add(straggler);
  }

  /** Delivers a phase-2 message, retrying with backoff; false when the participant stays unreachable. */
  async #deliver(id: string, name: string, what: 'commit' | 'rollback'): Promise<boolean> {
    const participant = this.#participants.get(name)!;
    const gid = branchId(this.id, id, name);
    const started = this.#clock.now();
    for (let attempt = 1; ; attempt++) {
      try {
        if (what === 'commit') await participant.commitPrepared(gid);
        else await participant.rollbackPrepared(gid);
        return true;
      } catch (err) {
        const delay = backoffDelay(attempt, { baseDelayMs: 50, maxDelayMs: 1_000 });
        if (this.#closed || this.#clock.now() - started + delay > this.#phaseTwoRetryMs) {
          this.#logger?.warn(
            { transaction: id, participant: name, err: errorMessage(err) },
            `two-phase commit: ${what} not delivered; recovery retries it`,
          );
          return false;
        }
        await this.#clock.sleep(delay);
      }
    }
  }

  /**
   * One recovery pass: finds every prepared branch of this coordinator on every participant and
   * commits or rolls it back by the logged decision (no decision: rolled back), and finishes the
   * logged decisions whose phase 2 did not complete. Concurrent calls share one pass.
   */
  recover(): Promise<TwoPhaseRecoveryReport> {
    if (this.#closed) return Promise.reject(new ClosedError('TwoPhaseCommitCoordinator'));
    return this.#recover(false);
  }

  #recover(first: boolean): Promise<TwoPhaseRecoveryReport> {
    if (this.#recovery) return this.#recovery;
    const context: RecoveryContext = {
      coordinator: this.id,
      owner: this.#owner,
      log: this.#log,
      participants: this.#participants,
      active: this.#active,
      clock: this.#clock,
      logger: this.#logger,
      // On open, every undecided transaction of another owner belongs to a process that died.
      abandonedBefore: first
        ? Number.POSITIVE_INFINITY
        : this.#clock.now() - 2 * this.#voteTimeoutMs,
    };
    this.#recovery = recoverOnce(context)
      .then((report) => {
        this.#metrics?.recovered.inc({ action: 'commit' }, report.committed);
        this.#metrics?.recovered.inc({ action: 'rollback' }, report.rolledBack);
        return report;
      })
      .finally(() => {
        this.#recovery = undefined;
      });
    return this.#recovery;
  }

  /** The prepared branches of this coordinator on every reachable participant (should be none at rest). */
  async inDoubt(): Promise<InDoubtBranch[]> {
    const prefix = coordinatorPrefix(this.id);
    const found: InDoubtBranch[] = [];
    for (const participant of this.#participants.values()) {
      for (const gid of await participant.listPrepared(prefix)) {
        const transaction = gid.slice(prefix.length).split('.')[0] ?? '';
        found.push({ participant: participant.name, gid, transaction, status: undefined });
      }
    }
    for (const branch of found) branch.status = (await this.#log.get(branch.transaction))?.status;
    return found;
  }

  /** Transactions of this coordinator in the decision log, by status. */
  statusCounts(): Promise<Record<TwoPhaseStatus, number>> {
    return this.#log.counts();
  }

  /**
   * Stops the periodic recovery and waits for the rollbacks of late-preparing branches (bounded
   * by the vote timeout). Participants and the SQL client stay open: they belong to the caller.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#recovery?.catch(() => {});
    const ac = new AbortController();
    await Promise.race([
      Promise.allSettled([...this.#stragglers]),
      this.#clock.sleep(this.#voteTimeoutMs, ac.signal).catch(() => {}),
    ]);
    ac.abort();
  }
}

function outcomeOf(err: unknown): string {
  if (err instanceof TwoPhaseVoteTimeoutError) return 'vote-timeout';
  if (err instanceof TwoPhaseAbortedError) return 'aborted';
  if (err instanceof TwoPhaseInDoubtError) return 'in-doubt';
  return 'failed';
}

function coordinatorMetrics(registry: Registry) {
  return {
    transactions: counter(
      registry,
      'cdp_workflow_2pc_transactions_total',
      'Distributed transactions run by execute, by outcome',
      ['outcome'],
    ),
    duration: histogram(
      registry,
      'cdp_workflow_2pc_duration_seconds',
      'Time of execute, from logging the transaction to its outcome',
    ),
    recovered: counter(
      registry,
      'cdp_workflow_2pc_recovered_branches_total',
      'Prepared branches resolved by recovery, by action',
      ['action'],
    ),
  };
}
