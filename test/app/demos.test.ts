import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../src/testing/index.js';
import { type Client, startClient } from './support.js';

type Result = {
  ok: boolean;
  summary: string;
  figures: { label: string; value: number | string }[];
  steps: string[];
};
const figure = (r: Result, label: string) => r.figures.find((f) => f.label === label)?.value;

describe('demonstrations and redelivery (embedded defaults)', () => {
  let c: Client;
  let viewer: string;
  beforeAll(async () => {
    c = await startClient();
    viewer = await c.key('viewer', 'dashboard');
  });
  afterAll(async () => {
    await c?.close();
  });

  const run = async (id: string) => {
    const r = await c.call('POST', `/api/demos/${id}`, { key: viewer });
    expect(r.status, r.text).toBe(200);
    return r.body as Result;
  };

  it('lists one demonstration per pattern family, and refuses to run one without the right key', async () => {
    const list = (await c.call('GET', '/api/demos')).body as { demos: { id: string }[] };
    expect(list.demos.map((d) => d.id).sort()).toEqual([
      'cache-stampede',
      'multi-master-partition',
      'projection-rebuild',
      'purchase-saga',
      'quorum-node-down',
      'relay-restart',
      'sharding-move-under-writes',
      'valet-revoke',
    ]);
    expect((await c.call('POST', '/api/demos/cache-stampede')).status).toBe(401);
    const student = await c.key('student', 's-1');
    expect((await c.call('POST', '/api/demos/cache-stampede', { key: student })).status).toBe(403);
    const unknown = await c.call('POST', '/api/demos/nope', { key: viewer });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('DEMO_NOT_FOUND');
  });

  it('cache stampede: 1,000 concurrent misses of one key load it once', async () => {
    const r = await run('cache-stampede');
    expect(r.ok, r.summary).toBe(true);
    expect(figure(r, 'loader calls')).toBe(1);
    expect(figure(r, 'reads answered')).toBe(1000);
  });

  it('projection rebuild: no read fails while the ratings are rebuilt, and the counts hold', async () => {
    const r = await run('projection-rebuild');
    expect(r.ok, r.summary).toBe(true);
    expect(figure(r, 'failed reads')).toBe(0);
    expect(figure(r, 'reviews after')).toBe(figure(r, 'reviews before'));
    expect(Number(figure(r, 'events replayed'))).toBeGreaterThanOrEqual(200);
  });

  it('relay restart: messages written while the relay is stopped are applied once after it restarts', async () => {
    const r = await run('relay-restart');
    expect(r.ok, r.summary).toBe(true);
    expect(figure(r, 'waiting in outbox while stopped')).toBe(50);
    expect(figure(r, 'applied while stopped')).toBe(0);
    expect(figure(r, 'lost')).toBe(0);
    expect(figure(r, 'applied twice')).toBe(0);
    expect(figure(r, 'redeliveries dropped by the inbox')).toBe(1);
    // The relay runs again: an enrollment after the demonstration is delivered.
    const panel = (await c.call('GET', '/api/panels')).body as {
      panels: { id: string; stats: { label: string; value: unknown }[] }[];
    };
    const relay = panel.panels
      .find((p) => p.id === 'enrollment')!
      .stats.find((s) => s.label === 'relay');
    expect(relay?.value).toBe('running');
  });

  it('valet key revoked mid-download: the next range and the URL are refused with 403', async () => {
    const r = await run('valet-revoke');
    expect(r.ok, r.summary).toBe(true);
    expect(figure(r, 'next range after revocation')).toBe(403);
    expect(figure(r, 'same URL later')).toBe(403);
    expect(Number(figure(r, 'bytes received in all'))).toBeLessThan(2 * 1024 * 1024);
  });

  it('redelivers a delivered message by id; the consumers apply nothing twice', async () => {
    const course = await c.course('Ada Park');
    const student = await c.key('student', 'redeliver-1');
    const enrolled = await c.call('POST', '/api/enrollment/enrollments', {
      key: student,
      body: { course: course.id },
    });
    expect(enrolled.status, enrolled.text).toBe(202);
    const { eventId } = enrolled.body as { eventId: string };
    const admin = await c.key('admin', 'ops');
    const handled = async () =>
      (
        (await c.call('GET', `/api/enrollment/flows/${eventId}`, { key: admin })).body as {
          steps: { id: string; handledBy: string[] }[];
        }
      ).steps.find((s) => s.id === eventId)?.handledBy ?? [];
    await eventually(
      async () => ((await handled()).length === 3 ? true : undefined),
      'the three services to handle the enrollment',
    );
    const emails = async () =>
      (
        await c.platform.sql.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM app_enrollment_emails WHERE student = $1',
          ['redeliver-1'],
        )
      ).rows[0]!.n;
    const stats = async () =>
      (
        await c.platform.sql.query<{ n: number }>(
          'SELECT enrollments AS n FROM app_course_enrollments WHERE course = $1',
          [course.id],
        )
      ).rows[0]!.n;
    expect(await emails()).toBe(1);
    expect(await stats()).toBe(1);
    // Viewers may not redeliver: it is an operator's action.
    expect(
      (await c.call('POST', `/api/enrollment/messages/${eventId}/redeliver`, { key: viewer }))
        .status,
    ).toBe(403);
    const again = await c.call('POST', `/api/enrollment/messages/${eventId}/redeliver`, {
      key: admin,
    });
    expect(again.status, again.text).toBe(200);
    expect(again.body).toMatchObject({ id: eventId, from: 'recently-delivered' });
    expect((again.body as { groups: string[] }).groups.sort()).toEqual([
      'email',
      'instructor-stats',
      'recommendations',
    ]);
    // The same message a second time changed nothing: one email, one enrollment counted.
    expect(await emails()).toBe(1);
    expect(await stats()).toBe(1);
    const missing = await c.call('POST', '/api/enrollment/messages/nope/redeliver', { key: admin });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('MESSAGE_NOT_FOUND');
  });

  it('keeps the history of every panel for the charts', async () => {
    const h = (await c.call('GET', '/api/history')).body as {
      samples: { t: number; values: Record<string, Record<string, number>> }[];
    };
    expect(h.samples.length).toBeGreaterThan(0);
    const last = h.samples.at(-1)!;
    expect(Object.keys(last.values)).toEqual(
      expect.arrayContaining(['catalog', 'cache', 'reviews', 'enrollment', 'media']),
    );
    expect(typeof last.values.cache!['hit ratio']).toBe('number');
  });

  it('serves every doc page as Markdown and source files under src/ only', async () => {
    const pages = ((await c.call('GET', '/api/docs/pages')).body as { pages: string[] }).pages;
    expect(pages).toContain('docs/architecture.md');
    expect(pages).toContain('docs/decisions/dashboard-front-end.md');
    expect((await c.call('GET', '/api/docs?page=docs/tour.md')).status).toBe(200);
    expect((await c.call('GET', '/api/docs?page=package.json')).status).toBe(404);
    const src = await c.call('GET', '/api/source?path=src/cache/cache.ts');
    expect(src.status).toBe(200);
    expect(src.text).toContain('export class Cache');
    for (const bad of ['src/../package.json', 'package.json', 'test/app/demos.test.ts', 'src/x.js'])
      expect((await c.call('GET', `/api/source?path=${encodeURIComponent(bad)}`)).status).toBe(400);
    expect((await c.call('GET', '/api/source?path=src/nope.ts')).status).toBe(404);
  });
});
