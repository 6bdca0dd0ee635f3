import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Panel } from '../../src/app/feature.js';
import type { Platform } from '../../src/app/platform.js';
import { type Client, startClient } from './support.js';

/** The reference platform with every feature on the embedded defaults, driven over HTTP. */
describe('reference platform features (embedded defaults)', () => {
  let platform: Platform;
  let client: Client;
  let admin: string;
  beforeAll(async () => {
    client = await startClient();
    platform = client.platform;
    admin = await client.key('admin', 'root');
  });
  afterAll(async () => client?.close());

  const get = (path: string, init?: RequestInit) => fetch(`${platform.url}${path}`, init);
  const send = (method: string, path: string, body: unknown, key = admin) =>
    get(path, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const panel = async (id: string): Promise<Panel> => {
    const { panels } = (await (await get('/api/panels')).json()) as { panels: Panel[] };
    const p = panels.find((x) => x.id === id);
    if (!p) throw new Error(`no panel ${id} in ${panels.map((x) => x.id).join(', ')}`);
    return p;
  };
  /** A request whose path is sent byte for byte (fetch would normalise `%2e%2e`). */
  const rawStatus = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: platform.port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject).end();
    });
  const stat = (p: Panel, label: string) => p.stats.find((s) => s.label === label)?.value;

  it('lists every module and shows a panel for each', async () => {
    const api = (await (await get('/api')).json()) as { modules: { name: string }[] };
    expect(api.modules.map((m) => m.name)).toEqual([
      'catalog',
      'cache',
      'reviews',
      'sharding',
      'enrollment',
      'media',
      'workflows',
      'purchases',
      'payouts',
      'quorum',
      'regions',
      'replication',
    ]);
    const { panels } = (await (await get('/api/panels')).json()) as { panels: Panel[] };
    expect(panels.map((p) => p.id)).toEqual([
      'catalog',
      'cache',
      'reviews',
      'sharding',
      'enrollment',
      'media',
      'workflows',
      'purchases',
      'payouts',
      'quorum',
      'multi-master',
      'replication',
    ]);
    for (const p of panels) expect(stat(p, 'error')).toBeUndefined();
    // No CDP_REPLICA_URLS on the embedded defaults: the replication panel says so.
    expect(stat(panels.find((p) => p.id === 'replication')!, 'replicas')).toBe('none');
    const health = (await (await get('/health')).json()) as {
      engines: { role: string; ok: boolean }[];
    };
    expect(health.engines.map((e) => e.role)).toEqual([
      'sql',
      'shard s1',
      'shard s2',
      'broker',
      'blob storage',
    ]);
    expect(health.engines.every((e) => e.ok)).toBe(true);
    // In-memory data means nothing written under the working directory.
    expect(existsSync('memory:')).toBe(false);
  });

  it('reads course details through cache-aside and never serves a course older than its update', async () => {
    const created = (await (
      await send('POST', '/api/catalog/courses', {
        title: 'Caching',
        topic: 'performance',
        instructor: 'C. A.',
        priceCents: 100,
      })
    ).json()) as { id: string };
    const before = (await (await get('/api/cache/stats')).json()) as {
      hits: number;
      loads: number;
    };
    for (let i = 0; i < 5; i++) {
      const c = (await (await get(`/api/catalog/courses/${created.id}`)).json()) as {
        version: number;
      };
      expect(c.version).toBe(1);
    }
    const mid = (await (await get('/api/cache/stats')).json()) as { hits: number; loads: number };
    expect(mid.loads - before.loads).toBe(1);
    expect(mid.hits - before.hits).toBe(4);

    for (let v = 2; v <= 4; v++) {
      await send('PATCH', `/api/catalog/courses/${created.id}`, { priceCents: v * 100 });
      const c = (await (await get(`/api/catalog/courses/${created.id}`)).json()) as {
        version: number;
        priceCents: number;
      };
      expect(c).toMatchObject({ version: v, priceCents: v * 100 });
    }
    const p = await panel('cache');
    expect(Number(stat(p, 'hit ratio'))).toBeGreaterThan(0);
    expect((await get('/api/catalog/courses/01890000-0000-7000-8000-000000000000')).status).toBe(
      404,
    );
  });

  it('writes reviews through commands and reads ratings from the read model at a consistency token', async () => {
    const { id: course } = await client.course('Ada Park', { topic: 'databases' });
    let position = 0;
    const keys = new Map<string, string>();
    for (const [student, rating] of [
      ['ada', 5],
      ['lin', 4],
      ['sam', 3],
    ] as const) {
      const key = await client.key('student', student);
      keys.set(student, key);
      expect((await send('POST', '/api/enrollment/enrollments', { course }, key)).status).toBe(202);
      const res = await send('POST', `/api/reviews/courses/${course}/reviews`, { rating }, key);
      expect(res.status).toBe(201);
      position = ((await res.json()) as { position: number }).position;
    }
    const rating = (await (
      await get(`/api/reviews/courses/${course}/rating?after=${position}`)
    ).json()) as { reviewCount: number; averageRating: number };
    expect(rating).toMatchObject({ reviewCount: 3, averageRating: 4 });

    const revised = await send(
      'PUT',
      `/api/reviews/courses/${course}/reviews/sam`,
      { rating: 1 },
      keys.get('sam'),
    );
    expect(revised.status).toBe(200);
    const after = ((await revised.json()) as { position: number }).position;
    const top = (await (
      await get(`/api/reviews/topics/databases/top?after=${after}&limit=100`)
    ).json()) as { courses: { courseId: string; averageRating: number }[] };
    const mine = top.courses.find((c) => c.courseId === course);
    expect(mine?.averageRating).toBeCloseTo(10 / 3, 2);

    // A second review by the same student is refused by the decider; a malformed one by zod.
    const dup = await send(
      'POST',
      `/api/reviews/courses/${course}/reviews`,
      { rating: 2 },
      keys.get('ada'),
    );
    expect(dup.status).toBe(409);
    const bad = await send(
      'POST',
      `/api/reviews/courses/${course}/reviews`,
      { rating: 9 },
      keys.get('lin'),
    );
    expect(bad.status).toBe(400);
    const still = (await (
      await get(`/api/reviews/courses/${course}/rating?after=${after}`)
    ).json()) as { reviewCount: number };
    expect(still.reviewCount).toBe(3);
  });

  it('keeps a student wallet whose balance is the sum of its events, with its history', async () => {
    const student = `stu-${Date.now()}`;
    const key = await client.key('student', student);
    const cheap = await client.course('Ada Park', { priceCents: 1200 });
    const dear = await client.course('Ada Park', { priceCents: 99_999 });
    expect(
      (await send('POST', `/api/reviews/wallets/${student}/top-ups`, { amountCents: 5000 }, key))
        .status,
    ).toBe(201);
    const paid = await send(
      'POST',
      `/api/reviews/wallets/${student}/purchases`,
      { courseId: cheap.id },
      key,
    );
    expect(paid.status).toBe(201);
    expect(((await paid.json()) as { balanceCents: number }).balanceCents).toBe(3800);
    const broke = await send(
      'POST',
      `/api/reviews/wallets/${student}/purchases`,
      { courseId: dear.id },
      key,
    );
    expect(broke.status).toBe(409);
    const wallet = (await (
      await get(`/api/reviews/wallets/${student}`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as {
      balanceCents: number;
      history: { type: string }[];
      spend: unknown;
    };
    expect(wallet.balanceCents).toBe(3800);
    expect(wallet.history.map((h) => h.type)).toHaveLength(2);
    const p = await panel('reviews');
    expect(Number(stat(p, 'last position'))).toBeGreaterThan(0);
  });

  it('serves the dashboard through the static hosting module: ETags, 304, no writes, no escapes', async () => {
    const first = await get('/dashboard/favicon.svg');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/svg/);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[0-9a-f]+"$/);
    const again = await get('/dashboard/favicon.svg', { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    expect((await get('/dashboard/favicon.svg', { method: 'POST', body: 'x' })).status).toBe(405);
    expect(await rawStatus('/dashboard/%2e%2e/package.json')).toBe(400);
    expect(await rawStatus('/dashboard/..%2f..%2fpackage.json')).toBe(400);
    expect(await rawStatus('/dashboard/.env')).toBe(400);
    const ranged = await get('/dashboard/favicon.svg', { headers: { range: 'bytes=0-9' } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(10);
  });
});
