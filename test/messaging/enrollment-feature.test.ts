import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { ApiKeys, authMigrations } from '../../src/app/auth.js';
import { type CatalogService, catalogFeature } from '../../src/app/features/catalog.js';
import { enrollmentFeature } from '../../src/app/features/enrollment.js';
import { shardingFeature } from '../../src/app/features/sharding.js';
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
    // Enrollment acts for the caller's API key, on a course of the catalog.
    await migrate(sql, [
      ...authMigrations,
      ...(catalogFeature.migrations ?? []),
      ...(shardingFeature.migrations ?? []),
      ...(enrollmentFeature.migrations ?? []),
    ]);
    const auth = new ApiKeys(sql, systemClock);
    const services = new Map<string, unknown>();
    const ctx = {
      config: loadConfig({ CDP_DATA_DIR: 'memory://' }),
      sql,
      logger,
      registry: createRegistry(),
      clock: systemClock,
      lifecycle,
      http,
      services,
      auth,
    };
    const catalog = (await catalogFeature.start(ctx)).service as CatalogService;
    services.set('catalog', catalog);
    services.set('sharding', (await shardingFeature.start(ctx)).service);
    const handle = await enrollmentFeature.start(ctx);
    const student = await auth.issue({ role: 'student', subject: 'ada' });
    const headers = { authorization: `Bearer ${student.token}` };
    const course = (await catalog.list({ limit: 1 }))[0]!.id;
    const res = await http.inject({
      method: 'POST',
      url: '/api/enrollment/enrollments',
      headers,
      payload: { course },
    });
    expect(res.statusCode).toBe(202);
    const { correlationId } = res.json() as { correlationId: string };
    const admin = {
      authorization: `Bearer ${(await auth.issue({ role: 'admin', subject: 'root' })).token}`,
    };
    let steps: { type: string; depth: number; handledBy: string[] }[] = [];
    await eventually(async () => {
      const r = await http.inject({
        method: 'GET',
        url: `/api/enrollment/flows/${correlationId}`,
        headers: admin,
      });
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
      headers,
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
    const dlq = await http.inject({ method: 'GET', url: '/api/enrollment/dlq', headers: admin });
    expect(dlq.json()).toEqual({ deadLetters: [] });
  } finally {
    await lifecycle.close();
    await http.close();
    await sql.close();
  }
});
