import type { RecordedError } from '../errors.js';

/** Where a run is. Terminal: completed, failed, cancelled. */
export type RunStatus =
  | 'pending'
  | 'running'
  | 'sleeping'
  | 'waiting'
  | 'blocked'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const TERMINAL: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL.includes(status);
}

/** A run as `list` and `get` return it. */
export interface RunInfo {
  id: string;
  name: string;
  version: string;
  status: RunStatus;
  /** Why a run waits or is blocked (an unknown version, a non-determinism error), or null. */
  statusReason: string | null;
  queue: string;
  parentId: string | null;
  /** The worker holding the run while it is running. */
  owner: string | null;
  input: unknown;
  output: unknown;
  error: RecordedError | null;
  /** Times a worker claimed the run (1 for a run that never moved between workers). */
  claims: number;
  createdAt: Date;
  startedAt: Date | null;
  updatedAt: Date;
  finishedAt: Date | null;
  deadlineAt: Date | null;
  /** When a sleeping or waiting run is due, or null. */
  wakeAt: Date | null;
}

/** One step of a run's history. */
export interface StepInfo {
  seq: number;
  name: string;
  /** 'step', 'transaction', 'sleep', 'signal', 'child', 'marker' or 'now'. */
  kind: string;
  /** 'waiting' (a sleep or wait not yet over), 'completed' or 'failed'. */
  status: 'waiting' | 'completed' | 'failed';
  result: unknown;
  error: RecordedError | null;
  attempts: number;
  startedAt: Date;
  finishedAt: Date | null;
  /** finishedAt - startedAt, or null while waiting. */
  durationMs: number | null;
}

export interface RunDetail extends RunInfo {
  steps: StepInfo[];
}

export interface RunRow {
  id: string;
  name: string;
  version: string;
  status: RunStatus;
  status_reason: string | null;
  input: string | null;
  output: string | null;
  error: RecordedError | null;
  queue: string;
  parent_id: string | null;
  owner: string | null;
  fence: number | bigint;
  claims: number;
  created_at: Date;
  started_at: Date | null;
  updated_at: Date;
  finished_at: Date | null;
  deadline_at: Date | null;
  wake_at: Date | null;
}

export interface StepRow {
  seq: number;
  name: string;
  kind: string;
  status: 'waiting' | 'completed' | 'failed';
  result: string | null;
  error: RecordedError | null;
  attempts: number;
  wake_at: Date | null;
  started_at: Date;
  finished_at: Date | null;
}

export function parseJson(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

export function runInfo(row: RunRow): RunInfo {
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    status: row.status,
    statusReason: row.status_reason,
    queue: row.queue,
    parentId: row.parent_id,
    owner: row.owner,
    input: parseJson(row.input),
    output: parseJson(row.output),
    error: row.error,
    claims: row.claims,
    createdAt: row.created_at,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    deadlineAt: row.deadline_at,
    wakeAt: row.wake_at,
  };
}

export function stepInfo(row: StepRow): StepInfo {
  return {
    seq: row.seq,
    name: row.name,
    kind: row.kind,
    status: row.status,
    result: parseJson(row.result),
    error: row.error,
    attempts: row.attempts,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    durationMs:
      row.finished_at === null ? null : row.finished_at.getTime() - row.started_at.getTime(),
  };
}
