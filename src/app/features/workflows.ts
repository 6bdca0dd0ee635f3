import { listRuns, WorkflowEngine, workflowMigrations } from '../../workflow/index.js';
import type { PlatformFeature } from '../feature.js';

/**
 * The platform's durable workflow engine: a worker on the platform's database, offered to later
 * features as the `workflows` service (they register their workflows on it), with a dashboard
 * panel of runs by status and the latest runs.
 */
export const workflowsFeature: PlatformFeature = {
  name: 'workflows',
  description: 'durable workflow engine (runs, steps, timers, signals) on the platform database',
  docs: ['docs/patterns/orchestration.md'],
  migrations: workflowMigrations,
  async start({ sql, clock, logger, registry, lifecycle }) {
    const engine = await WorkflowEngine.open({
      sql,
      clock,
      logger,
      metrics: registry,
      migrate: false,
    });
    lifecycle.use('workflow engine', engine);
    return {
      service: engine,
      panel: async () => {
        const { rows } = await sql.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int AS n FROM cdp_workflow_runs GROUP BY status',
        );
        const count = (s: string) => rows.find((r) => r.status === s)?.n ?? 0;
        const latest = await listRuns(sql, { limit: 10 });
        return {
          id: 'workflows',
          title: 'Durable workflows',
          stats: [
            'running',
            'sleeping',
            'waiting',
            'pending',
            'blocked',
            'completed',
            'failed',
          ].map((s) => ({ label: s, value: count(s) })),
          table: {
            columns: ['run', 'workflow', 'status', 'claims', 'updated'],
            rows: latest.map((r) => [
              r.id,
              `${r.name}@${r.version}`,
              r.status,
              r.claims,
              r.updatedAt.toISOString(),
            ]),
          },
          docs: 'docs/patterns/orchestration.md',
        };
      },
    };
  },
};
