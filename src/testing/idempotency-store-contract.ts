import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import {
  Idempotency,
  IdempotencyKeyInProgressError,
  IdempotencyKeyReusedError,
  type IdempotencyStore,
  type StoredResponse,
} from '../idempotency/index.js';
import { eventually } from './eventually.js';

/** Gives the store under test, which the caller opens in `beforeAll` and closes in `afterAll`. */
export type IdempotencyStoreFactory = () => IdempotencyStore;

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const times = { ttlMs: 24 * HOUR, leaseMs: 60_000 };

const scope = () => `scope-${randomBytes(6).toString('hex')}`;
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const response = (status: number, body: string): StoredResponse => ({
  status,
  headers: { 'content-type': 'application/json; charset=utf-8', location: '/things/1' },
  body: bytes(body),
});

/**
 * The idempotency store contract: every adapter passes the same cases. Each case uses its own
 * scope, so the store may hold other cases' keys.
 */
export function idempotencyStoreContract(store: IdempotencyStoreFactory): void {
  const begin = (s: string, key: string, fingerprint: string, now = T0) =>
    store().begin({ scope: s, key, fingerprint, now, ...times });

  it('starts a new key once: a second begin finds it in progress until its lease ends', async () => {
    const s = scope();
    const first = await begin(s, 'k1', 'fp');
    expect(first).toMatchObject({ outcome: 'started', recovered: false });
    expect(await begin(s, 'k1', 'fp', T0 + 1)).toEqual({
      outcome: 'in-progress',
      lockedUntil: T0 + times.leaseMs,
    });
  });

  it('replays the completed response, errors and binary bodies included, byte for byte', async () => {
    const s = scope();
    const r = await begin(s, 'k', 'fp');
    if (r.outcome !== 'started') throw new Error(`expected started, got ${r.outcome}`);
    const body = new Uint8Array([0, 255, 1, 0x7b, 10, 13, 0xe2, 0x82]);
    const kept: StoredResponse = { status: 503, headers: { 'retry-after': '5' }, body };
    expect(await store().complete(s, 'k', r.token, kept)).toBe(true);
    for (const at of [T0 + 1, T0 + times.leaseMs + 1, T0 + times.ttlMs - 1]) {
      const again = await begin(s, 'k', 'fp', at);
      expect(again.outcome).toBe('replay');
      if (again.outcome !== 'replay') return;
      expect(again.response.status).toBe(503);
      expect(again.response.headers).toEqual({ 'retry-after': '5' });
      expect([...again.response.body]).toEqual([...body]);
    }
    // A second complete of the same key keeps the first response.
    expect(await store().complete(s, 'k', r.token, response(200, 'other'))).toBe(false);
  });

  it('refuses the same key with another fingerprint, running, completed or after its lease', async () => {
    const s = scope();
    const r = await begin(s, 'k', 'fp-a');
    expect(await begin(s, 'k', 'fp-b')).toEqual({ outcome: 'mismatch' });
    expect(await begin(s, 'k', 'fp-b', T0 + times.leaseMs)).toEqual({ outcome: 'mismatch' });
    if (r.outcome !== 'started') throw new Error('not started');
    await store().complete(s, 'k', r.token, response(201, '{}'));
    expect(await begin(s, 'k', 'fp-b', T0 + 5)).toEqual({ outcome: 'mismatch' });
  });

  it('lets the same request take a key over when its lease ran out without a response', async () => {
    const s = scope();
    const dead = await begin(s, 'k', 'fp');
    const retry = await begin(s, 'k', 'fp', T0 + times.leaseMs);
    expect(retry).toMatchObject({ outcome: 'started', recovered: true });
    if (dead.outcome !== 'started' || retry.outcome !== 'started') return;
    expect(retry.token).not.toBe(dead.token);
    // The first holder's late response is not kept; the new holder's is.
    expect(await store().complete(s, 'k', dead.token, response(200, 'late'))).toBe(false);
    expect(await store().complete(s, 'k', retry.token, response(200, 'new'))).toBe(true);
    const again = await begin(s, 'k', 'fp', T0 + times.leaseMs + 1);
    expect(again.outcome === 'replay' && Buffer.from(again.response.body).toString()).toBe('new');
  });

  it('releases a key only for its holder, and only before a response is kept', async () => {
    const s = scope();
    const r = await begin(s, 'k', 'fp');
    if (r.outcome !== 'started') throw new Error('not started');
    await store().release(s, 'k', 'not-the-token');
    expect((await begin(s, 'k', 'fp', T0 + 1)).outcome).toBe('in-progress');
    await store().release(s, 'k', r.token);
    const next = await begin(s, 'k', 'fp-other', T0 + 2);
    expect(next).toMatchObject({ outcome: 'started', recovered: false });
    if (next.outcome !== 'started') return;
    await store().complete(s, 'k', next.token, response(200, 'kept'));
    await store().release(s, 'k', next.token);
    expect((await begin(s, 'k', 'fp-other', T0 + 3)).outcome).toBe('replay');
  });

  it('expires a key after its ttl: any request starts it afresh; purge keeps live keys', async () => {
    const s = scope();
    const r = await begin(s, 'old', 'fp');
    if (r.outcome !== 'started') throw new Error('not started');
    await store().complete(s, 'old', r.token, response(200, 'old'));
    const live = await begin(s, 'live', 'fp', T0 + HOUR);
    if (live.outcome !== 'started') throw new Error('not started');
    await store().complete(s, 'live', live.token, response(200, 'live'));
    const end = T0 + times.ttlMs;
    expect(await begin(s, 'old', 'fp-new', end)).toMatchObject({
      outcome: 'started',
      recovered: false,
    });
    expect(await store().purgeExpired(end)).toBeGreaterThanOrEqual(0);
    expect((await begin(s, 'live', 'fp', end)).outcome).toBe('replay');
    // Purged (or expired by the engine): the key is gone for good.
    const purged = scope();
    await begin(purged, 'k', 'fp');
    await store().purgeExpired(T0 + times.ttlMs);
    expect((await begin(purged, 'k', 'fp-2', T0 + times.ttlMs)).outcome).toBe('started');
  });

  it('keeps scopes apart, and keys whose text would collide when joined', async () => {
    const s = scope();
    expect((await begin(`${s}:a`, 'b', 'fp')).outcome).toBe('started');
    expect((await begin(s, 'a:b', 'fp')).outcome).toBe('started');
    expect((await begin(`${s}-other`, 'a:b', 'fp')).outcome).toBe('started');
    for (const key of ['__proto__', 'constructor', 'toString', "'; DROP TABLE x; --", ' ~'])
      expect((await begin(s, key, 'fp')).outcome).toBe('started');
    expect((await begin(s, '__proto__', 'fp')).outcome).toBe('in-progress');
  });

  it('gives exactly one of 50 racing begins the key', async () => {
    const s = scope();
    const results = await Promise.all(Array.from({ length: 50 }, () => begin(s, 'race', 'fp')));
    expect(results.filter((r) => r.outcome === 'started')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'in-progress')).toHaveLength(49);
  });

  it('runs a handler once for 100 concurrent identical calls; all get the same response', async () => {
    const idem = new Idempotency({ store: store(), clock: new ManualClock(T0), pollMs: 3_600_000 });
    const s = scope();
    let effects = 0;
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const calls = Array.from({ length: 100 }, () =>
      idem.run(s, 'k', 'fp', async () => {
        effects++;
        await gate;
        return response(201, `{"n":${effects}}`);
      }),
    );
    await eventually(() => effects === 1, 'the first call to run');
    open();
    const out = await Promise.all(calls);
    expect(effects).toBe(1);
    expect(out.filter((o) => !o.replayed)).toHaveLength(1);
    const first = out[0]!.response;
    for (const o of out) {
      expect(o.response.status).toBe(201);
      expect(o.response.headers).toEqual(first.headers);
      expect(Buffer.from(o.response.body).toString()).toBe('{"n":1}');
    }
  });

  it('refuses a duplicate with 409 once it waited waitMs, then replays after the first ends', async () => {
    const clock = new ManualClock(T0);
    const idem = new Idempotency({ store: store(), clock, waitMs: 2_000, pollMs: 5_000 });
    const s = scope();
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let running = false;
    const first = idem.run(s, 'k', 'fp', async () => {
      running = true;
      await gate;
      return response(200, 'first');
    });
    await eventually(() => running, 'the first call to hold the key');
    const duplicate = idem
      .run(s, 'k', 'fp', async () => response(200, 'second'))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await eventually(() => clock.pendingSleeps > 0, 'the duplicate to wait');
    await clock.advance(2_000);
    const refused = await duplicate;
    expect(refused).toBeInstanceOf(IdempotencyKeyInProgressError);
    expect((refused as IdempotencyKeyInProgressError).statusCode).toBe(409);
    open();
    expect((await first).replayed).toBe(false);
    const later = await idem.run(s, 'k', 'fp', async () => response(200, 'third'));
    expect(later.replayed).toBe(true);
    expect(Buffer.from(later.response.body).toString()).toBe('first');
    const other = await idem
      .run(s, 'k', 'fp-2', async () => response(200, 'x'))
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(IdempotencyKeyReusedError);
  });

  it('gives the key up when the handler throws, so that a retry runs it', async () => {
    const idem = new Idempotency({ store: store(), clock: new ManualClock(T0) });
    const s = scope();
    await expect(
      idem.run(s, 'k', 'fp', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const retry = await idem.run(s, 'k', 'fp', async () => response(200, 'ok'));
    expect(retry.replayed).toBe(false);
  });
}
