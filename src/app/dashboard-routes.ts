import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { FolderSource, StaticSite } from '../storage/index.js';
import { documented } from './api-docs.js';
import { NotFoundError, parseInput } from './http-errors.js';
import type { PanelHistory } from './panel-history.js';
import { docQuery, platformDocs as docs, sourceQuery } from './platform-docs.js';

/** Every Markdown page under docs/ (and the README), as paths from the package root. */
export async function listDocPages(packageRoot: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.name.endsWith('.md')) out.push(relative(packageRoot, full).split(sep).join('/'));
    }
  };
  await walk(join(packageRoot, 'docs'));
  if (existsSync(join(packageRoot, 'README.md'))) out.push('README.md');
  return out.sort();
}

/**
 * The dashboard's routes: the live feed (server-sent events) and its history, the docs as
 * Markdown for the pages that render them, and the built front end, served by the Static
 * Content Hosting module (strong ETags, 304s, ranges, no dotfiles or traversal, 405 for writes).
 */
export async function installDashboardRoutes(
  http: FastifyInstance,
  o: { history: PanelHistory; packageRoot: string; siteDir: string },
): Promise<void> {
  const { history } = o;
  http.get('/api/panels', documented(docs.panels), async () => ({
    panels: (await history.fresh())?.panels ?? [],
  }));
  http.get('/api/history', documented(docs.history), async () => ({
    samples: history.samples(),
  }));

  const pages = await listDocPages(o.packageRoot);
  const known = new Set(pages);
  http.get('/api/docs/pages', documented(docs.docPages), async () => ({ pages }));
  http.get('/api/docs', documented(docs.docPage), async (req, reply) => {
    const page = parseInput(docQuery, req.query, 'query').page ?? '';
    if (!known.has(page))
      throw new NotFoundError(
        `doc page ${JSON.stringify(page)} (GET /api/docs/pages lists the pages)`,
      );
    const text = await readFile(join(o.packageRoot, page), 'utf8').catch(() => undefined);
    if (text === undefined) throw new NotFoundError(`doc page ${page}`);
    return reply.type('text/markdown; charset=utf-8').send(text);
  });

  http.get('/api/source', documented(docs.source), async (req, reply) => {
    const path = parseInput(sourceQuery, req.query, 'query').path;
    const text = await readFile(join(o.packageRoot, path), 'utf8').catch(() => undefined);
    if (text === undefined) throw new NotFoundError(`source file ${JSON.stringify(path)}`);
    return reply.type('text/plain; charset=utf-8').send(text);
  });

  // Live feed: each snapshot the sampler takes, as one `status` event.
  const streams = new Set<FastifyReply>();
  http.get('/api/stream', documented(docs.stream), (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    streams.add(reply);
    const send = (s: unknown) => res.write(`event: status\ndata: ${JSON.stringify(s)}\n\n`);
    if (history.latest) send(history.latest);
    const stop = history.subscribe(send);
    req.raw.on('close', () => {
      stop();
      streams.delete(reply);
    });
  });
  http.addHook('preClose', async () => {
    for (const s of streams) s.raw.end();
    streams.clear();
  });

  const site = new StaticSite({
    source: new FolderSource({ root: o.siteDir }),
    htmlMaxAge: 0,
    defaultMaxAge: 60,
  });
  http.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/dashboard/*',
    exposeHeadRoute: false,
    ...documented(docs.dashboard),
    handler: (req, reply) => {
      reply.hijack();
      req.raw.url = req.raw.url!.slice('/dashboard'.length);
      void site.handle(req.raw, reply.raw);
    },
  });
  http.get('/dashboard', documented(docs.dashboardRedirect), (_req, reply) =>
    reply.redirect('/dashboard/'),
  );
  http.get('/', documented(docs.dashboardRedirect), (_req, reply) => reply.redirect('/dashboard/'));
}
