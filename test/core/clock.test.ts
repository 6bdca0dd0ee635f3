import { describe, expect, it } from 'vitest';
import { isoTime } from '../../src/core/clock.js';

describe('isoTime', () => {
  it('writes what Date#toISOString writes, within a second and across seconds', () => {
    const base = Date.UTC(2026, 11, 3, 8, 59, 59, 0);
    const times = [
      0,
      1,
      9,
      10,
      99,
      100,
      999,
      1000,
      base,
      base + 7,
      base + 42,
      base + 999,
      base + 1000,
      base + 1001,
      base + 60_000 + 5,
      base + 7,
      -1,
      -1500,
      1.5,
      253402300799999,
      253402300800000 + 12,
    ];
    for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    for (let ms = base; ms < base + 3000; ms += 37) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('fails as Date does on a time it cannot write', () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1000)).toThrow(RangeError);
  });
});
