import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, PortInUseError, startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';

describe('reference platform shell', () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
      streamIntervalMs: 50,
    });
  });
  afterAll(async () => platform?.close());

  const get = (path: string, init?: RequestInit) => fetch(`${platform.url}${path}`, init);

  it('reports engine health', async () => {
    const res = await get('/health');
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      status: string;
      engines: { role: string; engine: string; ok: boolean }[];
    };
    expect(body.status).toBe('ok');
    expect(body.engines[0]).toMatchObject({ role: 'sql', engine: 'pglite', ok: true });
  });

  it('lists its modules at the API root', async () => {
    const body = (await (await get('/api')).json()) as { modules: { name: string }[] };
    expect(body.modules.map((m) => m.name)).toContain('catalog');
  });

  it('serves Prometheus metrics, counting requests', async () => {
    await get('/health');
    const text = await (await get('/metrics')).text();
    expect(text).toMatch(
      /cdp_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/,
    );
    expect(text).toContain('cdp_process_');
  });

  it('serves the dashboard and streams status as server-sent events', async () => {
    const html = await (await get('/dashboard/')).text();
    expect(html).toContain('<main id="main"');
    const script = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await get(script!)).status).toBe(200);
    expect((await get('/dashboard/favicon.svg')).status).toBe(200);
    const ac = new AbortController();
    const res = await get('/api/stream', { signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const data = JSON.parse(text.split('data: ')[1]!.split('\n')[0]!) as {
      panels: { id: string }[];
      engines: unknown[];
    };
    expect(data.panels.map((p) => p.id)).toContain('catalog');
    expect(data.engines.length).toBeGreaterThan(0);
  });

  it('creates, reads and updates courses, validating input', async () => {
    const admin = (await platform.auth.issue({ role: 'admin', subject: 'root' })).token;
    const auth = { authorization: `Bearer ${admin}` };
    const created = await get('/api/catalog/courses', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({
        title: 'Sharding',
        topic: 'databases',
        instructor: 'A. B.',
        priceCents: 1000,
      }),
    });
    expect(created.status).toBe(201);
    const course = (await created.json()) as { id: string; version: number };
    const patched = await get(`/api/catalog/courses/${course.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ priceCents: 1500 }),
    });
    expect(await patched.json()).toMatchObject({ priceCents: 1500, version: 2 });

    const bad = await get('/api/catalog/courses', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({
        title: 'x',
        topic: 'y',
        instructor: 'z',
        priceCents: -1,
        extra: true,
      }),
    });
    expect(bad.status).toBe(400);
    const err = (await bad.json()) as { error: { code: string; issues: { path: string }[] } };
    expect(err.error.code).toBe('VALIDATION_FAILED');
    expect(err.error.issues.map((i) => i.path).sort()).toEqual(['course', 'priceCents']);
    expect((await get('/api/catalog/courses/not-a-uuid')).status).toBe(400);
    expect((await get('/api/catalog/courses/01890000-0000-7000-8000-000000000000')).status).toBe(
      404,
    );
  });

  it('answers an unknown route with a JSON 404 that points at the API root', async () => {
    const res = await get('/nope');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      'GET /api',
    );
  });

  it('refuses a port already in use with a clear error', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const err = await startPlatform({
        config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: String(port) }),
        logger: silentLogger(),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as Error).message).toMatch(new RegExp(`port ${port}.*CDP_PORT`));
    } finally {
      blocker.close();
    }
  });
});
