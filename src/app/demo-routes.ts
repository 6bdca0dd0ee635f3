import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { documented, refusal } from './api-docs.js';
import type { ApiKeys } from './auth.js';
import type { Demo } from './feature.js';
import { NotFoundError, parseInput, quote, RequestRefusedError } from './http-errors.js';

const demoParam = z.object({ id: z.string().min(1).max(60) });
const demoInfo = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  feature: z.string(),
});
const demoResult = z.object({
  id: z.string(),
  ok: z.boolean(),
  summary: z.string(),
  figures: z.array(
    z.object({
      label: z.string(),
      value: z.union([z.number(), z.string()]),
      unit: z.string().optional(),
    }),
  ),
  steps: z.array(z.string()),
  durationMs: z.number(),
});

const docs = {
  list: documented({
    summary: 'The demonstrations a visitor can run',
    description:
      'Each feature adds demonstrations of its patterns at work (a cache stampede, a projection rebuilt under reads, ...). Run one with POST /api/demos/{id}.',
    tags: ['demos'],
    responses: {
      200: {
        description: 'Every demonstration',
        schema: z.object({ demos: z.array(demoInfo) }),
        example: {
          demos: [
            {
              id: 'cache-stampede',
              title: 'Cache stampede',
              description: '1,000 concurrent misses of one key; the loader runs once.',
              feature: 'cache',
            },
          ],
        },
      },
    },
  }),
  run: documented({
    summary: 'Run a demonstration',
    description:
      "Runs it on the platform's own modules and answers with what was observed: whether the pattern held, the figures that show it and the steps taken. A demonstration acts only on data it creates itself, or pauses a part it restarts before answering; one run of each at a time.",
    tags: ['demos'],
    roles: ['viewer'],
    access:
      "The dashboard's viewer key runs demonstrations: they change no data a user owns, so the read-only key is enough.",
    params: demoParam,
    responses: {
      200: {
        description: 'What the demonstration observed',
        schema: demoResult,
        example: {
          id: 'cache-stampede',
          ok: true,
          summary: '1,000 concurrent reads of one missing key ran the loader once.',
          figures: [
            { label: 'concurrent reads', value: 1000 },
            { label: 'loader calls', value: 1 },
          ],
          steps: ['1,000 reads of key demo:1 started together'],
          durationMs: 84,
        },
      },
    },
    errors: [
      refusal(404, 'DEMO_NOT_FOUND', 'no demonstration "x" (GET /api/demos lists them) was found'),
      refusal(409, 'DEMO_RUNNING', 'demonstration "relay-restart" is already running; wait for it'),
    ],
  }),
};

/** GET /api/demos and POST /api/demos/{id}: the features' demonstrations, run on request. */
export function installDemoRoutes(http: FastifyInstance, auth: ApiKeys, demos: Demo[]): void {
  const byId = new Map(demos.map((d) => [d.id, d]));
  const running = new Set<string>();
  http.get('/api/demos', docs.list, async () => ({
    demos: demos.map(({ id, title, description, feature }) => ({
      id,
      title,
      description,
      feature,
    })),
  }));
  http.post('/api/demos/:id', docs.run, async (req) => {
    await auth.require(req, 'viewer');
    const { id } = parseInput(demoParam, req.params, 'path');
    const demo = byId.get(id);
    if (!demo)
      throw new NotFoundError(
        `demonstration ${quote(id)} (GET /api/demos lists them)`,
        'DEMO_NOT_FOUND',
      );
    if (running.has(id))
      throw new RequestRefusedError(
        'DEMO_RUNNING',
        409,
        `demonstration ${quote(id)} is already running; wait for it`,
      );
    running.add(id);
    const started = performance.now();
    try {
      const result = await demo.run();
      return { id, ...result, durationMs: Math.round(performance.now() - started) };
    } finally {
      running.delete(id);
    }
  });
}
