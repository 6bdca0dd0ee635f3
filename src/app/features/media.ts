import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { Migration } from '../../engines/sql/migrations.js';
import {
  chainKeys,
  presign,
  StorageServer,
  staticKeys,
  ValetKeyService,
  valetKeyMigrations,
} from '../../storage/index.js';
import { courseNotFound, documented, examples, refusal } from '../api-docs.js';
import type { Principal } from '../auth.js';
import { valetRevokeDemo } from '../demos/valet-revoke.js';
import type { PlatformFeature } from '../feature.js';
import { ForbiddenError, NotFoundError, parseInput, quote } from '../http-errors.js';
import type { CatalogService, Course } from './catalog.js';
import type { EnrollmentService } from './enrollment.js';

const BUCKET = 'course-media';

/** Who issued each valet key (through which API key, as whom): the issuer may revoke it. */
const mediaMigrations: Migration[] = [
  {
    module: 'media-app',
    version: 1,
    name: 'issuers of valet keys',
    sql: `CREATE TABLE app_media_keys (
      key_id text PRIMARY KEY,
      issued_by_key text NOT NULL,
      issued_by_role text NOT NULL,
      issued_by_subject text NOT NULL
    );`,
  },
];

const uploadInput = z.strictObject({
  courseId: z.string().trim().min(1).max(64),
  contentType: z.string().regex(/^video\/[a-z0-9.+-]+$/, 'must be a video/* type'),
  maxBytes: z
    .number()
    .int()
    .min(1)
    .max(5 * 1024 ** 3)
    .default(2 * 1024 ** 3),
});
const playQuery = z.object({ key: z.string().min(1).max(1024).startsWith('courses/') });
const keyParam = z.object({ keyId: z.string().min(1).max(64) });

const objectKey = `courses/${examples.courseId}/intro.mp4`;
const docs = {
  upload: documented({
    summary: 'Get a form to upload a course video',
    description:
      "Issues a valet key (15 minutes, this course's folder, a size cap) and a browser POST form for it: post `fields` plus the file as multipart/form-data to `url`, the storage server, straight from the browser. The application never carries the bytes.",
    tags: ['media'],
    roles: ['instructor'],
    access: 'An instructor uploads only to their own courses.',
    body: uploadInput,
    bodyExamples: {
      video: {
        summary: 'An MP4 of at most 100 MiB',
        value: { courseId: examples.courseId, contentType: 'video/mp4', maxBytes: 104857600 },
      },
    },
    responses: {
      200: {
        description: 'The key and the POST form',
        schema: z.object({
          keyId: z.string(),
          url: z.url(),
          fields: z.record(z.string(), z.string()),
          maxBytes: z.number().int(),
        }),
        example: {
          keyId: examples.valetKeyId,
          url: 'http://127.0.0.1:9000/course-media',
          fields: { key: `courses/${examples.courseId}/\${filename}`, policy: 'eyJ...' },
          maxBytes: 104857600,
        },
      },
    },
    errors: [
      refusal(
        403,
        'FORBIDDEN',
        `course ${examples.courseId} belongs to instructor "Ada Park"; only they or an admin upload its videos`,
      ),
      courseNotFound,
    ],
  }),
  play: documented({
    summary: 'Get a URL to play a course video',
    description:
      'Issues a valet key for one object and a presigned GET URL (1 hour) that the player fetches from the storage server directly, with ranges.',
    tags: ['media'],
    roles: ['student', 'instructor'],
    access:
      'A student plays the videos of courses they are enrolled in; an instructor those of their own courses.',
    query: playQuery,
    responses: {
      200: {
        description: 'The key and the presigned URL',
        schema: z.object({ keyId: z.string(), url: z.url() }),
        example: {
          keyId: examples.valetKeyId,
          url: `http://127.0.0.1:9000/course-media/${objectKey}?X-Amz-Signature=...`,
        },
      },
    },
    errors: [
      refusal(
        403,
        'NOT_ENROLLED',
        `student "${examples.student}" is not enrolled in course ${examples.courseId}; enroll first to play its videos`,
      ),
      courseNotFound,
    ],
  }),
  revoke: documented({
    summary: 'Revoke a valet key',
    description:
      'Revokes a valet key at once: the storage server refuses its next use, even of a URL already handed out.',
    tags: ['media'],
    roles: ['student', 'instructor'],
    access: 'Whoever issued the valet key (same role and subject) revokes it, or an admin.',
    params: keyParam,
    responses: {
      200: {
        description: 'The valet key is revoked',
        schema: z.object({ revoked: z.string() }),
        example: { revoked: examples.valetKeyId },
      },
    },
    errors: [
      refusal(403, 'FORBIDDEN', 'only an admin or whoever issued this valet key may revoke it'),
      refusal(404, 'KEY_NOT_FOUND', `valet key "${examples.valetKeyId}" was not found`),
    ],
  }),
};

/** An admin, or the instructor whose course it is. */
function owns(p: Principal, course: Course): boolean {
  return p.role === 'admin' || (p.role === 'instructor' && p.subject === course.instructor);
}

/**
 * Course videos: the browser uploads straight to the built-in storage server with a valet key
 * (a POST policy capped in size) and plays back through a presigned GET; the application never
 * carries the bytes. Keys can be revoked; every use is audited.
 */
export const mediaFeature: PlatformFeature = {
  name: 'media',
  description:
    'Course videos uploaded and played through valet keys (presigned URLs, POST policies)',
  docs: ['docs/patterns/valet-key.md', 'docs/patterns/static-content-hosting.md'],
  migrations: [...valetKeyMigrations, ...mediaMigrations],
  async start({ config, sql, logger, registry, clock, lifecycle, http, auth, services }) {
    const root = config.storage ?? {
      accessKeyId: `dev${randomBytes(6).toString('hex')}`,
      secretAccessKey: randomBytes(24).toString('base64url'),
      region: 'us-east-1',
    };
    // The valet master secret derives every key's secret; the root secret serves as it.
    let valet: ValetKeyService | undefined;
    // With the database in memory (CDP_DATA_DIR=memory://), objects live in a temporary folder
    // removed at shutdown; otherwise beside the data.
    let dir = join(config.dataDir, 'storage');
    if (config.dataDir === 'memory://') {
      const tmp = await mkdtemp(join(tmpdir(), 'cdp-media-'));
      lifecycle.defer('media temporary folder', () => rm(tmp, { recursive: true, force: true }));
      dir = tmp;
    }
    const server = await StorageServer.start({
      dir,
      region: root.region,
      clock,
      logger,
      registry,
      // The platform's HTTP limits hold on its storage server too (CDP_HTTP_*): a client that
      // trickles headers or a presigned upload's body is cut off there as well.
      limits: {
        headersTimeoutMs: config.http.headersTimeoutMs,
        keepAliveTimeoutMs: config.http.keepAliveTimeoutMs,
        maxConnectionsPerClient: config.http.maxConnectionsPerClient,
        minBodyBytes: config.http.minBodyBytesPerSecond * 10,
        bodyRateWindowMs: 10_000,
      },
      keys: chainKeys(staticKeys([root]), {
        prepare: (id) => valet!.resolver().prepare(id),
        lookup: (id) => valet?.resolver().lookup(id),
        authorize: (r) => valet!.resolver().authorize!(r),
      }),
      // The platform's own requests with the root key (bucket creation, health probes) are not
      // valet-key use: the audit records what keys handed out do, and every refusal.
      onAudit: (e) => {
        if (e.keyId !== root.accessKeyId) valet?.audit(e);
      },
      cors: {
        [BUCKET]: [
          {
            allowedOrigins: ['*'],
            allowedMethods: ['GET', 'POST', 'PUT', 'HEAD'],
            allowedHeaders: ['*'],
            exposeHeaders: ['ETag'],
            maxAgeSeconds: 600,
          },
        ],
      },
    });
    lifecycle.use('media storage server', server);
    valet = await ValetKeyService.open({
      sql,
      masterSecret: root.secretAccessKey,
      endpoint: server.url,
      region: root.region,
      clock,
      logger,
    });
    lifecycle.use('media valet keys', valet);
    /** A request on the bucket signed with the root key (the platform's own, not audited). */
    const rootRequest = (method: 'PUT' | 'HEAD') => {
      const signed = presign({
        method,
        protocol: 'http:',
        host: new URL(server.url).host,
        path: `/${BUCKET}`,
        credentials: root,
        region: root.region,
        date: clock.now(),
        expiresIn: 60,
      });
      return fetch(signed.url, { method });
    };
    // Create the bucket (idempotent) with the root key.
    const res = await rootRequest('PUT');
    if (!res.ok) throw new Error(`could not create bucket ${BUCKET}: ${res.status}`);

    // What the application itself carries for media: request and response bytes of its API
    // calls that were accepted (a refused body was not carried anywhere).
    let appBytes = 0;
    http.addHook('onResponse', async (req, reply) => {
      if (!req.url.startsWith('/api/media/') || reply.statusCode >= 400) return;
      appBytes += Number(req.headers['content-length'] ?? 0);
      appBytes += Number(reply.getHeader('content-length') ?? 0);
    });

    const catalog = () => services.get('catalog') as CatalogService;
    const remember = (keyId: string, by: Principal) =>
      sql.query(
        'INSERT INTO app_media_keys (key_id, issued_by_key, issued_by_role, issued_by_subject) VALUES ($1, $2, $3, $4)',
        [keyId, by.keyId, by.role, by.subject],
      );
    http.post('/api/media/uploads', docs.upload, async (req) => {
      const by = await auth.require(req, 'instructor');
      const p = parseInput(uploadInput, req.body, 'upload');
      const course = await catalog().require(p.courseId);
      if (!owns(by, course))
        throw new ForbiddenError(
          `course ${course.id} belongs to instructor ${quote(course.instructor)}; only they or an admin upload its videos`,
        );
      const key = await valet!.issue({
        bucket: BUCKET,
        prefix: `courses/${course.id}/`,
        methods: ['POST'],
        expiresIn: 900,
        maxBytes: p.maxBytes,
      });
      await remember(key.keyId, by);
      const form = valet!.postPolicy(key, { contentType: p.contentType });
      return { keyId: key.keyId, url: form.url, fields: form.fields, maxBytes: p.maxBytes };
    });
    http.get('/api/media/play', docs.play, async (req) => {
      const by = await auth.require(req, 'student', 'instructor');
      const { key: objectKey } = parseInput(playQuery, req.query, 'query');
      // courses/<course id>/<file>: the course decides who may play it.
      const rest = objectKey.slice('courses/'.length);
      const slash = rest.indexOf('/');
      const course = await catalog().require(slash < 0 ? rest : rest.slice(0, slash));
      if (by.role === 'student') {
        const enrollment = services.get('enrollment') as EnrollmentService | undefined;
        if (!(await enrollment?.isEnrolled(by.subject, course.id)))
          throw new ForbiddenError(
            `student ${quote(by.subject)} is not enrolled in course ${course.id}; enroll first to play its videos`,
            'NOT_ENROLLED',
          );
      } else if (!owns(by, course)) {
        throw new ForbiddenError(
          `course ${course.id} belongs to instructor ${quote(course.instructor)}; only they, its students or an admin play its videos`,
        );
      }
      const key = await valet!.issue({
        bucket: BUCKET,
        key: objectKey,
        methods: ['GET', 'HEAD'],
        expiresIn: 3600,
      });
      await remember(key.keyId, by);
      return { keyId: key.keyId, url: valet!.presignUrl(key, { method: 'GET', expiresIn: 3600 }) };
    });
    http.post('/api/media/keys/:keyId/revoke', docs.revoke, async (req) => {
      const by = await auth.require(req, 'student', 'instructor');
      const { keyId } = parseInput(keyParam, req.params, 'path');
      const { rows } = await sql.query<{
        issued_by_role: string | null;
        issued_by_subject: string | null;
      }>(
        `SELECT m.issued_by_role, m.issued_by_subject FROM storage_valet_keys k
           LEFT JOIN app_media_keys m ON m.key_id = k.key_id WHERE k.key_id = $1`,
        [keyId],
      );
      const row = rows[0];
      if (!row) throw new NotFoundError(`valet key ${quote(keyId)}`, 'KEY_NOT_FOUND');
      const issuer = row.issued_by_role === by.role && row.issued_by_subject === by.subject;
      if (by.role !== 'admin' && !issuer)
        throw new ForbiddenError('only an admin or whoever issued this valet key may revoke it');
      await valet!.revoke(keyId);
      return { revoked: keyId };
    });

    return {
      service: { server, valet },
      demos: [valetRevokeDemo(valet, BUCKET)],
      async panel() {
        const issued = await sql.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM storage_audit WHERE event = 'issue'",
        );
        const bytes = await sql.query<{ n: number }>(
          "SELECT coalesce(sum(bytes), 0)::bigint AS n FROM storage_audit WHERE event = 'use' AND outcome = 'ok' AND key_id LIKE 'cdpv_%'",
        );
        const refusals = await sql.query<{ code: string; n: number }>(
          "SELECT coalesce(code, '?') AS code, count(*)::int AS n FROM storage_audit WHERE outcome = 'refused' GROUP BY code ORDER BY n DESC LIMIT 10",
        );
        return {
          id: 'media',
          title: 'Media (Valet Key)',
          stats: [
            {
              label: 'keys issued',
              value: issued.rows[0]?.n ?? 0,
              hint: 'Valet keys handed out: each a narrow, short-lived permission for one object or prefix.',
            },
            {
              label: 'bytes moved directly',
              value: Number(bytes.rows[0]?.n ?? 0),
              unit: 'B',
              hint: 'Bytes that went between a client and the storage server with a valet key, never through the application.',
            },
            {
              label: 'bytes through the app (API only)',
              value: appBytes,
              unit: 'B',
              hint: 'Bytes the application itself carried for media: only the small API calls that sign keys.',
            },
          ],
          charts: [
            {
              title: 'Bytes: direct vs through the app',
              stats: ['bytes moved directly', 'bytes through the app (API only)'],
              unit: 'B',
              hint: 'The direct line grows with every upload and download; the app line stays flat and small.',
            },
          ],
          table: {
            columns: ['refusal reason', 'count'],
            rows: refusals.rows.map((r) => [r.code, r.n]),
          },
          docs: 'docs/patterns/valet-key.md',
        };
      },
      async health() {
        const t0 = performance.now();
        // A signed HeadBucket with the root key: an answer the server accepts, not a refusal.
        const r = await rootRequest('HEAD').catch(() => null);
        return [
          {
            role: 'blob storage',
            engine: 'built-in S3 server (filesystem)',
            ok: r !== null && r.status === 200,
            latencyMs: Math.round(performance.now() - t0),
            detail: server.url,
          },
        ];
      },
    };
  },
};
