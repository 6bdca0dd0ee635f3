import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CdpError, errorMessage } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import { counter, createRegistry, histogram } from '../core/metrics.js';
import { type Migration, migrate } from '../engines/sql/migrations.js';
import { openSql } from '../engines/sql/open.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { idempotencyMigrations } from '../idempotency/index.js';
import { documented, fastifySchema, type RouteDoc } from './api-docs.js';
import { installApiReference, openApiPath, referencePath } from './api-reference.js';
import {
  ApiKeys,
  authMigrations,
  type IssuedKey,
  installAuthRoutes,
  type Role,
  writeDemoKeys,
} from './auth.js';
import { installDashboardRoutes } from './dashboard-routes.js';
import { installDemoRoutes } from './demo-routes.js';
import type { EngineStatus, FeatureHandle, Panel, PlatformFeature } from './feature.js';
import type { CatalogService } from './features/catalog.js';
import { defaultFeatures } from './features/index.js';
import { installErrorHandler } from './http-errors.js';
import { installIdempotencyKeys } from './idempotency-keys.js';
import { PanelHistory } from './panel-history.js';
import { platformDocs as docs } from './platform-docs.js';
import { limitClients, nodeServerOptions } from './server-limits.js';

/** The package root: two levels up from src/app and from dist/app alike. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built dashboard (`npm run build:dashboard`, from web/dashboard). */
export const dashboardDir = join(packageRoot, 'dist', 'dashboard');

/** Methods whose routes accept an Idempotency-Key. */
const mutatingMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The package's version, for the API document. */
async function packageVersion(): Promise<string> {
  const text = await readFile(join(packageRoot, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

export interface PlatformOptions {
  config: Config;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
  features?: PlatformFeature[];
  /** Dashboard refresh period for server-sent events. Default 1000 ms. */
  streamIntervalMs?: number;
}

export interface Platform {
  url: string;
  port: number;
  http: FastifyInstance;
  sql: SqlClient;
  registry: Registry;
  services: Map<string, unknown>;
  /** API keys: issue, verify, revoke. */
  auth: ApiKeys;
  /** Every route, as registered: method, URL pattern, and its description (see `documented`). */
  routes: PlatformRoute[];
  /** The demo keys, when this start issued them (the first start on a database). */
  demoKeys: { file: string; keys: IssuedKey[] } | undefined;
  close(): Promise<void>;
}

export interface PlatformRoute {
  method: string;
  url: string;
  /** The route's description, for a route declared with `documented(...)` options. */
  doc: RouteDoc | undefined;
  /** Left out of the OpenAPI document on purpose (the reference page's own files). */
  hidden: boolean;
}

export class PortInUseError extends CdpError {
  constructor(host: string, port: number) {
    super(
      'PORT_IN_USE',
      `port ${port} on ${host} is already in use; stop what holds it, or set CDP_PORT to a free port (0 picks one)`,
    );
  }
}

/** Every migration the platform's features need, for `cdp migrate` and for start-up. */
export function platformMigrations(features: PlatformFeature[] = defaultFeatures): Migration[] {
  return [
    ...authMigrations,
    ...idempotencyMigrations,
    ...features.flatMap((f) => f.migrations ?? []),
  ];
}

/** Demo principals: an admin, the dashboard's viewer, each seeded course's instructor, two students. */
async function demoPrincipals(
  services: Map<string, unknown>,
): Promise<{ role: Role; subject: string; label: string }[]> {
  const catalog = services.get('catalog') as CatalogService | undefined;
  const instructors = new Set((await catalog?.list({ limit: 200 }))?.map((c) => c.instructor));
  return [
    { role: 'admin', subject: 'demo-admin', label: 'demo admin' },
    { role: 'viewer', subject: 'dashboard', label: 'the dashboard (read-only)' },
    ...[...instructors].map((subject) => ({
      role: 'instructor' as const,
      subject,
      label: `demo instructor ${subject}`,
    })),
    { role: 'student', subject: 'demo-student-1', label: 'demo student' },
    { role: 'student', subject: 'demo-student-2', label: 'demo student' },
  ];
}

/**
 * Start the reference platform: open the SQL engine, apply migrations, start each feature,
 * then listen. Closing stops taking requests, lets requests in flight finish, then closes
 * features and engines in reverse order of opening.
 */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const registry = options.registry ?? createRegistry({ defaultMetrics: true });
  const features = options.features ?? defaultFeatures;
  const lifecycle = new Lifecycle(logger);
  try {
    const sql = lifecycle.use(
      'sql',
      // Prepared transactions on the embedded database: the payouts feature's two-phase commit.
      await openSql(config.database, { logger, maxPreparedTransactions: 16 }),
    );
    const migrated = await migrate(sql, platformMigrations(features), { logger });
    logger.info(
      { applied: migrated.applied.length, skipped: migrated.skipped, engine: sql.engine },
      'schema ready',
    );

    const http = Fastify({
      logger: false,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      http: nodeServerOptions(config.http),
      keepAliveTimeout: config.http.keepAliveTimeoutMs,
      requestTimeout: config.http.requestTimeoutMs,
      // A connection with no traffic either way for this long (a client that stopped reading
      // its response) is closed too.
      connectionTimeout: config.http.requestTimeoutMs,
    });
    const stopLimits = limitClients(http.server, config.http, clock);
    lifecycle.defer('http client limits', async () => stopLimits());
    const routes: PlatformRoute[] = [];
    http.addHook('onRoute', (r) => {
      let doc = (r.config as { doc?: RouteDoc } | undefined)?.doc;
      const hidden = (r.schema as { hide?: boolean } | undefined)?.hide === true;
      // Every mutating route accepts an Idempotency-Key (installIdempotencyKeys): its
      // description says so, with the header's refusals.
      const methods = Array.isArray(r.method) ? r.method : [r.method];
      if (doc && !doc.idempotencyKey && methods.every((m) => mutatingMethods.has(m))) {
        doc = { ...doc, idempotencyKey: true };
        r.config = { ...r.config, doc } as typeof r.config;
        r.schema = fastifySchema(doc);
      }
      for (const method of methods) routes.push({ method, url: r.url, doc, hidden });
    });
    installErrorHandler(http);
    const idempotency = await installIdempotencyKeys({
      http,
      config,
      sql,
      clock,
      logger,
      lifecycle,
      registry,
    });
    logger.info({ store: idempotency.engine }, 'idempotency keys ready');
    await installApiReference(http, await packageVersion());
    const auth = new ApiKeys(sql, clock);
    installAuthRoutes(http, auth);
    const requests = counter(
      registry,
      'cdp_http_requests_total',
      'HTTP requests by route and status',
      ['method', 'route', 'status'],
    );
    const durations = histogram(
      registry,
      'cdp_http_request_duration_seconds',
      'HTTP request duration',
      ['method', 'route'],
    );
    http.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      requests.inc({ method: req.method, route, status: String(reply.statusCode) });
      durations.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    });

    const services = new Map<string, unknown>();
    const handles: { feature: PlatformFeature; handle: FeatureHandle }[] = [];
    for (const feature of features) {
      const featureStarted = performance.now();
      const handle = await feature.start({
        config,
        sql,
        logger: logger.child({ feature: feature.name }),
        registry,
        clock,
        lifecycle,
        http,
        services,
        auth,
      });
      if (handle.service !== undefined) services.set(feature.name, handle.service);
      handles.push({ feature, handle });
      logger.info(
        { feature: feature.name, ms: Math.round(performance.now() - featureStarted) },
        'feature started',
      );
    }

    const engineStatus = async (): Promise<EngineStatus[]> => {
      const started = performance.now();
      const sqlStatus: EngineStatus = await sql.ping().then(
        () => ({
          role: 'sql',
          engine: sql.engine,
          ok: true,
          latencyMs: Math.round((performance.now() - started) * 100) / 100,
        }),
        (err: unknown) => ({
          role: 'sql',
          engine: sql.engine,
          ok: false,
          detail: errorMessage(err),
        }),
      );
      const others = await Promise.all(
        handles.map(({ handle }) => handle.health?.() ?? Promise.resolve([])),
      );
      return [sqlStatus, ...others.flat()];
    };
    const panels = async (): Promise<Panel[]> => {
      const out: Panel[] = [];
      for (const { feature, handle } of handles) {
        if (!handle.panel) continue;
        try {
          out.push(await handle.panel());
        } catch (err) {
          out.push({
            id: feature.name,
            title: feature.name,
            stats: [{ label: 'error', value: errorMessage(err) }],
          });
        }
      }
      return out;
    };

    http.get('/health', documented(docs.health), async (_req, reply) => {
      const engines = await engineStatus();
      const ok = engines.every((e) => e.ok);
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', engines });
    });
    http.get('/metrics', documented(docs.metrics), async (_req, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.metrics();
    });
    http.get('/api', documented(docs.api), async () => ({
      name: 'cloud-data-patterns reference platform',
      modules: features.map((f) => ({ name: f.name, description: f.description, docs: f.docs })),
      endpoints: [
        '/health',
        '/metrics',
        '/api',
        openApiPath,
        referencePath,
        '/api/stream',
        '/api/panels',
        '/api/history',
        '/api/demos',
        '/api/docs/pages',
        '/api/docs?page=',
        '/api/auth/me',
        '/dashboard/',
      ],
      openapi: openApiPath,
      reference: referencePath,
      auth: 'mutating and private routes need Authorization: Bearer <API key>; the demo keys are in the file the platform names at start',
    }));
    const history = lifecycle.use(
      'dashboard sampler',
      await PanelHistory.open({
        take: async () => ({ engines: await engineStatus(), panels: await panels() }),
        intervalMs: options.streamIntervalMs ?? 1000,
        clock,
        logger,
      }),
    );
    if (!existsSync(join(dashboardDir, 'index.html')))
      logger.warn(
        { dir: dashboardDir },
        'the dashboard is not built: run `npm run build:dashboard` (npm run build does it too)',
      );
    await installDashboardRoutes(http, { history, packageRoot, siteDir: dashboardDir });
    installDemoRoutes(
      http,
      auth,
      handles.flatMap(({ handle }) => handle.demos ?? []),
    );

    // The first start on a database issues the demo keys and writes them to a file.
    let demoKeys: Platform['demoKeys'];
    const issued = await auth.issueIfNone(await demoPrincipals(services));
    if (issued.length > 0) {
      const written = await writeDemoKeys(config.dataDir, issued);
      const temporary = written.temporaryDir;
      if (temporary)
        lifecycle.defer('demo keys folder', () => rm(temporary, { recursive: true, force: true }));
      demoKeys = { file: written.file, keys: issued };
      logger.info(
        { file: written.file },
        `demo API keys (admin, dashboard viewer, instructors, students) are in ${written.file}; send one as Authorization: Bearer <token>`,
      );
    }

    try {
      await http.listen({ host: config.http.host, port: config.http.port });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new PortInUseError(config.http.host, config.http.port);
      throw err;
    }
    // Registered last, so closed first: stop taking requests and finish those in flight first.
    lifecycle.use('http', { close: () => http.close() });
    const address = http.server.address();
    const port = typeof address === 'object' && address ? address.port : config.http.port;
    const url = `http://${config.http.host}:${port}`;
    logger.info(
      {
        url,
        dashboard: `${url}/dashboard/`,
        openapi: `${url}${openApiPath}`,
        reference: `${url}${referencePath}`,
      },
      `platform ready: the dashboard is at ${url}/dashboard/, the API reference at ${url}${referencePath}`,
    );
    return {
      url,
      port,
      http,
      sql,
      registry,
      services,
      auth,
      routes,
      demoKeys,
      close: () => lifecycle.close(),
    };
  } catch (err) {
    await lifecycle
      .close()
      .catch((closeErr: unknown) =>
        logger.error({ err: errorMessage(closeErr) }, 'cleanup after failed start'),
      );
    throw err;
  }
}
