/**
 * The platform's media feature: a course video uploaded by the "browser" straight to the
 * storage server with a valet-key POST policy, played back through a presigned GET, and
 * counted on the dashboard panel (PGlite, the embedded default).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiKeys, authMigrations } from '../../src/app/auth.js';
import { type CatalogService, catalogFeature } from '../../src/app/features/catalog.js';
import { mediaFeature } from '../../src/app/features/media.js';
import { installErrorHandler } from '../../src/app/http-errors.js';
import {
  createRegistry,
  Lifecycle,
  loadConfig,
  silentLogger,
  systemClock,
} from '../../src/core/index.js';
import { migrate, PgliteSqlClient } from '../../src/engines/sql/index.js';
import { eventually } from '../../src/testing/eventually.js';

let dir: string;
let sql: PgliteSqlClient;
let lifecycle: Lifecycle;
const http = Fastify();
let handle: Awaited<ReturnType<typeof mediaFeature.start>>;
let c42: string;
let headers: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-media-'));
  sql = await PgliteSqlClient.open({});
  // Uploads are for a course of the catalog, by its instructor's API key.
  await migrate(sql, [
    ...authMigrations,
    ...catalogFeature.migrations!,
    ...mediaFeature.migrations!,
  ]);
  lifecycle = new Lifecycle();
  installErrorHandler(http);
  const config = { ...loadConfig({ CDP_DATA_DIR: dir }), dataDir: dir };
  const auth = new ApiKeys(sql, systemClock);
  const services = new Map<string, unknown>();
  const ctx = {
    config,
    sql,
    logger: silentLogger(),
    registry: createRegistry(),
    clock: systemClock,
    lifecycle,
    http,
    services,
    auth,
  };
  const catalog = (await catalogFeature.start(ctx)).service as CatalogService;
  services.set('catalog', catalog);
  const course = (await catalog.list({ limit: 1 }))[0]!;
  c42 = course.id;
  const key = await auth.issue({ role: 'instructor', subject: course.instructor });
  headers = { authorization: `Bearer ${key.token}` };
  handle = await mediaFeature.start(ctx);
  await http.ready();
});

afterAll(async () => {
  await http.close();
  await lifecycle.close();
  await sql.close();
  await rm(dir, { recursive: true, force: true });
});

it('uploads a course video with a valet key and plays it back; the panel counts it', async () => {
  const r = await http.inject({
    method: 'POST',
    url: '/api/media/uploads',
    headers,
    payload: { courseId: c42, contentType: 'video/mp4', maxBytes: 5000 },
  });
  expect(r.statusCode).toBe(200);
  const up = r.json() as { keyId: string; url: string; fields: Record<string, string> };
  const form = new FormData();
  for (const [k, v] of Object.entries({
    ...up.fields,
    key: `courses/${c42}/intro.mp4`,
    'Content-Type': 'video/mp4',
  }))
    form.append(k, v);
  form.append('file', new Blob([Buffer.alloc(4000, 9)]), 'intro.mp4');
  expect((await fetch(up.url, { method: 'POST', body: form })).status).toBe(204);
  // Over the cap, refused.
  const big = new FormData();
  for (const [k, v] of Object.entries({
    ...up.fields,
    key: `courses/${c42}/big.mp4`,
    'Content-Type': 'video/mp4',
  }))
    big.append(k, v);
  big.append('file', new Blob([Buffer.alloc(5001)]), 'big.mp4');
  expect((await fetch(up.url, { method: 'POST', body: big })).status).toBe(400);
  const play = await http.inject({
    method: 'GET',
    url: `/api/media/play?key=courses/${c42}/intro.mp4`,
    headers,
  });
  const { url } = play.json() as { url: string };
  const video = await fetch(url, { headers: { range: 'bytes=0-99' } });
  expect(video.status).toBe(206);
  expect((await video.arrayBuffer()).byteLength).toBe(100);
  const bad = await http.inject({
    method: 'POST',
    url: '/api/media/uploads',
    headers,
    payload: { courseId: c42, contentType: 'text/html' },
  });
  expect(bad.statusCode).toBe(400);
  // The audit is written in batches: wait until the rows of every use above have landed (the
  // play-back's bytes and the refused upload), then check the panel.
  const panel = await eventually(async () => {
    const p = await handle.panel!();
    const landed =
      Number(p.stats[1]!.value) >= 4100 && p.table!.rows.some((r) => r[0] === 'EntityTooLarge');
    return landed && p;
  }, 'the audit batches of the uses above');
  expect(panel.stats[0]).toMatchObject({ label: 'keys issued', value: 2 });
  expect(Number(panel.stats[1]!.value)).toBeGreaterThanOrEqual(4100);
  expect(panel.table!.rows).toContainEqual(['EntityTooLarge', 1]);
  expect((await handle.health!())[0]!.ok).toBe(true);
});
