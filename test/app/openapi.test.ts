import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeErrors } from '../../src/app/api-docs.js';
import { referencePath } from '../../src/app/api-reference.js';
import type { PlatformFeature } from '../../src/app/feature.js';
import { defaultFeatures } from '../../src/app/features/index.js';
import type { PlatformRoute } from '../../src/app/platform.js';
import { type Client, codeOf, startClient } from './support.js';

type Operation = {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> };
  responses: Record<
    string,
    {
      description: string;
      content?: Record<
        string,
        { example?: unknown; examples?: Record<string, { value: unknown }>; schema?: unknown }
      >;
    }
  >;
};
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** `/a/:b/*` as OpenAPI writes it: `/a/{b}/{*}`. */
const openApiUrl = (url: string) =>
  url
    .split('/')
    .map((s) => (s.startsWith(':') ? `{${s.slice(1)}}` : s === '*' ? '{*}' : s))
    .join('/');

/**
 * What is missing from the routes' descriptions: each route but the reference page's own files
 * needs a summary, a description, tags, a schema for each path parameter, and an example of each
 * response that has a body. Returns one line per problem.
 */
function undescribed(routes: PlatformRoute[]): string[] {
  const problems: string[] = [];
  for (const r of routes) {
    const where = `${r.method} ${r.url}`;
    if (r.hidden) {
      if (!r.url.startsWith(referencePath)) problems.push(`${where}: hidden from the document`);
      continue;
    }
    const doc = r.doc;
    if (!doc) {
      problems.push(`${where}: no schema or description (declare it with documented(...))`);
      continue;
    }
    if (!doc.summary.trim()) problems.push(`${where}: no summary`);
    if (!doc.description.trim()) problems.push(`${where}: no description`);
    if (doc.tags.length === 0) problems.push(`${where}: no tags`);
    if (r.url.includes('/:') && !doc.params) problems.push(`${where}: no params schema`);
    if (doc.body && !doc.bodyExamples) problems.push(`${where}: a body with no example`);
    const responses = Object.entries(doc.responses);
    if (responses.length === 0) problems.push(`${where}: no responses`);
    for (const [status, res] of responses)
      if (res.schema && res.example === undefined) problems.push(`${where}: ${status} no example`);
  }
  return problems;
}

/** Issue 19, point 1: a described API. */
describe('the OpenAPI document', () => {
  let c: Client;
  let doc: Document;
  beforeAll(async () => {
    c = await startClient();
    const r = await c.call('GET', '/api/openapi.json');
    expect(r.status).toBe(200);
    doc = r.body as Document;
  });
  afterAll(async () => c?.close());

  it('describes every route the platform declares', () => {
    expect(c.platform.routes.length).toBeGreaterThan(30);
    expect(undescribed(c.platform.routes)).toEqual([]);
    for (const r of c.platform.routes.filter((r) => !r.hidden && r.method !== 'HEAD')) {
      const op = doc.paths[openApiUrl(r.url)]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url} in the document`).toBeDefined();
    }
  });

  it('fails the walk for a route declared without a description', async () => {
    const bare: PlatformFeature = {
      name: 'bare',
      description: 'a feature whose route has no description',
      docs: [],
      async start(ctx) {
        ctx.http.get('/api/bare/things', async () => ({ things: [] }));
        ctx.http.get('/api/bare/things/:id', { schema: { summary: 'A thing' } }, async () => ({}));
        return {};
      },
    };
    const other = await startClient({}, [...defaultFeatures, bare]);
    try {
      expect(undescribed(other.platform.routes)).toEqual([
        'GET /api/bare/things: no schema or description (declare it with documented(...))',
        'HEAD /api/bare/things: no schema or description (declare it with documented(...))',
        'GET /api/bare/things/:id: no schema or description (declare it with documented(...))',
        'HEAD /api/bare/things/:id: no schema or description (declare it with documented(...))',
      ]);
    } finally {
      await other.close();
    }
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('gives every operation a summary, a description with its access rule, tags, security and examples', () => {
    let operations = 0;
    for (const [path, methods] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(methods)) {
        const where = `${method.toUpperCase()} ${path}`;
        operations++;
        expect(op.summary, where).toBeTruthy();
        expect(op.description, where).toMatch(/Access: (public|Bearer API key with)/);
        expect(op.tags?.length, where).toBeGreaterThan(0);
        expect(op.security, where).toBeDefined();
        const keyed = (op.security ?? []).length > 0;
        // A keyed route documents 401 and 403 with examples; a public one does not.
        expect(Boolean(op.responses['401']), where).toBe(keyed);
        for (const [status, res] of Object.entries(op.responses)) {
          expect(res.description, `${where} ${status}`).toBeTruthy();
          for (const [type, media] of Object.entries(res.content ?? {})) {
            const has = media.example !== undefined || Object.keys(media.examples ?? {}).length > 0;
            expect(has, `${where} ${status} ${type} has an example`).toBe(true);
            if (Number(status) >= 400)
              for (const [code, ex] of Object.entries(media.examples ?? {}))
                expect((ex.value as { error: { code: string } }).error.code).toBe(code);
          }
        }
        for (const media of Object.values(op.requestBody?.content ?? {}))
          expect(Object.keys(media.examples ?? {}).length, `${where} body`).toBeGreaterThan(0);
      }
    expect(operations).toBeGreaterThan(30);
    // Refusal codes are in the document, each under its status.
    const enroll = doc.paths['/api/enrollment/enrollments']!.post!;
    expect(Object.keys(enroll.responses).sort()).toEqual(
      ['202', '400', '401', '403', '404', '409', '413', '415', '422'].sort(),
    );
    expect(Object.keys(enroll.responses['409']!.content!['application/json']!.examples!)).toEqual([
      'ALREADY_ENROLLED',
      'IDEMPOTENCY_KEY_IN_PROGRESS',
    ]);
    const play = doc.paths['/api/media/play']!.get!;
    expect(Object.keys(play.responses['403']!.content!['application/json']!.examples!)).toEqual([
      'FORBIDDEN',
      'NOT_ENROLLED',
    ]);
    expect(play.description).toContain('role student, instructor or admin');
  });

  it("has request body examples that pass the route's own validation, on the running route too", async () => {
    const documented = c.platform.routes.filter(
      (r) => r.method !== 'HEAD' && r.doc?.body && r.doc.bodyExamples,
    );
    expect(documented.length).toBeGreaterThanOrEqual(9);
    // A course of the instructor the examples name, so that routes reach past their lookups.
    const course = await c.course('Ada Park');
    const keys = {
      admin: await c.key('admin', 'example-admin'),
      student: await c.key('student', 'demo-student-1'),
      instructor: await c.key('instructor', 'Ada Park'),
      viewer: await c.key('viewer', 'example-viewer'),
    };
    let sent = 0;
    for (const r of documented) {
      const doc = r.doc!;
      const role = doc.roles?.[0] ?? 'admin';
      const path = r.url
        .split('/')
        .map((s) => {
          if (s === ':studentId') return 'demo-student-1';
          if (s.startsWith(':')) return course.id;
          return s;
        })
        .join('/');
      const codes = new Set(routeErrors(doc).map((e) => e.code));
      for (const [name, example] of Object.entries(doc.bodyExamples!)) {
        const where = `${r.method} ${r.url} example ${name}`;
        const parsed = doc.body!.safeParse(example.value);
        expect({ where, issues: parsed.error?.issues ?? [] }).toEqual({ where, issues: [] });
        const res = await c.call(r.method, path, { key: keys[role], body: example.value });
        sent++;
        const code = codeOf(res);
        // Past validation: a success, or a refusal the route documents (never a 400 of its body).
        expect({ where, code }).not.toEqual({ where, code: 'VALIDATION_FAILED' });
        expect({ where, code }).not.toEqual({ where, code: 'INVALID_JSON' });
        if (res.status >= 400)
          expect({ where, documented: codes.has(code ?? '') }).toEqual({
            where,
            documented: true,
          });
        else expect(Object.keys(doc.responses)).toContain(String(res.status));
      }
    }
    expect(sent).toBeGreaterThanOrEqual(12);
  });

  it('is what GET /api points a newcomer to', async () => {
    const r = await c.call('GET', '/api');
    expect(r.body).toMatchObject({ openapi: '/api/openapi.json', reference: referencePath });
  });
});
