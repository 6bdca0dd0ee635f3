import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Panel } from '../../src/app/feature.js';
import { createRegistry } from '../../src/core/metrics.js';
import { type Client, startClient } from './support.js';

/** Diagnostics that do not mislead (issue 18, point 12). */
describe('platform diagnostics', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient();
  });
  afterAll(async () => c?.close());

  const panel = async (id: string): Promise<Panel> => {
    const { panels } = (await c.call('GET', '/api/panels')).body as { panels: Panel[] };
    return panels.find((p) => p.id === id)!;
  };
  const auditRows = async () => {
    // Flushes the audit queue, then counts every row.
    const { valet } = c.platform.services.get('media') as {
      valet: { auditFor(id: string): Promise<unknown[]> };
    };
    await valet.auditFor('none');
    const { rows } = await c.platform.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM storage_audit',
    );
    return rows[0]!.n;
  };

  it('checks health without an AccessDenied refusal or an audit row', async () => {
    const before = await auditRows();
    for (let i = 0; i < 3; i++) expect((await c.call('GET', '/health')).status).toBe(200);
    expect(await auditRows()).toBe(before);
    const media = await panel('media');
    expect(JSON.stringify(media.table?.rows ?? [])).not.toContain('AccessDenied');
  });

  it('counts only accepted bodies as bytes through the app', async () => {
    const through = async () =>
      Number(
        (await panel('media')).stats.find((s) => s.label.startsWith('bytes through the app'))
          ?.value,
      );
    const before = await through();
    const junk = { courseId: 'x'.repeat(5000), contentType: 'video/mp4' };
    expect((await c.call('POST', '/api/media/uploads', { body: junk })).status).toBe(401);
    const admin = await c.key('admin', 'root');
    expect((await c.call('POST', '/api/media/uploads', { key: admin, body: junk })).status).toBe(
      400,
    );
    expect(await through()).toBe(before);
  });

  it('names metrics without repeating a word', async () => {
    await c.call('GET', '/health');
    const names = (await c.platform.registry.getMetricsAsJSON()).map((m) => m.name);
    const fresh = (await createRegistry({ defaultMetrics: true }).getMetricsAsJSON()).map(
      (m) => m.name,
    );
    expect(names.length).toBeGreaterThan(20);
    for (const name of [...names, ...fresh]) {
      const words = name.split('_');
      expect({ name, repeats: words.length !== new Set(words).size }).toEqual({
        name,
        repeats: false,
      });
    }
    expect(fresh).toContain('cdp_process_cpu_user_seconds_total');
  });
});
