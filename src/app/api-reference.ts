import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { bearerScheme, documented } from './api-docs.js';

/** Where the OpenAPI document and its interactive reference page are served. */
export const openApiPath = '/api/openapi.json';
export const referencePath = '/api/docs/reference';

const referenceCsp = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "frame-ancestors 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self' 'unsafe-inline'",
].join('; ');

const tags = [
  { name: 'platform', description: 'Health, metrics, the dashboard feed and the docs' },
  { name: 'auth', description: 'API keys and roles' },
  { name: 'catalog', description: 'Courses: the system of record' },
  { name: 'cache', description: 'Course details read through cache-aside' },
  { name: 'reviews', description: 'Reviews and wallets: event sourcing, CQRS, materialized views' },
  { name: 'enrollment', description: 'Enrollment as a choreography over an outbox' },
  { name: 'media', description: 'Course videos through valet keys' },
];

const description = `The reference platform of cloud-data-patterns: a course marketplace that composes every pattern.

Mutating and private routes need an API key, sent as \`Authorization: Bearer <key>\`. The first start on a database issues demo keys (an admin, the dashboard's viewer, each seeded course's instructor, two students) and writes them to the file it names in its log. Roles: \`student\`, \`instructor\`, \`admin\` (may do everything), \`viewer\` (private reads only). Each route's description names the roles it accepts.

Every refusal is JSON, \`{ "error": { "code", "message", "issues"? } }\`, with a stable code: each route lists the codes it can answer with. Besides those, any route can answer 405 METHOD_NOT_ALLOWED (a known path with another method; the Allow header lists the methods), 404 NOT_FOUND for an unknown path (its message names the nearest routes), 500 INTERNAL (details in the server log, never in the response) and 503 ENGINE_UNAVAILABLE.`;

/**
 * Describe the platform's API: every route declared after this call with `documented(...)`
 * options appears in the OpenAPI 3.1 document at /api/openapi.json, and in the reference page
 * at /api/docs/reference (Swagger UI, served from the package's own files: no CDN).
 *
 * Route schemas here describe; they do not validate. Each handler parses its input with the
 * same zod schemas (`parseInput`), after its key check, so a request without a key is refused
 * with 401 before its body is looked at, and error codes and messages stay the platform's own.
 */
export async function installApiReference(http: FastifyInstance, version: string): Promise<void> {
  http.setValidatorCompiler(() => () => true);
  http.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await http.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'cloud-data-patterns reference platform', version, description },
      tags,
      components: {
        securitySchemes: {
          [bearerScheme]: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'cdpk_<24 hex>.<43 base64url>',
            description:
              'An API key issued by an admin (POST /api/auth/keys) or one of the demo keys written at first start.',
          },
        },
      },
    },
  });
  await http.register(fastifySwaggerUi, {
    routePrefix: referencePath,
    // The page loads nothing but its own files: no CDN, font service or validator badge. Swagger
    // UI sets inline styles on elements, so styles may be inline; scripts may not.
    staticCSP: true,
    transformStaticCSP: () => referenceCsp,
    validatorUrl: false,
    // BaseLayout: the document alone, without Swagger UI's top bar (a logo and a URL box).
    uiConfig: { deepLinking: true, docExpansion: 'list', layout: 'BaseLayout' },
    uiHooks: {
      // The page takes no query, and its scripts resolve the document's URL against the page's
      // own: `/api/docs/reference?x` would look for `?x/json`, and Swagger UI's redirect from
      // static/index.html keeps the query and redirects to itself. So the page's URLs drop it.
      onRequest: async (req, reply) => {
        const q = req.url.indexOf('?');
        if (q < 0) return;
        const path = req.url.slice(0, q);
        if (path === referencePath || path === `${referencePath}/`) return reply.redirect(path);
        if (path === `${referencePath}/static/index.html`)
          return reply.redirect(`${referencePath}/`);
      },
    },
  });
  http.get(
    openApiPath,
    documented({
      summary: 'The OpenAPI 3.1 document of this API',
      description: `Every route, its parameters, bodies, responses and refusal codes, with examples. ${referencePath} renders it as an interactive page.`,
      tags: ['platform'],
      responses: {
        200: {
          description: 'An OpenAPI 3.1 document',
          schema: z.looseObject({ openapi: z.string(), info: z.object({}), paths: z.object({}) }),
          example: { openapi: '3.1.0', info: { title: 'cloud-data-patterns reference platform' } },
        },
      },
    }),
    async () => http.swagger(),
  );
}
