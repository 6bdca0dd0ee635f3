import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { describe, it } from 'vitest';

/** Debian's Chromium (no browser download here); `.ci/run` installs it. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether a browser suite can run. Without Chromium it prints one `skipped:` line; under
 * CI=true it registers a failing test instead, because CI must run the browser suites.
 */
export function haveChromium(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  console.log(`skipped: ${suite} (install Debian's chromium: ${CHROMIUM})`);
  if (process.env.CI === 'true') {
    describe(suite, () => {
      it('runs under CI (needs chromium)', () => {
        throw new Error(`${CHROMIUM} is missing under CI=true: .ci/run installs it`);
      });
    });
  }
  return false;
}

/** Headless Chromium with nothing that reaches the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
