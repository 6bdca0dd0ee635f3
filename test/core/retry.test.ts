import { describe, expect, it } from 'vitest';
import { ManualClock, retry, TimeoutError } from '../../src/core/index.js';
import { backoffDelay } from '../../src/core/retry.js';

describe('retry', () => {
  it('grows the delay exponentially up to the cap, with full jitter below it', () => {
    expect(
      [1, 2, 3, 4, 10].map((a) =>
        backoffDelay(a, { jitter: 'none', baseDelayMs: 100, maxDelayMs: 1000 }),
      ),
    ).toEqual([100, 200, 400, 800, 1000]);
    for (let a = 1; a < 8; a++) {
      const d = backoffDelay(a, { baseDelayMs: 100, maxDelayMs: 1000 });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(1000, 100 * 2 ** (a - 1)));
    }
  });

  it('retries until success and waits on the clock between attempts', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const p = retry(
      async () => {
        calls++;
        if (calls < 3) throw new Error('flaky');
        return 'ok';
      },
      { clock, jitter: 'none', baseDelayMs: 100 },
    );
    await clock.advance(99);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    await clock.advance(200);
    await expect(p).resolves.toBe('ok');
    expect(calls).toBe(3);
  });

  it('rethrows the last error after the attempts', async () => {
    const clock = new ManualClock();
    const p = retry(async (n) => Promise.reject(new Error(`fail ${n}`)), {
      clock,
      attempts: 3,
      jitter: 'none',
    });
    const settled = p.catch((e: Error) => e.message);
    await clock.advance(10_000);
    expect(await settled).toBe('fail 3');
  });

  it('stops at once when retryIf says so', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('fatal');
        },
        { retryIf: () => false },
      ),
    ).rejects.toThrow('fatal');
    expect(calls).toBe(1);
  });

  it('gives up with a TimeoutError when the deadline would pass', async () => {
    const clock = new ManualClock();
    const p = retry(async () => Promise.reject(new Error('down')), {
      clock,
      attempts: 100,
      jitter: 'none',
      baseDelayMs: 100,
      deadlineMs: 1000,
    });
    const settled = p.catch((e: unknown) => e);
    await clock.advance(5000);
    const err = await settled;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).cause).toBeInstanceOf(Error);
    expect(clock.now()).toBeLessThanOrEqual(5000);
  });

  it('refuses a nonsensical attempt count', async () => {
    await expect(retry(async () => 1, { attempts: 0 })).rejects.toThrow(/attempts/);
  });
});
