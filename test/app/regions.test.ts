import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../src/testing/index.js';
import { type Client, startClient } from './support.js';

describe('multi-master regions in the platform (embedded defaults)', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient();
  }, 120_000);
  afterAll(() => c?.close());

  it('a wishlist changed in one region reaches the other; views from both regions add up', async () => {
    const course = await c.course('Ada Park');
    const other = await c.course('Ada Park');
    const student = `mm-${Math.random().toString(36).slice(2, 8)}`;
    const key = await c.key('student', student);
    const base = `/api/regions/students/${student}/wishlist`;
    const added = await c.call('POST', `${base}/${course.id}?region=eu`, { key });
    expect(added.status, added.text).toBe(200);
    expect(added.body).toEqual({ student, region: 'eu', courses: [course.id] });
    expect((await c.call('POST', `${base}/${other.id}?region=us`, { key })).status).toBe(200);
    await eventually(async () => {
      const r = await c.call('GET', `${base}?region=us`, { key });
      return ((r.body as { courses: string[] }).courses.length === 2 && r.body) || undefined;
    }, 'both adds in us');
    expect((await c.call('DELETE', `${base}/${course.id}?region=us`, { key })).status).toBe(200);
    await eventually(async () => {
      const r = await c.call('GET', `${base}?region=eu`, { key });
      const courses = (r.body as { courses: string[] }).courses;
      return courses.length === 1 && courses[0] === other.id;
    }, 'the remove in eu');

    const views = `/api/regions/courses/${course.id}/views`;
    for (const region of ['eu', 'us', 'us'])
      expect((await c.call('POST', `${views}?region=${region}`)).status).toBe(200);
    await eventually(async () => {
      const [eu, us] = await Promise.all(
        ['eu', 'us'].map(async (r) => (await c.call('GET', `${views}?region=${r}`)).body),
      );
      return (eu as { views: number }).views === 3 && (us as { views: number }).views === 3;
    }, 'the views to add up in both regions');
  });

  it("refuses another student's wishlist, an unknown course and an unknown region", async () => {
    const course = await c.course('Ada Park');
    const key = await c.key('student', 'mm-alice');
    const mallory = await c.call('POST', `/api/regions/students/mm-bob/wishlist/${course.id}`, {
      key,
    });
    expect(mallory.status).toBe(403);
    const missing = await c.call(
      'POST',
      '/api/regions/students/mm-alice/wishlist/0193a5b2-7c1e-7a3b-9f21-4d5e6f708192',
      { key },
    );
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('COURSE_NOT_FOUND');
    const region = await c.call('GET', '/api/regions/students/mm-alice/wishlist?region=mars', {
      key,
    });
    expect(region.status).toBe(400);
  });

  it('the panel reports conflicts, repairs and sync traffic; the partition demonstration converges', async () => {
    const viewer = await c.key('viewer', 'dashboard');
    const demo = await c.call('POST', '/api/demos/multi-master-partition', { key: viewer });
    expect(demo.status, demo.text).toBe(200);
    const r = demo.body as {
      ok: boolean;
      summary: string;
      figures: { label: string; value: unknown }[];
    };
    expect(r.ok, r.summary).toBe(true);
    const panels = (await c.call('GET', '/api/panels')).body as {
      panels: {
        id: string;
        stats: { label: string; value: unknown; hint?: string }[];
        charts?: unknown[];
      }[];
    };
    const p = panels.panels.find((x) => x.id === 'multi-master')!;
    const stat = (l: string) => p.stats.find((s) => s.label === l)?.value;
    expect(stat('conflicts resolved')).toBeGreaterThan(0);
    expect(stat('anti-entropy repairs')).toBeGreaterThan(0);
    expect(stat('messages lost')).toBeGreaterThan(0);
    expect(p.stats.every((s) => s.hint)).toBe(true);
    expect(p.charts?.length).toBeGreaterThan(0);
  });
});
