import { describe, expect, it } from 'vitest';
import { Lifecycle, ManualClock, TimeoutError, withTimeout } from '../../src/core/index.js';

describe('Lifecycle', () => {
  it('closes in reverse order of opening, each once, even when one fails', async () => {
    const order: string[] = [];
    const lc = new Lifecycle();
    lc.defer('a', () => void order.push('a'));
    lc.defer('b', () => {
      order.push('b');
      throw new Error('b failed');
    });
    lc.defer('c', async () => void order.push('c'));
    await expect(lc.close()).rejects.toThrow('b failed');
    await lc.close().catch(() => {});
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('refuses new resources once closing, and closes them', async () => {
    const lc = new Lifecycle();
    await lc.close();
    let closed = false;
    const late = {
      close: () => {
        closed = true;
      },
    };
    expect(() => lc.use('late', late)).toThrow(/shutdown has begun/);
    await Promise.resolve();
    expect(closed).toBe(true);
  });
});

describe('ManualClock and withTimeout', () => {
  it('wakes sleepers in time order and times out on the clock', async () => {
    const clock = new ManualClock(0);
    const woke: number[] = [];
    void clock.sleep(30).then(() => woke.push(30));
    void clock.sleep(10).then(() => woke.push(10));
    await clock.advance(20);
    expect(woke).toEqual([10]);
    await clock.advance(10);
    expect(woke).toEqual([10, 30]);
    const never = new Promise(() => {});
    const p = withTimeout(never, 50, 'the thing', clock).catch((e: unknown) => e);
    await clock.advance(50);
    expect(await p).toBeInstanceOf(TimeoutError);
  });
});
