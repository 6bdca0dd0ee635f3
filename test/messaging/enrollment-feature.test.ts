import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { enrollmentFeature } from '../../src/app/features/enrollment.js';
import { installErrorHandler } from '../../src/app/http-errors.js';
import { systemClock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/core/config.js';
import { Lifecycle } from '../../src/core/lifecycle.js';
import { createRegistry } from '../../src/core/metrics.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import { eventually } from '../../src/testing/index.js';
import { capturingLogger } from './log-capture.js';

it('enrollment platform feature: one request fans out to three services, traced and shown on the panel', async () => {
  const sql = await PgliteSqlClient.open({});
  const lifecycle = new Lifecycle();
  const http = Fastify();
  const { logger, warnings } = capturingLogger();
  installErrorHandler(http);
  try {
    await migrate(sql, enrollmentFeature.migrations ?? []);
    const handle = await enrollmentFeature.start({
      config: loadConfig({}),
      sql,
      logger,
      registry: createRegistry(),
      clock: systemClock,
      lifecycle,
      http,
      services: new Map(),
    });
    const res = await http.inject({
      method: 'POST',
      url: '/api/enrollment/enrollments',
      payload: { student: 'ada', course: 'db-101' },
    });
    expect(res.statusCode).toBe(202);
    const { correlationId } = res.json() as { correlationId: string };
    let steps: { type: string; depth: number; handledBy: string[] }[] = [];
    await eventually(async () => {
      const r = await http.inject({ method: 'GET', url: `/api/enrollment/flows/${correlationId}` });
      steps = r.statusCode === 200 ? (r.json() as { steps: typeof steps }).steps : [];
      return steps.length === 4 && steps[0]!.handledBy.length === 3;
    }, 'the flow of four events');
    // Every handler succeeded on its first delivery: a failed one logs a warning and retries.
    expect(warnings()).toEqual([]);
    expect(steps[0]).toMatchObject({ type: 'enrollment.requested', depth: 0 });
    expect(steps[0]!.handledBy).toEqual(['email', 'instructor-stats', 'recommendations']);
    expect(
      steps
        .slice(1)
        .map((s) => s.type)
        .sort(),
    ).toEqual(['email.sent', 'instructor.stats.updated', 'recommendations.updated']);
    const bad = await http.inject({
      method: 'POST',
      url: '/api/enrollment/enrollments',
      payload: {},
    });
    expect(bad.statusCode).toBe(400);
    const panel = await handle.panel!();
    expect(panel.title).toContain('memory');
    expect(panel.table!.rows).toHaveLength(4);
    const stat = (label: string) => panel.stats.find((x) => x.label === label)?.value;
    expect(Number(stat('published by relay'))).toBeGreaterThanOrEqual(4);
    expect(Number(stat('relay rate'))).toBeGreaterThan(0);
    expect((await handle.health!())[0]!.ok).toBe(true);
    const dlq = await http.inject({ method: 'GET', url: '/api/enrollment/dlq' });
    expect(dlq.json()).toEqual({ deadLetters: [] });
  } finally {
    await lifecycle.close();
    await http.close();
    await sql.close();
  }
});
