import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referencePath } from '../../src/app/api-reference.js';
import { type Platform, startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { haveChromium, launchChromium } from '../support/browser.js';

const have = haveChromium('API reference in a browser');

/** Issue 19, point 1: the interactive reference page, as a new user opens it. */
describe.skipIf(!have)('API reference in a browser', () => {
  let platform: Platform;
  let browser: Browser;
  beforeAll(async () => {
    platform = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('renders every operation from the package alone, with no console error and no request elsewhere', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const elsewhere: string[] = [];
    const failed: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => failed.push(`${r.url()} ${r.failure()?.errorText}`));
    const origin = new URL(platform.url).origin;
    // Anything not from the platform itself (a CDN, fonts, a validator badge) is refused and counted.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin || url.startsWith('data:')) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });

    const res = await page.goto(`${platform.url}${referencePath}`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('.opblock', { timeout: 20_000 });
    const document = (await (await fetch(`${platform.url}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.values(document.paths).flatMap((p) => Object.keys(p)).length;
    expect(operations).toBeGreaterThan(30);
    await expect.poll(() => page.locator('.opblock').count(), { timeout: 10_000 }).toBe(operations);
    expect(await page.textContent('.info .title')).toContain('cloud-data-patterns');
    expect(await page.textContent('.info .title')).toContain('OAS 3.1');

    const dir = await mkdtemp(join(tmpdir(), 'cdp-api-reference-'));
    const top = join(dir, 'api-reference-1280.png');
    await page.screenshot({ path: top });
    console.log(`API reference screenshot: ${top}`);

    // Open one operation: its refusal codes and example bodies are on the page.
    const enroll = page.locator('.opblock-post', { hasText: '/api/enrollment/enrollments' });
    await enroll.locator('.opblock-summary').click();
    await expect
      .poll(() => enroll.textContent(), { timeout: 10_000 })
      .toContain('ALREADY_ENROLLED');
    const text = (await enroll.textContent()) ?? '';
    expect(text).toContain('Access: Bearer API key with role student or admin');
    expect(text).toContain('COURSE_NOT_FOUND');

    const opened = join(dir, 'api-reference-enroll-1280.png');
    await page.screenshot({ path: opened });
    console.log(`API reference screenshot, POST /api/enrollment/enrollments opened: ${opened}`);

    expect(errors).toEqual([]);
    expect(elsewhere).toEqual([]);
    expect(failed).toEqual([]);
    await page.close();
  }, 60_000);

  it('fits 420, 1,280 and 1,920 px wide with no horizontal overflow', async () => {
    for (const width of [420, 1280, 1920]) {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${platform.url}${referencePath}`);
      await page.waitForSelector('.opblock', { timeout: 20_000 });
      const scrollWidth = await page.evaluate('document.documentElement.scrollWidth');
      expect({ width, scrollWidth }).toEqual({ width, scrollWidth: width });
      await page.close();
    }
  }, 60_000);

  it('opens the page with a query string in its URL, without a redirect loop', async () => {
    const page = await browser.newPage();
    for (const path of [`${referencePath}?from=readme`, `${referencePath}/static/index.html?x=1`]) {
      const res = await page.goto(`${platform.url}${path}`);
      expect(res?.status()).toBe(200);
      expect(new URL(page.url()).search).toBe('');
      await page.waitForSelector('.opblock', { timeout: 20_000 });
    }
    await page.close();
  }, 60_000);
});
