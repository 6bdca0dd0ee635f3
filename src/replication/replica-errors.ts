import { CdpError } from '../core/errors.js';

/** A server given as a replica is not a standby (`pg_is_in_recovery()` is false). */
export class NotAStandbyError extends CdpError {
  readonly server: string;
  constructor(server: string) {
    super(
      'REPLICATION_NOT_A_STANDBY',
      `${server} is not a standby (pg_is_in_recovery() is false): a replica must be a streaming standby of the primary; give its URL as the primary or remove it from the replicas`,
    );
    this.server = server;
  }
}

/**
 * A write was refused because the router does not know a primary it may write to: the one it
 * believed in is fenced (a failover is under way or done) or no longer the primary.
 */
export class NotPrimaryError extends CdpError {
  readonly server: string;
  constructor(server: string, why: string) {
    super(
      'REPLICATION_NOT_PRIMARY',
      `refusing to write to ${server}: ${why}; retry after the failover completes`,
    );
    this.server = server;
  }
}

/** The servers given to a router are not one replicated cluster. */
export class ClusterMismatchError extends CdpError {
  constructor(message: string) {
    super('REPLICATION_CLUSTER_MISMATCH', message);
  }
}

/** A failover could not promote a standby. */
export class FailoverError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('REPLICATION_FAILOVER_FAILED', message, options);
  }
}
