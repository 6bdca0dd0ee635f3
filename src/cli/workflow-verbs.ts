/**
 * `cdp workflow list|show|cancel|resume`: the workflow module's run functions on the database
 * of CDP_DATABASE_URL (or the PGlite folder, when no platform holds it), printed as text or JSON.
 */

import { systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { appliedMigrations } from '../engines/sql/migrations.js';
import { openSql } from '../engines/sql/open.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import {
  cancelRun,
  getRun,
  listRuns,
  type RunDetail,
  type RunInfo,
  type RunStatus,
  resumeRun,
} from '../workflow/index.js';
import { textTable } from './text-table.js';

const STATUSES: readonly RunStatus[] = [
  'pending',
  'running',
  'sleeping',
  'waiting',
  'blocked',
  'completed',
  'failed',
  'cancelled',
];

export function parseStatus(v: string): RunStatus {
  if (!(STATUSES as readonly string[]).includes(v)) {
    throw new Error(`--status must be one of ${STATUSES.join(', ')}; got ${JSON.stringify(v)}`);
  }
  return v as RunStatus;
}

/** Run `fn` on the configured database; a database without the workflow tables lists nothing. */
export async function withRuns<T>(
  database: Config['database'],
  fn: (sql: SqlClient) => Promise<T>,
): Promise<T> {
  const sql = await openSql(database, { max: 2 });
  try {
    return await fn(sql);
  } finally {
    await sql.close();
  }
}

export async function hasWorkflowTables(sql: SqlClient): Promise<boolean> {
  return (await appliedMigrations(sql)).some((m) => m.module === 'workflow');
}

function time(d: Date | null): string {
  return d ? d.toISOString() : '-';
}

function cut(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}

export function formatRuns(runs: RunInfo[]): string {
  if (runs.length === 0) return 'no workflow runs';
  return textTable([
    [
      'id',
      'workflow',
      'version',
      'status',
      'queue',
      'claims',
      'created',
      'updated',
      'reason / error',
    ],
    ...runs.map((r) => [
      r.id,
      r.name,
      r.version,
      r.status,
      r.queue,
      String(r.claims),
      time(r.createdAt),
      time(r.updatedAt),
      cut(r.statusReason ?? r.error?.message ?? '', 80),
    ]),
  ]);
}

export function formatRun(run: RunDetail): string {
  const head = [
    `run       ${run.id}`,
    `workflow  ${run.name} version ${run.version}`,
    `status    ${run.status}${run.statusReason ? ` (${run.statusReason})` : ''}`,
    `queue     ${run.queue}${run.parentId ? `, child of ${run.parentId}` : ''}`,
    `created   ${time(run.createdAt)}  started ${time(run.startedAt)}  finished ${time(run.finishedAt)}`,
    ...(run.deadlineAt ? [`deadline  ${time(run.deadlineAt)}`] : []),
    ...(run.wakeAt && !['completed', 'failed', 'cancelled'].includes(run.status)
      ? [`wakes at  ${time(run.wakeAt)}`]
      : []),
    `input     ${cut(JSON.stringify(run.input) ?? '-', 200)}`,
    ...(run.status === 'completed'
      ? [`output    ${cut(JSON.stringify(run.output) ?? '-', 200)}`]
      : []),
    ...(run.error
      ? [
          `error     ${run.error.name}${run.error.code ? ` [${run.error.code}]` : ''}: ${run.error.message}`,
        ]
      : []),
  ];
  if (run.steps.length === 0) return [...head, '', 'no steps recorded'].join('\n');
  const steps = textTable([
    ['#', 'step', 'kind', 'status', 'attempts', 'started', 'ms', 'result / error'],
    ...run.steps.map((s) => [
      String(s.seq),
      s.name,
      s.kind,
      s.status,
      String(s.attempts),
      time(s.startedAt),
      s.durationMs === null ? '-' : String(s.durationMs),
      cut(s.error ? `${s.error.name}: ${s.error.message}` : (JSON.stringify(s.result) ?? '-'), 60),
    ]),
  ]);
  return [...head, '', steps].join('\n');
}

export async function listCommand(
  sql: SqlClient,
  opts: { status?: RunStatus; name?: string; queue?: string; limit: number; json?: boolean },
): Promise<string> {
  const runs = (await hasWorkflowTables(sql))
    ? await listRuns(sql, {
        limit: opts.limit,
        ...(opts.status ? { status: opts.status } : {}),
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.queue ? { queue: opts.queue } : {}),
      })
    : [];
  return opts.json ? JSON.stringify(runs, null, 2) : formatRuns(runs);
}

export async function showCommand(sql: SqlClient, id: string, json: boolean): Promise<string> {
  const run = await getRun(sql, id);
  return json ? JSON.stringify(run, null, 2) : formatRun(run);
}

export async function cancelCommand(sql: SqlClient, id: string): Promise<string> {
  const ids = await cancelRun(sql, id, new Date(systemClock.now()));
  return ids.length === 0
    ? `run ${id} had already ended; nothing cancelled`
    : `cancelled ${ids.join(', ')}`;
}

export async function resumeCommand(sql: SqlClient, id: string): Promise<string> {
  const ok = await resumeRun(sql, id, new Date(systemClock.now()));
  return ok
    ? `run ${id} is pending again: a worker that registers its workflow resumes it from its last recorded step`
    : `run ${id} is not failed, cancelled or blocked; nothing to resume`;
}
