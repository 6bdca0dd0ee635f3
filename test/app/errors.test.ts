import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, codeOf, startClient } from './support.js';

const SQL_TEXT = /\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b/;
const STACK = /\n\s+at .+:\d+:\d+/;

/** Errors (issue 18, point 9): bad text is a 400, refusals have their own codes, nothing leaks. */
describe('platform errors', () => {
  let c: Client;
  let admin: string;
  let course: { id: string };
  beforeAll(async () => {
    c = await startClient();
    admin = await c.key('admin', 'root');
    course = await c.course('Ada Park');
  });
  afterAll(async () => c?.close());

  it('answers a NUL byte in any string field with a 400 naming the field, never a 500', async () => {
    const nul = 'a\u0000b';
    const cases: [string, string, unknown][] = [
      ['POST', '/api/catalog/courses', { title: nul, topic: 't', instructor: 'i', priceCents: 1 }],
      ['POST', '/api/catalog/courses', { title: 't', topic: nul, instructor: 'i', priceCents: 1 }],
      ['PATCH', `/api/catalog/courses/${course.id}`, { description: nul }],
      ['POST', '/api/enrollment/enrollments', { course: nul }],
      ['POST', '/api/auth/keys', { role: 'student', subject: nul }],
      ['POST', '/api/media/uploads', { courseId: nul, contentType: 'video/mp4' }],
      ['GET', `/api/reviews/courses/${encodeURIComponent(nul)}/rating`, undefined],
      ['GET', `/api/catalog/courses?topic=${encodeURIComponent(nul)}`, undefined],
      ['GET', `/api/reviews/wallets/${encodeURIComponent(nul)}`, undefined],
    ];
    for (const [method, path, body] of cases) {
      const r = await c.call(method, path, { key: admin, body });
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect((r.body as { error: { message: string } }).error.message).toMatch(/NUL/);
      expect(r.text).not.toMatch(SQL_TEXT);
    }
  });

  it('refuses invalid UTF-8, CR/LF in one-line fields and 1 MB strings with a 4xx and a clear message', async () => {
    const invalid = Buffer.concat([
      Buffer.from('{"title":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","topic":"t","instructor":"i","priceCents":1}'),
    ]);
    const bad = await c.call('POST', '/api/catalog/courses', { key: admin, raw: invalid });
    expect(bad.status).toBe(400);
    expect((bad.body as { error: { message: string } }).error.message).toMatch(/UTF-8/);
    const crlf = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body: { title: 'a\r\nb', topic: 't', instructor: 'i', priceCents: 1 },
    });
    expect(crlf.status).toBe(400);
    const huge = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body: { title: 'x'.repeat(1 << 20), topic: 't', instructor: 'i', priceCents: 1 },
    });
    expect([400, 413]).toContain(huge.status);
    const big = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body: { title: 'x'.repeat(500_000), topic: 't', instructor: 'i', priceCents: 1 },
    });
    expect(big.status).toBe(400);
  });

  it('answers a wrong method on a known path with 405 and Allow', async () => {
    const r = await c.call('DELETE', '/api/catalog/courses');
    expect(r.status).toBe(405);
    expect(codeOf(r)).toBe('METHOD_NOT_ALLOWED');
    expect(r.headers.get('allow')).toMatch(/GET.*POST|POST.*GET/);
    const one = await c.call('PUT', `/api/catalog/courses/${course.id}`, { body: {} });
    expect(one.status).toBe(405);
    expect(one.headers.get('allow')).toContain('PATCH');
    expect((await c.call('GET', '/api/no-such-thing')).status).toBe(404);
  });

  it('answers a replay of an unknown dead letter with 404', async () => {
    const r = await c.call('POST', '/api/enrollment/dlq/no-such-letter/replay', { key: admin });
    expect(r.status).toBe(404);
    expect(codeOf(r)).toBe('DEAD_LETTER_NOT_FOUND');
  });

  it('answers the revocation of an unknown valet key with 404 and writes no audit row', async () => {
    const count = async () =>
      (
        await c.platform.sql.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM storage_audit WHERE event = 'revoke'",
        )
      ).rows[0]!.n;
    const before = await count();
    const r = await c.call('POST', `/api/media/keys/cdpv_${'0'.repeat(30)}/revoke`, { key: admin });
    expect(r.status).toBe(404);
    expect(codeOf(r)).toBe('KEY_NOT_FOUND');
    expect(await count()).toBe(before);
  });

  it('never answers any route with SQL text, a stack trace or a 500, whatever the strings', async () => {
    const bad = [
      'a\u0000b',
      'line\r\nbreak',
      'x'.repeat(20_000),
      '__proto__',
      'constructor',
      'toString',
      "'; DROP TABLE courses; --",
      '\ud800',
      '%',
      '',
    ];
    const fields = [
      'title',
      'topic',
      'instructor',
      'description',
      'priceCents',
      'course',
      'courseId',
      'rating',
      'amountCents',
      'contentType',
      'maxBytes',
      'role',
      'subject',
    ];
    // A lone surrogate has no UTF-8 form: in a URL it goes as the bytes of its CESU form.
    const enc = (v: string) => {
      try {
        return encodeURIComponent(v);
      } catch {
        return '%ED%A0%80';
      }
    };
    const routes = c.platform.routes.filter((r) => r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(20);
    let calls = 0;
    for (const route of routes) {
      if (route.url === '/api/stream' || route.url.startsWith('/dashboard')) continue;
      for (const value of bad) {
        const path = route.url
          .split('/')
          .map((s) => (s.startsWith(':') ? enc(value) || 'x' : s))
          .join('/');
        const q = enc(value);
        const withQuery = `${path}?key=${q}&topic=${q}&after=${q}&page=${q}`;
        const bodies: unknown[] =
          route.method === 'GET' || route.method === 'DELETE'
            ? [undefined]
            : [
                Object.fromEntries(fields.map((f) => [f, value])),
                ...fields.map((f) => ({ [f]: value })),
              ];
        for (const body of bodies) {
          for (const key of [undefined, admin]) {
            const r = await c.call(route.method, withQuery, { key, body });
            calls++;
            const where = `${route.method} ${route.url} ${JSON.stringify(value).slice(0, 20)}`;
            expect({ where, status: r.status < 500 }).toEqual({ where, status: true });
            expect({ where, sql: SQL_TEXT.test(r.text) }).toEqual({ where, sql: false });
            expect({ where, stack: STACK.test(r.text) }).toEqual({ where, stack: false });
          }
        }
      }
    }
    expect(calls).toBeGreaterThan(500);
  }, 120_000);
});
