import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { haveChromium, launchChromium } from '../support/browser.js';

const have = haveChromium('dashboard in a browser');

/** Screenshots of each page at 1,280 px, for review (git-ignored). */
const shots = resolve('test-results', 'screenshots');

/** Every page of the dashboard: its route and a selector that shows it rendered. */
const pages = [
  { name: 'overview', hash: '#/', ready: '#cards #panel-cache .stat' },
  { name: 'cache', hash: '#/cache', ready: '#panel-cache .stat' },
  { name: 'reviews', hash: '#/reviews', ready: '#panel-reviews .stat' },
  { name: 'messaging', hash: '#/messaging', ready: '#panel-enrollment .stat' },
  { name: 'media', hash: '#/media', ready: '#panel-media .stat' },
  { name: 'sagas', hash: '#/sagas', ready: '#panel-purchases .stat' },
  { name: 'payouts', hash: '#/payouts', ready: '#panel-payouts .stat' },
  { name: 'quorum', hash: '#/quorum', ready: '#panel-quorum .stat' },
  { name: 'sharding', hash: '#/sharding', ready: '#panel-sharding .stat' },
  { name: 'multi-master', hash: '#/multi-master', ready: '#panel-multi-master .stat' },
  { name: 'replication', hash: '#/replication', ready: '#panel-replication .stat' },
  { name: 'docs', hash: '#/docs', ready: '.doc-list li' },
  {
    name: 'docs-cache-aside',
    hash: '#/docs/docs/patterns/cache-aside.md',
    ready: 'article.doc h1',
  },
];
const demos = [
  { id: 'cache-stampede', page: '#/cache', expect: /loader once/ },
  { id: 'projection-rebuild', page: '#/reviews', expect: /counts after match/ },
  { id: 'relay-restart', page: '#/messaging', expect: /applied once after it restarted/ },
  { id: 'valet-revoke', page: '#/media', expect: /refused the next range/ },
  { id: 'purchase-saga', page: '#/sagas', expect: /seat reservation was released/ },
  { id: 'quorum-node-down', page: '#/quorum', expect: /checker found the history linearizable/ },
  { id: 'sharding-move-under-writes', page: '#/sharding', expect: /none lost/ },
  { id: 'multi-master-partition', page: '#/multi-master', expect: /converged after the partition/ },
];

describe.skipIf(!have)('dashboard in a browser', () => {
  let platform: Platform;
  let browser: Browser;
  let errors: string[];
  const token = (role: string) => platform.demoKeys!.keys.find((k) => k.role === role)!;

  /** A page that records console errors and uncaught exceptions into `errors`. */
  async function open(hash: string, width = 1280): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${hash} @${width}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`${hash} @${width}: ${e.message}`));
    await page.goto(`${platform.url}/dashboard/${hash}`);
    return page;
  }

  beforeAll(async () => {
    platform = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
      streamIntervalMs: 200,
    });
    browser = await launchChromium();
    errors = [];
    mkdirSync(shots, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('shows engines and panels on the overview, and updates them live as data changes', async () => {
    const page = await open('#/');
    await page.waitForSelector('#engines tbody tr');
    expect(await page.textContent('#engines tbody')).toContain('pglite');
    expect(await page.textContent('#engines tbody')).toContain('up');
    const panel = page.locator('#panel-catalog');
    await expect.poll(async () => panel.textContent(), { timeout: 10_000 }).toContain('courses5');
    const res = await fetch(`${platform.url}/api/catalog/courses`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token('admin').token}`,
      },
      body: JSON.stringify({ title: 'Live', topic: 't', instructor: 'i', priceCents: 1 }),
    });
    expect(res.status).toBe(201);
    await expect.poll(async () => panel.textContent(), { timeout: 10_000 }).toContain('courses6');
    await expect.poll(async () => page.textContent('#modules')).toContain('catalog');
    await page.close();
  });

  it('runs each demonstration from its page and shows what it observed', async () => {
    const written: string[] = [];
    for (const d of demos) {
      const page = await open(d.page);
      await page.fill('#api-key', token('viewer').token);
      const button = page.locator(`#demo-run-${d.id}`);
      await button.waitFor();
      await button.click();
      const result = page.locator(`#demo-result-${d.id} .verdict`);
      await result.waitFor({ timeout: 30_000 });
      const text = (await result.textContent()) ?? '';
      expect(text, d.id).toMatch(d.expect);
      expect(text.startsWith('✓'), `${d.id}: ${text}`).toBe(true);
      expect(await page.locator(`#demo-result-${d.id} ol.steps li`).count()).toBeGreaterThan(0);
      const file = join(shots, `demo-${d.id}.png`);
      await page.screenshot({ path: file, fullPage: true });
      written.push(file);
      await page.close();
    }
    console.log(
      `screenshots of the demonstrations' results at 1,280 px:\n  ${written.join('\n  ')}`,
    );
  }, 120_000);

  it('renders every page with its panels and charts, with no horizontal overflow at 420, 1,280 and 1,920 px', async () => {
    const written: string[] = [];
    for (const p of pages) {
      for (const width of [420, 1280, 1920]) {
        const page = await open(p.hash, width);
        await page.waitForSelector(p.ready, { timeout: 10_000 });
        if (p.hash.startsWith('#/') && !p.hash.startsWith('#/docs') && p.hash !== '#/') {
          // Each chart the panel declares is drawn (uPlot's canvas), with a caption.
          await page.waitForSelector('.chart canvas', { timeout: 10_000 });
          expect(await page.locator('.chart figcaption').count()).toBeGreaterThan(0);
          // Every figure says what it means (hover text).
          const stats = page.locator('section[id^="panel-"] .stat');
          expect(await stats.count()).toBeGreaterThan(0);
          expect(await page.locator('section[id^="panel-"] .stat:not([title])').count()).toBe(0);
        }
        const overflow = (await page.evaluate(
          'document.documentElement.scrollWidth - document.documentElement.clientWidth',
        )) as number;
        expect(
          overflow,
          `${p.name} at ${width} px overflows by ${overflow} px`,
        ).toBeLessThanOrEqual(0);
        if (width === 1280) {
          // Let the charts gather a few samples first.
          await page.waitForTimeout(600);
          const file = join(shots, `${p.name}.png`);
          await page.screenshot({ path: file, fullPage: true });
          written.push(file);
        }
        await page.close();
      }
    }
    console.log(`screenshots at 1,280 px:\n  ${written.join('\n  ')}`);
  }, 300_000); // a page load per page and width (3 widths) on a shared 2-core machine

  it('refuses a demonstration without a key, and says why on the page', async () => {
    const page = await open('#/cache');
    await page.locator('#demo-run-cache-stampede').click();
    await expect
      .poll(async () => page.textContent('#demo-result-cache-stampede'), { timeout: 10_000 })
      .toMatch(/refused: .*API key/);
    await page.close();
    errors = errors.filter((e) => !/401/.test(e));
  });

  it('renders the docs as pages of the site, with links between them that work', async () => {
    const page = await open('#/docs/docs/architecture.md');
    await page.waitForSelector('article.doc h1');
    // No raw Markdown: headings, lists and code are HTML.
    expect(await page.locator('article.doc h2').count()).toBeGreaterThan(0);
    // Links to other pages stay in the site, and open the rendered page.
    const hrefs = await page.$$eval('article.doc a', (as) => as.map((a) => a.getAttribute('href')));
    expect(hrefs.filter((h) => h?.endsWith('.md'))).not.toHaveLength(0);
    expect(hrefs.filter((h) => h?.endsWith('.md') && !h.startsWith('#/docs/'))).toEqual([]);
    const link = page.locator('article.doc a[href^="#/docs/docs/patterns/"]').first();
    const target = (await link.getAttribute('href'))!;
    await link.click();
    await page.waitForFunction(`location.hash === ${JSON.stringify(target)}`);
    await page.waitForSelector('article.doc h1');
    expect(await page.textContent('.crumbs')).toContain(target.slice('#/docs/'.length));
    await page.close();
  });

  it('is usable from the keyboard: a skip link first, then the navigation', async () => {
    const page = await open('#/');
    await page.waitForSelector('#cards .stat');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement?.id')).toBe('main');
    // The navigation's links reach every page; Enter on one opens it.
    await page.focus('nav a[href="#/cache"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#panel-cache .stat');
    expect(await page.getAttribute('nav a[href="#/cache"]', 'aria-current')).toBe('page');
    await page.close();
  });

  it('uploads a course video from the media page straight to the storage server and plays it back', async () => {
    const page = await open('#/media');
    const seen: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') seen.push(new URL(r.url()).origin);
    });
    // As a demo instructor, to one of their own courses.
    const instructor = token('instructor');
    const { courses } = (await (await fetch(`${platform.url}/api/catalog/courses`)).json()) as {
      courses: { id: string; instructor: string }[];
    };
    const course = courses.find((c) => c.instructor === instructor.subject)!;
    await page.fill('#api-key', instructor.token);
    await page.waitForSelector(`#media-course option[value="${course.id}"]`, { state: 'attached' });
    await page.selectOption('#media-course', course.id);
    const bytes = Buffer.alloc(64 * 1024, 7);
    await page.setInputFiles('#media-file', {
      name: 'intro.mp4',
      mimeType: 'video/mp4',
      buffer: bytes,
    });
    await page.click('#media-form button[type=submit]');
    await page
      .locator('#media-status')
      .filter({ hasText: /uploaded|refused|failed/ })
      .waitFor({ timeout: 15_000 });
    expect(await page.textContent('#media-status')).toContain(`uploaded ${bytes.length} bytes`);
    // The file went to the storage server's origin, not the platform's.
    const storage = seen.find((o) => o !== platform.url);
    expect(storage).toBeDefined();
    const src = await page.getAttribute('#media-video', 'src');
    expect(src?.startsWith(storage!)).toBe(true);
    const played = Buffer.from(await (await fetch(src!)).arrayBuffer());
    expect(played.equals(bytes)).toBe(true);
    await expect
      .poll(async () => page.textContent('#panel-media'), { timeout: 10_000 })
      .toMatch(/bytes moved directly[\d.,]+ (KiB|MiB)/);
    await page.close();
  });

  it('logged no console errors on any page', () => {
    expect(errors).toEqual([]);
  });
});
