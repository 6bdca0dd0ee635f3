import { describe, expect, it } from 'vitest';
import { isUuid, uuidV7Time } from '../../src/core/ids.js';
import { ManualClock, UuidV7Generator } from '../../src/core/index.js';

describe('UuidV7Generator', () => {
  it('makes RFC 9562 version 7 ids carrying the clock time', () => {
    const clock = new ManualClock(1_700_000_000_123);
    const id = new UuidV7Generator(clock).next();
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(id[19]);
    expect(uuidV7Time(id)).toBe(1_700_000_000_123);
  });

  it('is strictly increasing within one millisecond and when the clock steps back', async () => {
    const clock = new ManualClock(1_000_000);
    const gen = new UuidV7Generator(clock);
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) ids.push(gen.next());
    clock.set(1_000_005);
    ids.push(gen.next());
    const back = new UuidV7Generator({ now: () => 999_000, sleep: async () => {} });
    const a = back.next();
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(isUuid(a)).toBe(true);
  });
});
