import { CdpError, ValidationError } from '../core/errors.js';

/**
 * A resource manager that takes part in two-phase commit: a database that can run a piece of
 * work in a transaction branch, prepare it (make it durable and keep its locks, without
 * committing), and later commit or roll back the prepared branch from any connection, even after
 * a restart of the database or of the coordinator.
 *
 * `W` is the work a branch runs: for the PostgreSQL participant a function of a SQL transaction,
 * for the MariaDB one a function of a MariaDB connection.
 */
export interface TwoPhaseParticipant<W = unknown> {
  /**
   * Unique among one coordinator's participants; part of every transaction id the participant
   * prepares: 1 to 12 characters, lower-case letters, digits and `-`, starting with a letter.
   */
  readonly name: string;
  /**
   * Phase 1: run `work` in a new transaction branch and prepare it under `gid`. Resolves once
   * the branch is prepared (the vote "yes"); throws (the vote "no") when the work or the
   * prepare fails, and then nothing of the branch stays: it is rolled back. With `timeoutMs`,
   * a statement of the branch that runs or waits for a lock longer than that fails (the
   * coordinator passes its vote timeout, so that a branch it gave up on lets go of its
   * connection and locks instead of waiting on, perhaps for a lock that a prepared branch holds).
   */
  prepare(gid: string, work: W, options?: PrepareOptions): Promise<void>;
  /** Phase 2: commit the prepared branch `gid`. A `gid` that is not prepared is a no-op. */
  commitPrepared(gid: string): Promise<void>;
  /** Phase 2: roll back the prepared branch `gid`. A `gid` that is not prepared is a no-op. */
  rollbackPrepared(gid: string): Promise<void>;
  /** Ids of the branches prepared and not yet resolved whose id starts with `prefix`. */
  listPrepared(prefix: string): Promise<string[]>;
}

/** Options of `TwoPhaseParticipant.prepare`. */
export interface PrepareOptions {
  /** The longest a statement of the branch may run or wait, in ms. */
  timeoutMs?: number;
}

/** One participant and the work it runs in a distributed transaction. */
export interface TwoPhaseBranch {
  readonly participant: TwoPhaseParticipant<never>;
  /** Runs the work and prepares it under `gid` (phase 1 for this participant). */
  prepare(gid: string, options?: PrepareOptions): Promise<void>;
}

/** Pairs a participant with its work, keeping their types together. */
export function createBranch<W>(participant: TwoPhaseParticipant<W>, work: W): TwoPhaseBranch {
  return {
    participant: participant as TwoPhaseParticipant<never>,
    prepare: (gid, options) => participant.prepare(gid, work, options),
  };
}

/** Where a distributed transaction stands in the coordinator's decision log. */
export type TwoPhaseStatus = 'preparing' | 'committing' | 'aborting' | 'committed' | 'aborted';

/** What `execute` resolves with: the transaction committed. */
export interface TwoPhaseCommitResult {
  /** The transaction's id in the decision log (each branch's id is derived from it). */
  id: string;
  /** 'committed': every participant committed. 'committing': the decision is commit and is
   * durable, but some participants could not be reached yet; recovery finishes them. */
  status: 'committed' | 'committing';
  /** Participants whose commit is still to be delivered (empty when status is 'committed'). */
  pending: string[];
}

/** One protocol step, reported to `onStep` after it has happened (for tracing and fault tests). */
export type TwoPhaseStep =
  | { kind: 'logged'; id: string }
  | { kind: 'prepared'; id: string; participant: string }
  | { kind: 'decided'; id: string; decision: 'commit' | 'abort' }
  | { kind: 'committed'; id: string; participant: string }
  | { kind: 'rolled-back'; id: string; participant: string }
  | { kind: 'finished'; id: string; status: 'committed' | 'aborted' };

/** What one recovery pass did. */
export interface TwoPhaseRecoveryReport {
  /** Prepared branches committed by their logged commit decision. */
  committed: number;
  /** Prepared branches rolled back (logged abort, or no decision: presumed abort). */
  rolledBack: number;
  /** Transactions of the log brought to their final state. */
  finished: number;
  /** Participants that could not be reached; their branches wait for the next pass. */
  unreachable: string[];
}

/** The distributed transaction was rolled back everywhere; `cause` says why. */
export class TwoPhaseAbortedError extends CdpError {
  readonly id: string;
  /** The participant whose vote was "no" or missing, when one was. */
  readonly participant: string | undefined;
  constructor(
    id: string,
    participant: string | undefined,
    message: string,
    options?: { cause?: unknown; code?: string },
  ) {
    super(options?.code ?? 'TWO_PHASE_ABORTED', message, options);
    this.id = id;
    this.participant = participant;
  }
}

/** A participant did not vote within the vote timeout: the transaction was aborted. */
export class TwoPhaseVoteTimeoutError extends TwoPhaseAbortedError {
  readonly timeoutMs: number;
  constructor(id: string, participant: string, timeoutMs: number) {
    super(
      id,
      participant,
      `participant "${participant}" did not prepare transaction ${id} within ${timeoutMs} ms, so it was rolled back everywhere; ` +
        'look for a lock the branch waits on, or raise voteTimeoutMs',
      { code: 'TWO_PHASE_VOTE_TIMEOUT' },
    );
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Every branch prepared, but the decision could not be written to the log (its database failed):
 * the outcome is whatever the log holds, and recovery applies it (commit if the decision was
 * written, otherwise abort). Read it later with the transaction's `id`.
 */
export class TwoPhaseInDoubtError extends CdpError {
  readonly id: string;
  constructor(id: string, cause: unknown) {
    super(
      'TWO_PHASE_IN_DOUBT',
      `transaction ${id} is prepared everywhere, but its decision could not be logged; recovery commits it if the decision was written and rolls it back otherwise. ` +
        'Check the decision log database, then look the transaction up before retrying it',
      { cause },
    );
    this.id = id;
  }
}

/** The engine behind a participant cannot prepare transactions (PostgreSQL with max_prepared_transactions = 0). */
export class PreparedTransactionsDisabledError extends CdpError {
  readonly participant: string;
  constructor(participant: string, message: string) {
    super('PREPARED_TRANSACTIONS_DISABLED', message);
    this.participant = participant;
  }
}

const NAME = /^[a-z][a-z0-9-]{0,11}$/;

/** Checks a coordinator id or participant name (they become parts of every branch id). */
export function assertTwoPhaseName(kind: string, name: string): void {
  if (!NAME.test(name)) {
    throw new ValidationError(
      `${kind} ${JSON.stringify(name)} must be 1 to 12 characters: lower-case letters, digits and -, starting with a letter`,
    );
  }
}
