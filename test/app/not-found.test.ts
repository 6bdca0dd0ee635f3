import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, codeOf, startClient } from './support.js';

interface NotFound {
  error: { code: string; message: string; nearest?: { url: string; methods: string[] }[] };
}

/** Issue 19, point 1: a 404 for an unknown path names the routes nearest to it. */
describe('unknown paths', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient();
  });
  afterAll(async () => c?.close());

  const nearest = async (method: string, path: string) => {
    const r = await c.call(method, path);
    expect(r.status).toBe(404);
    expect(codeOf(r)).toBe('NOT_FOUND');
    return (r.body as NotFound).error;
  };

  it('names the nearest routes, a typo first, in the message and as data', async () => {
    const course = await nearest('GET', '/api/catalog/course');
    expect(course.nearest?.[0]).toEqual({ url: '/api/catalog/courses', methods: ['GET', 'POST'] });
    expect(course.message).toContain('GET, POST /api/catalog/courses');
    expect(course.message).toContain('/api/openapi.json');
    expect(course.message).not.toContain('see GET /api;');

    const wallet = await nearest('GET', '/api/revews/wallets/demo-student-1');
    expect(wallet.nearest?.[0]?.url).toBe('/api/reviews/wallets/:studentId');

    const upload = await nearest('POST', '/api/media/upload');
    expect(upload.nearest?.[0]).toEqual({ url: '/api/media/uploads', methods: ['POST'] });

    const flows = await nearest('GET', '/api/enrollment/flow/abc');
    expect(flows.nearest?.[0]?.url).toBe('/api/enrollment/flows/:id');
  });

  it("suggests routes a person can call, never the reference page's own files", async () => {
    const r = await nearest('GET', '/api/docs/reference/static/nothing/here');
    expect(r.nearest?.length).toBeGreaterThan(0);
    for (const s of r.nearest ?? []) expect(s.url).not.toContain('/static');
    const root = await nearest('GET', '/nothing');
    expect(root.nearest?.length).toBe(3);
  });
});
