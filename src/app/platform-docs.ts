import { z } from 'zod';
import { type RouteDoc, refusal } from './api-docs.js';
import { openApiPath, referencePath } from './api-reference.js';

const engineStatus = z.object({
  role: z.string(),
  engine: z.string(),
  ok: z.boolean(),
  detail: z.string().optional(),
  latencyMs: z.number().optional(),
});
const panel = z.object({
  id: z.string(),
  title: z.string(),
  stats: z.array(
    z.object({
      label: z.string(),
      value: z.union([z.number(), z.string()]),
      unit: z.string().optional(),
      hint: z.string().optional(),
    }),
  ),
  charts: z
    .array(
      z.object({
        title: z.string(),
        stats: z.array(z.string()),
        unit: z.string().optional(),
        hint: z.string().optional(),
      }),
    )
    .optional(),
  table: z
    .object({
      columns: z.array(z.string()),
      rows: z.array(z.array(z.union([z.string(), z.number()]))),
    })
    .optional(),
  docs: z.string().optional(),
});
const examplePanel = {
  id: 'catalog',
  title: 'Catalog',
  stats: [{ label: 'courses', value: 5 }],
};
export const docQuery = z.object({ page: z.string().max(200).optional() });
/** A TypeScript file of the package's src/ folder (the docs link to them). */
export const sourceQuery = z.object({
  path: z
    .string()
    .max(200)
    .regex(/^src\/(?:[\w-]+\/)*[\w.-]+\.ts$/, 'a path such as src/cache/cache.ts')
    .refine((p) => !p.split('/').includes('..'), 'no .. segments'),
});
const redirect = (to: string): RouteDoc['responses'] => ({
  302: { description: `Redirects to ${to}`, headers: { location: to } },
});

/** Descriptions of the routes the platform itself declares (features describe their own). */
export const platformDocs = {
  health: {
    summary: 'Engine health',
    description:
      'Pings every engine the platform uses (SQL, broker, cache tier, blob storage) and reports each with its latency. 200 when all answer, 503 when one does not: fit for a load balancer probe.',
    tags: ['platform'],
    responses: {
      200: {
        description: 'Every engine answered',
        schema: z.object({ status: z.enum(['ok', 'degraded']), engines: z.array(engineStatus) }),
        example: {
          status: 'ok',
          engines: [{ role: 'sql', engine: 'pglite', ok: true, latencyMs: 0.42 }],
        },
      },
      503: {
        description: 'An engine did not answer (status degraded)',
        schema: z.object({ status: z.enum(['ok', 'degraded']), engines: z.array(engineStatus) }),
        example: {
          status: 'degraded',
          engines: [{ role: 'broker', engine: 'nats', ok: false, detail: 'connection refused' }],
        },
      },
    },
  },
  metrics: {
    summary: 'Prometheus metrics',
    description:
      'Every metric of the platform and its modules in the Prometheus text format (`cdp_<module>_<what>_<unit>`), for a Prometheus scrape.',
    tags: ['platform'],
    responses: {
      200: {
        description: 'Metrics in the Prometheus text exposition format',
        schema: z.string(),
        contentType: 'text/plain',
        example: '# HELP cdp_http_requests_total HTTP requests by route and status\n',
      },
    },
  },
  api: {
    summary: 'What this platform is made of',
    description: `The platform's modules (features), the pattern pages each demonstrates, and where to start. The full list of routes is the OpenAPI document at ${openApiPath}.`,
    tags: ['platform'],
    responses: {
      200: {
        description: 'Modules and entry points',
        schema: z.object({
          name: z.string(),
          modules: z.array(
            z.object({ name: z.string(), description: z.string(), docs: z.array(z.string()) }),
          ),
          endpoints: z.array(z.string()),
          openapi: z.string(),
          reference: z.string(),
          auth: z.string(),
        }),
        example: {
          name: 'cloud-data-patterns reference platform',
          modules: [
            {
              name: 'catalog',
              description: 'Course catalog (system of record in SQL): create, read, update courses',
              docs: ['docs/architecture.md'],
            },
          ],
          endpoints: ['/health', '/metrics', '/api', openApiPath, referencePath],
          openapi: openApiPath,
          reference: referencePath,
          auth: 'mutating and private routes need Authorization: Bearer <API key>',
        },
      },
    },
  },
  panels: {
    summary: "The dashboard's panels, once",
    description:
      "Each feature's panel as data: headline figures and an optional table. /api/stream sends the same every second.",
    tags: ['platform'],
    responses: {
      200: {
        description: 'Every panel',
        schema: z.object({ panels: z.array(panel) }),
        example: { panels: [examplePanel] },
      },
    },
  },
  history: {
    summary: "The dashboard's recent history",
    description:
      'The numeric figures of every panel, sampled once per period (1 s by default), for the last 10 minutes: what the dashboard draws its charts from when a page opens.',
    tags: ['platform'],
    responses: {
      200: {
        description: 'Samples, oldest first',
        schema: z.object({
          samples: z.array(
            z.object({
              t: z.number(),
              values: z.record(z.string(), z.record(z.string(), z.number())),
            }),
          ),
        }),
        example: { samples: [{ t: 1796659200000, values: { cache: { 'hit ratio': 93.8 } } }] },
      },
    },
  },
  docPages: {
    summary: 'The documentation pages',
    description:
      'Every Markdown page of the documentation (docs/ and the README), by path from the package root; GET /api/docs?page= gives one.',
    tags: ['platform'],
    responses: {
      200: {
        description: 'The pages',
        schema: z.object({ pages: z.array(z.string()) }),
        example: { pages: ['README.md', 'docs/architecture.md', 'docs/patterns/cache-aside.md'] },
      },
    },
  },
  docPage: {
    summary: 'A documentation page, as Markdown',
    description:
      'One page of the documentation (GET /api/docs/pages lists them); the dashboard renders it as HTML.',
    tags: ['platform'],
    query: docQuery,
    responses: {
      200: {
        description: 'The page',
        schema: z.string(),
        contentType: 'text/markdown',
        example: '# Cache-aside\n',
      },
    },
    errors: [
      refusal(
        404,
        'NOT_FOUND',
        'doc page "docs/x.md" (GET /api/docs/pages lists the pages) was not found',
      ),
    ],
  },
  source: {
    summary: 'A source file of the package',
    description:
      'One TypeScript file under src/ (the package ships its sources), as text: where the documentation links to code.',
    tags: ['platform'],
    query: sourceQuery,
    responses: {
      200: {
        description: 'The file',
        schema: z.string(),
        contentType: 'text/plain',
        example: "import { z } from 'zod';\n",
      },
    },
    errors: [refusal(404, 'NOT_FOUND', 'source file "src/x.ts" was not found')],
  },
  stream: {
    summary: 'Live dashboard feed (server-sent events)',
    description:
      'One `status` event per period (1 s by default) with engine status and every panel, until the client disconnects. One sampler takes them for every client, so rates are measured over the period.',
    tags: ['platform'],
    responses: {
      200: {
        description: 'An event stream of `status` events',
        schema: z.string(),
        contentType: 'text/event-stream',
        example:
          'event: status\ndata: {"at":"2026-12-07T16:00:00.000Z","engines":[],"panels":[]}\n\n',
      },
    },
  },
  dashboard: {
    summary: 'The dashboard (static files)',
    description:
      "The platform's front end, served by the Static Content Hosting module: strong ETags, 304s, ranges; any write is refused with 405.",
    tags: ['platform'],
    responses: {
      200: {
        description: 'A file of the dashboard',
        schema: z.string(),
        contentType: 'text/html',
        example: '<!doctype html>',
      },
    },
    errors: [refusal(405, 'METHOD_NOT_ALLOWED', 'the static site is read-only')],
  },
  dashboardRedirect: {
    summary: 'The dashboard',
    description: 'Redirects to /dashboard/.',
    tags: ['platform'],
    responses: redirect('/dashboard/'),
  },
} satisfies Record<string, RouteDoc>;
