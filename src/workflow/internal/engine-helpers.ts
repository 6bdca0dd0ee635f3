import type { SqlClient } from '../../engines/sql/sql-client.js';
import { DeadlineExceededError, WorkflowCancelledError, WorkflowFailedError } from '../errors.js';
import type { RunRow } from './run-rows.js';

const workersBySql = new WeakMap<SqlClient, Set<string>>();

/** Ids of the workers open in this process on a SqlClient. */
export function liveWorkers(sql: SqlClient): Set<string> {
  let set = workersBySql.get(sql);
  if (!set) {
    set = new Set();
    workersBySql.set(sql, set);
  }
  return set;
}

export function endError(
  runId: string,
  status: string,
  error: RunRow['error'],
  deadline: Date | null,
): Error {
  if (status === 'cancelled' || error?.code === 'WORKFLOW_CANCELLED') {
    return new WorkflowCancelledError(runId);
  }
  if (error?.code === 'WORKFLOW_DEADLINE_EXCEEDED') {
    return new DeadlineExceededError(runId, deadline?.getTime() ?? 0);
  }
  return new WorkflowFailedError(runId, error ?? { name: 'Error', message: status });
}
