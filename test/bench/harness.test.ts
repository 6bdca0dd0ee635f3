import { describe, expect, it } from 'vitest';
import { interleaveRounds, roundRatios } from '../../src/bench/harness.js';

describe('bench harness', () => {
  it('runs contenders in rotating order, one figure each per round after the warm-up', async () => {
    const calls: string[] = [];
    let n = 0;
    const make = (k: string) => async () => {
      calls.push(k);
      return ++n;
    };
    const rounds = await interleaveRounds({ a: make('a'), b: make('b'), c: make('c') }, 2, 1);
    expect(calls.join('')).toBe('abcbcacab');
    expect(rounds).toEqual({ a: [6, 8], b: [4, 9], c: [5, 7] });
  });

  it('pairs ratios by round and gives their quartiles', () => {
    // Round ratios 0.5, 1, 2, 4; the medians of each series would give 5 / 3 instead.
    expect(roundRatios([1, 2, 8, 20], [2, 2, 4, 5])).toEqual({ p25: 0.5, median: 1.5, p75: 2 });
    expect(roundRatios([3], [0])).toEqual({ p25: Number.NaN, median: Number.NaN, p75: Number.NaN });
  });
});
