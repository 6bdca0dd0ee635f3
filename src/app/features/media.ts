import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  chainKeys,
  presign,
  StorageServer,
  staticKeys,
  ValetKeyService,
  valetKeyMigrations,
} from '../../storage/index.js';
import type { PlatformFeature } from '../feature.js';
import { parseInput } from '../http-errors.js';

const BUCKET = 'course-media';

const uploadInput = z.strictObject({
  courseId: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9-]+$/),
  contentType: z.string().regex(/^video\/[a-z0-9.+-]+$/, 'must be a video/* type'),
  maxBytes: z
    .number()
    .int()
    .min(1)
    .max(5 * 1024 ** 3)
    .default(2 * 1024 ** 3),
});
const playQuery = z.object({ key: z.string().min(1).max(1024).startsWith('courses/') });
const keyParam = z.object({ keyId: z.string().regex(/^cdpv_[0-9a-f]{30}$/) });

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
  migrations: valetKeyMigrations,
  async start({ config, sql, logger, registry, clock, lifecycle, http }) {
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
      keys: chainKeys(staticKeys([root]), {
        prepare: (id) => valet!.resolver().prepare(id),
        lookup: (id) => valet?.resolver().lookup(id),
        authorize: (r) => valet!.resolver().authorize!(r),
      }),
      onAudit: (e) => valet?.audit(e),
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
    // Create the bucket (idempotent) with the root key.
    const create = presign({
      method: 'PUT',
      protocol: 'http:',
      host: new URL(server.url).host,
      path: `/${BUCKET}`,
      credentials: root,
      region: root.region,
      date: clock.now(),
      expiresIn: 60,
    });
    const res = await fetch(create.url, { method: 'PUT' });
    if (!res.ok) throw new Error(`could not create bucket ${BUCKET}: ${res.status}`);

    // What the application itself carries for media: request and response bytes of its API.
    let appBytes = 0;
    http.addHook('onResponse', async (req, reply) => {
      if (!req.url.startsWith('/api/media/')) return;
      appBytes += Number(req.headers['content-length'] ?? 0);
      appBytes += Number(reply.getHeader('content-length') ?? 0);
    });

    http.post('/api/media/uploads', async (req) => {
      const p = parseInput(uploadInput, req.body, 'upload');
      const key = await valet!.issue({
        bucket: BUCKET,
        prefix: `courses/${p.courseId}/`,
        methods: ['POST'],
        expiresIn: 900,
        maxBytes: p.maxBytes,
      });
      const form = valet!.postPolicy(key, { contentType: p.contentType });
      return { keyId: key.keyId, url: form.url, fields: form.fields, maxBytes: p.maxBytes };
    });
    http.get('/api/media/play', async (req) => {
      const { key: objectKey } = parseInput(playQuery, req.query, 'query');
      const key = await valet!.issue({
        bucket: BUCKET,
        key: objectKey,
        methods: ['GET', 'HEAD'],
        expiresIn: 3600,
      });
      return { keyId: key.keyId, url: valet!.presignUrl(key, { method: 'GET', expiresIn: 3600 }) };
    });
    http.post('/api/media/keys/:keyId/revoke', async (req) => {
      const { keyId } = parseInput(keyParam, req.params, 'path');
      await valet!.revoke(keyId);
      return { revoked: keyId };
    });

    return {
      service: { server, valet },
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
            { label: 'keys issued', value: issued.rows[0]?.n ?? 0 },
            { label: 'bytes moved directly', value: Number(bytes.rows[0]?.n ?? 0), unit: 'B' },
            { label: 'bytes through the app (API only)', value: appBytes, unit: 'B' },
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
        const r = await fetch(`${server.url}/`).catch(() => null);
        return [
          {
            role: 'blob storage',
            engine: 'built-in S3 server (filesystem)',
            ok: r !== null && r.status === 403,
            latencyMs: Math.round(performance.now() - t0),
            detail: server.url,
          },
        ];
      },
    };
  },
};
