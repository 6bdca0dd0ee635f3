import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { examples } from '../../src/app/api-docs.js';
import { describeServer } from '../support/servers.js';
import { type Client, codeOf, startClient } from './support.js';

/** A route's path with its parameters filled: a student id, else the given course. */
const fill = (url: string, courseId: string) =>
  url
    .split('/')
    .map((s) => (s === ':studentId' ? 'demo-student-1' : s.startsWith(':') ? courseId : s))
    .join('/');

/** 100 identical course creations at once: one course, 100 identical responses. */
async function hundredAtOnce(c: Client): Promise<void> {
  const admin = await c.key('admin', 'idem-admin');
  const count = async () =>
    (await c.platform.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM courses')).rows[0]!
      .n;
  const before = await count();
  const key = randomUUID();
  const body = { title: 'Once only', topic: 'testing', instructor: 'Ada Park', priceCents: 1200 };
  const responses = await Promise.all(
    Array.from({ length: 100 }, () =>
      c.call('POST', '/api/catalog/courses', {
        key: admin,
        body,
        headers: { 'idempotency-key': key },
      }),
    ),
  );
  expect(await count()).toBe(before + 1);
  const first = responses[0]!;
  expect(first.status).toBe(201);
  for (const r of responses) {
    expect(r.status).toBe(201);
    expect(r.text).toBe(first.text);
    expect(r.headers.get('content-type')).toBe(first.headers.get('content-type'));
  }
  expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(99);
}

describe('idempotency keys on the platform (PGlite store)', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient();
  });
  afterAll(async () => c?.close());

  it('every POST route of the API accepts Idempotency-Key and replays its first response', async () => {
    const course = await c.course('Ada Park');
    const admin = await c.key('admin', 'idem-every-route');
    // The dashboard's static hosting answers any write with 405 itself (a hijacked reply): no
    // API route, nothing to keep.
    const posts = c.platform.routes.filter(
      (r) => r.method === 'POST' && r.url.startsWith('/api/') && !r.hidden,
    );
    expect(posts.length).toBeGreaterThanOrEqual(10);
    for (const r of posts) {
      const example = Object.values(r.doc?.bodyExamples ?? {})[0]?.value ?? {};
      const body = JSON.parse(JSON.stringify(example).replaceAll(examples.courseId, course.id));
      const path = fill(r.url, course.id);
      const key = randomUUID();
      const send = () =>
        c.call('POST', path, { key: admin, body, headers: { 'idempotency-key': key } });
      const first = await send();
      const second = await send();
      const where = `POST ${r.url} (${first.status} ${codeOf(first) ?? ''})`;
      expect(first.headers.get('idempotent-replayed'), where).toBeNull();
      expect(second.headers.get('idempotent-replayed'), where).toBe('true');
      expect(second.status, where).toBe(first.status);
      expect(second.text, where).toBe(first.text);
      // The document says so.
      expect(r.doc?.idempotencyKey, where).toBe(true);
    }
  });

  it('100 concurrent identical requests create one course and get 100 identical responses', async () => {
    await hundredAtOnce(c);
  });

  it('refuses a long key with 400, a reused one with 422, each with its code and message', async () => {
    const admin = await c.key('admin', 'idem-refusals');
    const body = { title: 'Refusals', topic: 'testing', instructor: 'Ada Park', priceCents: 100 };
    const long = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body,
      headers: { 'idempotency-key': 'k'.repeat(256) },
    });
    expect(long.status).toBe(400);
    expect(codeOf(long)).toBe('IDEMPOTENCY_KEY_INVALID');
    expect(long.text).toContain('at most 255');
    const key = randomUUID();
    const first = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body,
      headers: { 'idempotency-key': key },
    });
    expect(first.status).toBe(201);
    const reused = await c.call('POST', '/api/catalog/courses', {
      key: admin,
      body: { ...body, priceCents: 200 },
      headers: { 'idempotency-key': key },
    });
    expect(reused.status).toBe(422);
    expect(codeOf(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
    // Another API key with the same Idempotency-Key is another client: its request runs.
    const other = await c.call('POST', '/api/catalog/courses', {
      key: await c.key('admin', 'idem-other-admin'),
      body,
      headers: { 'idempotency-key': key },
    });
    expect(other.status).toBe(201);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
  });

  it('counts outcomes in cdp_idempotency_requests_total', async () => {
    const text = (await c.call('GET', '/metrics')).text;
    const count = (outcome: string) =>
      Number(
        new RegExp(`^cdp_idempotency_requests_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(
          text,
        )?.[1] ?? 0,
      );
    expect(count('started')).toBeGreaterThanOrEqual(12);
    expect(count('replayed')).toBeGreaterThanOrEqual(109);
    expect(count('reused')).toBeGreaterThanOrEqual(1);
  });

  it('documents the header and its refusals on mutating routes of the OpenAPI document', async () => {
    const r = await c.call('GET', '/api/openapi.json');
    const op = (
      r.body as {
        paths: Record<
          string,
          Record<
            string,
            { parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }
          >
        >;
      }
    ).paths['/api/catalog/courses']!;
    expect(
      op.post!.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key'),
    ).toBe(true);
    expect(Object.keys(op.post!.responses)).toContain('422');
    expect(op.get!.parameters?.some((p) => p.name === 'idempotency-key') ?? false).toBe(false);
  });
});

describeServer('idempotency keys on the platform (Redis store)', 'CDP_REDIS_URL', (url) => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient({ CDP_REDIS_URL: url });
  });
  afterAll(async () => c?.close());

  it('100 concurrent identical requests create one course and get 100 identical responses', async () => {
    await hundredAtOnce(c);
  });
});
