import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { haveChromium, launchChromium } from '../support/browser.js';

const have = haveChromium('dashboard in a browser');

describe.skipIf(!have)('dashboard in a browser', () => {
  let platform: Platform;
  let browser: Browser;
  beforeAll(async () => {
    platform = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
      streamIntervalMs: 200,
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  });

  it('shows engines and panels, and updates them live as data changes', async () => {
    const page = await browser.newPage();
    await page.goto(`${platform.url}/dashboard/`);
    await page.waitForSelector('#engines tbody tr');
    expect(await page.textContent('#engines tbody')).toContain('pglite');
    expect(await page.textContent('#engines tbody')).toContain('up');
    const panel = page.locator('#panel-catalog');
    await expect.poll(async () => panel.textContent(), { timeout: 10_000 }).toContain('courses5');
    const admin = platform.demoKeys!.keys.find((k) => k.role === 'admin')!.token;
    const res = await fetch(`${platform.url}/api/catalog/courses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ title: 'Live', topic: 't', instructor: 'i', priceCents: 1 }),
    });
    expect(res.status).toBe(201);
    await expect.poll(async () => panel.textContent(), { timeout: 10_000 }).toContain('courses6');
    expect(await page.textContent('#modules')).toContain('catalog');
    await page.close();
  });

  it('uploads a course video from the page straight to the storage server and plays it back', async () => {
    const page = await browser.newPage();
    const seen: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') seen.push(new URL(r.url()).origin);
    });
    await page.goto(`${platform.url}/dashboard/`);
    // As a demo instructor, to one of their own courses.
    const instructor = platform.demoKeys!.keys.find((k) => k.role === 'instructor')!;
    const { courses } = (await (await fetch(`${platform.url}/api/catalog/courses`)).json()) as {
      courses: { id: string; instructor: string }[];
    };
    const course = courses.find((c) => c.instructor === instructor.subject)!;
    await page.fill('#media-key', instructor.token);
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
    const panel = page.locator('#panel-media');
    await expect
      .poll(async () => panel.textContent(), { timeout: 10_000 })
      .toMatch(/bytes moved directly[\d,]+ B/);
    await page.close();
  });
});
