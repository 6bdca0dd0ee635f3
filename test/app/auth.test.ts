import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, codeOf, startClient } from './support.js';

/**
 * Who may do what (issue 18, point 11): every mutating or private route refuses a caller
 * with no key (401), with another user's key (403) and with the wrong role (403); the acting
 * student or instructor comes from the key, never from the body.
 */
/** A call: method, path, body, the caller's key. */
type Call = [method: string, path: string, body: unknown, key: string];

/** Every call is refused with 403 FORBIDDEN; a failure names the call. */
async function expectForbidden(c: Client, calls: Call[]): Promise<void> {
  for (const [method, path, body, key] of calls) {
    const r = await c.call(method, path, { body, key });
    expect({ method, path, status: r.status, code: codeOf(r) }).toEqual({
      method,
      path,
      status: 403,
      code: 'FORBIDDEN',
    });
  }
}

describe('platform authentication and ownership', () => {
  let c: Client;
  let admin: string;
  let ada: string; // instructor Ada Park
  let lin: string; // instructor Lin Osei
  let alice: string; // student
  let bob: string; // student
  let viewer: string;
  let adaCourse: string;
  let uploadKeyId: string;
  beforeAll(async () => {
    c = await startClient();
    admin = await c.key('admin', 'root');
    ada = await c.key('instructor', 'Ada Park');
    lin = await c.key('instructor', 'Lin Osei');
    alice = await c.key('student', 'alice');
    bob = await c.key('student', 'bob');
    viewer = await c.key('viewer', 'dashboard');
    adaCourse = (await c.course('Ada Park')).id;
    expect(
      (
        await c.call('POST', '/api/enrollment/enrollments', {
          key: alice,
          body: { course: adaCourse },
        })
      ).status,
    ).toBe(202);
    const up = await c.call('POST', '/api/media/uploads', {
      key: ada,
      body: { courseId: adaCourse, contentType: 'video/mp4', maxBytes: 1000 },
    });
    expect(up.status).toBe(200);
    uploadKeyId = (up.body as { keyId: string }).keyId;
  });
  afterAll(async () => c?.close());

  /** Every mutating or private route, with a body that would be valid for the right caller. */
  const routes = () =>
    [
      [
        'POST',
        '/api/catalog/courses',
        { title: 't', topic: 't', instructor: 'Ada Park', priceCents: 1 },
      ],
      ['PATCH', `/api/catalog/courses/${adaCourse}`, { priceCents: 2 }],
      ['POST', `/api/reviews/courses/${adaCourse}/reviews`, { rating: 4 }],
      ['PUT', `/api/reviews/courses/${adaCourse}/reviews/alice`, { rating: 3 }],
      ['DELETE', `/api/reviews/courses/${adaCourse}/reviews/alice`, undefined],
      ['POST', '/api/reviews/wallets/alice/top-ups', { amountCents: 100 }],
      ['POST', '/api/reviews/wallets/alice/purchases', { courseId: adaCourse }],
      ['GET', '/api/reviews/wallets/alice', undefined],
      ['POST', '/api/enrollment/enrollments', { course: adaCourse }],
      ['GET', '/api/enrollment/dlq', undefined],
      ['POST', '/api/enrollment/dlq/nope/replay', undefined],
      ['GET', '/api/enrollment/flows/nope', undefined],
      ['POST', '/api/media/uploads', { courseId: adaCourse, contentType: 'video/mp4' }],
      [
        'GET',
        `/api/media/play?key=${encodeURIComponent(`courses/${adaCourse}/intro.mp4`)}`,
        undefined,
      ],
      ['POST', `/api/media/keys/${uploadKeyId}/revoke`, undefined],
      ['POST', '/api/auth/keys', { role: 'student', subject: 'carol' }],
      ['POST', '/api/auth/keys/cdpk_000000000000000000000000/revoke', undefined],
      ['GET', '/api/auth/me', undefined],
    ] as const;

  it('refuses every mutating and private route without a key (401, WWW-Authenticate)', async () => {
    for (const [method, path, body] of routes()) {
      const r = await c.call(method, path, { body });
      expect({ method, path, status: r.status, code: codeOf(r) }).toEqual({
        method,
        path,
        status: 401,
        code: 'UNAUTHENTICATED',
      });
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('refuses a malformed, unknown or revoked key (401)', async () => {
    const doomed = await c.key('student', 'dora');
    const keyId = doomed.split('.')[0]!;
    expect((await c.call('POST', `/api/auth/keys/${keyId}/revoke`, { key: admin })).status).toBe(
      200,
    );
    for (const key of ['nonsense', `${keyId}.${'A'.repeat(43)}`, doomed]) {
      const r = await c.call('GET', '/api/auth/me', { key });
      expect(r.status).toBe(401);
    }
    const me = await c.call('GET', '/api/auth/me', { key: alice });
    expect(me.body).toMatchObject({ role: 'student', subject: 'alice' });
  });

  it('refuses the wrong role (403)', async () => {
    const wrong: Call[] = [
      [
        'POST',
        '/api/catalog/courses',
        { title: 't', topic: 't', instructor: 'x', priceCents: 1 },
        alice,
      ],
      ['PATCH', `/api/catalog/courses/${adaCourse}`, { priceCents: 2 }, alice],
      ['POST', `/api/reviews/courses/${adaCourse}/reviews`, { rating: 4 }, ada],
      ['POST', '/api/enrollment/enrollments', { course: adaCourse }, ada],
      ['POST', '/api/media/uploads', { courseId: adaCourse, contentType: 'video/mp4' }, alice],
      ['GET', '/api/enrollment/dlq', undefined, alice],
      ['POST', '/api/enrollment/dlq/nope/replay', undefined, viewer],
      ['POST', '/api/auth/keys', { role: 'admin', subject: 'me' }, ada],
      ['POST', '/api/reviews/wallets/alice/top-ups', { amountCents: 100 }, viewer],
      [
        'POST',
        `/api/catalog/courses`,
        { title: 't', topic: 't', instructor: 'x', priceCents: 1 },
        viewer,
      ],
    ];
    await expectForbidden(c, wrong);
    // The viewer (the dashboard's role) reads private data.
    expect((await c.call('GET', '/api/enrollment/dlq', { key: viewer })).status).toBe(200);
  });

  it("refuses another user's resources (403)", async () => {
    const other: Call[] = [
      ['PATCH', `/api/catalog/courses/${adaCourse}`, { priceCents: 2 }, lin],
      ['POST', '/api/media/uploads', { courseId: adaCourse, contentType: 'video/mp4' }, lin],
      ['PUT', `/api/reviews/courses/${adaCourse}/reviews/alice`, { rating: 3 }, bob],
      ['DELETE', `/api/reviews/courses/${adaCourse}/reviews/alice`, undefined, bob],
      ['POST', '/api/reviews/wallets/alice/top-ups', { amountCents: 100 }, bob],
      ['POST', '/api/reviews/wallets/alice/purchases', { courseId: adaCourse }, bob],
      ['GET', '/api/reviews/wallets/alice', undefined, bob],
      ['POST', `/api/media/keys/${uploadKeyId}/revoke`, undefined, lin],
      ['POST', `/api/auth/keys/${alice.split('.')[0]}/revoke`, undefined, bob],
      // An instructor creates courses under their own name only.
      [
        'POST',
        '/api/catalog/courses',
        { title: 't', topic: 't', instructor: 'Ada Park', priceCents: 1 },
        lin,
      ],
    ];
    await expectForbidden(c, other);
    // A student plays only what they enrolled in.
    const play = `/api/media/play?key=${encodeURIComponent(`courses/${adaCourse}/intro.mp4`)}`;
    const refused = await c.call('GET', play, { key: bob });
    expect(refused.status).toBe(403);
    expect(codeOf(refused)).toBe('NOT_ENROLLED');
    expect((await c.call('GET', play, { key: alice })).status).toBe(200);
    expect((await c.call('GET', play, { key: ada })).status).toBe(200);
    expect((await c.call('GET', play, { key: lin })).status).toBe(403);
  });

  it('takes the acting student and instructor from the key, never from the body', async () => {
    const spoof = await c.call('POST', '/api/enrollment/enrollments', {
      key: bob,
      body: { course: adaCourse, student: 'alice' },
    });
    expect(spoof.status).toBe(400);
    const review = await c.call('POST', `/api/reviews/courses/${adaCourse}/reviews`, {
      key: alice,
      body: { rating: 5, studentId: 'bob' },
    });
    expect(review.status).toBe(400);
    const mine = await c.call('POST', '/api/catalog/courses', {
      key: lin,
      body: { title: 'Mine', topic: 'x', priceCents: 10 },
    });
    expect(mine.status).toBe(201);
    expect(mine.body).toMatchObject({ instructor: 'Lin Osei' });
  });

  it('lets an admin or the issuing key revoke a valet key, and the issuer only', async () => {
    const up = await c.call('POST', '/api/media/uploads', {
      key: ada,
      body: { courseId: adaCourse, contentType: 'video/mp4' },
    });
    const keyId = (up.body as { keyId: string }).keyId;
    expect((await c.call('POST', `/api/media/keys/${keyId}/revoke`, { key: ada })).status).toBe(
      200,
    );
    expect(
      (await c.call('POST', `/api/media/keys/${uploadKeyId}/revoke`, { key: admin })).status,
    ).toBe(200);
  });

  it('stores keys hashed: no column holds the secret', async () => {
    const secret = alice.split('.')[1]!;
    const { rows } = await c.platform.sql.query<Record<string, unknown>>(
      'SELECT * FROM app_api_keys',
    );
    expect(rows.length).toBeGreaterThan(5);
    expect(JSON.stringify(rows)).not.toContain(secret);
  });

  it('creates demo keys (admin, dashboard viewer, instructors, students) at first start and says where they are', async () => {
    const demo = c.platform.demoKeys;
    expect(demo).toBeDefined();
    const file = JSON.parse(await readFile(demo!.file, 'utf8')) as {
      keys: { role: string; subject: string; token: string }[];
    };
    expect(new Set(file.keys.map((k) => k.role))).toEqual(
      new Set(['admin', 'viewer', 'instructor', 'student']),
    );
    const instructor = file.keys.find((k) => k.role === 'instructor')!;
    const me = await c.call('GET', '/api/auth/me', { key: instructor.token });
    expect(me.body).toMatchObject({ role: 'instructor', subject: instructor.subject });
    // The seeded courses belong to the demo instructors.
    const courses = (await c.call('GET', '/api/catalog/courses')).body as {
      courses: { instructor: string }[];
    };
    expect(courses.courses.map((x) => x.instructor)).toContain(instructor.subject);
  });
});
