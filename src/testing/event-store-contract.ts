import { expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { ConcurrencyError, ValidationError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import {
  EventIdReusedError,
  type EventStore,
  type RecordedEvent,
  UnknownEventError,
  Upcasters,
} from '../events/index.js';
import { eventually } from './eventually.js';

export interface StoreFactory {
  /** A store over the shared engine, with these options. */
  open(options: { clock?: ManualClock; upcasters?: Upcasters }): Promise<EventStore>;
}

let n = 0;
/** Stream ids unique per test run: suites share one database per file. */
export function sid(prefix = 's'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${n++}`;
}

async function readAllOf(store: EventStore, after = 0): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let pos = after;
  for (;;) {
    const { events, next } = await store.readAll({ after: pos, limit: 7 });
    out.push(...events);
    if (next === pos) return out;
    pos = next;
  }
}

/**
 * Wait until the global log is readable up to `position`. On a shared PostgreSQL server any
 * open transaction (of any database) holds readers back for a while: they wait, never skip.
 */
export async function waitReadable(store: EventStore, position: number): Promise<void> {
  await eventually(
    async () => (await store.readAll({ after: position - 1, limit: 1 })).next >= position,
    `position ${position} to be readable`,
    { timeoutMs: 30_000, intervalMs: 5 },
  );
}

/** The event store contract: every adapter passes the same tests. */
export function eventStoreContract(factory: StoreFactory): void {
  it('appends events with stream versions from 1, increasing positions, the clock time and metadata', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = await factory.open({ clock });
    const s = sid();
    const r1 = await store.append(
      s,
      [
        { type: 'A', data: { x: 1 } },
        { type: 'B', data: 'two' },
      ],
      {
        expected: 'no_stream',
        metadata: { correlationId: 'c-1' },
      },
    );
    await clock.advance(5);
    const r2 = await store.append(
      s,
      [{ type: 'C', data: [1, { y: null }], metadata: { causationId: 'k-9' } }],
      {
        expected: 2,
      },
    );
    expect(r1.version).toBe(2);
    expect(r1.positions).toHaveLength(2);
    expect(r1.positions[1]).toBeGreaterThan(r1.positions[0]!);
    expect(r2.version).toBe(3);
    expect(r2.position).toBeGreaterThan(r1.position);
    const events = await store.readStream(s);
    expect(events.map((e) => [e.type, e.version, e.position])).toEqual([
      ['A', 1, r1.positions[0]],
      ['B', 2, r1.positions[1]],
      ['C', 3, r2.position],
    ]);
    expect(events[0]!.data).toEqual({ x: 1 });
    expect(events[2]!.data).toEqual([1, { y: null }]);
    expect(events[0]!.metadata.correlationId).toBe('c-1');
    expect(events[2]!.metadata.causationId).toBe('k-9');
    expect(events[0]!.recordedAt).toBe(1_700_000_000_000);
    expect(events[2]!.recordedAt).toBe(1_700_000_000_005);
    expect(events[0]!.schemaVersion).toBe(1);
    expect(await store.streamVersion(s)).toBe(3);
    expect(await store.streamVersion(sid())).toBe(0);
  });

  it('keeps strings with quotes, backslashes and unicode intact', async () => {
    const store = await factory.open({});
    const s = sid();
    const data = {
      q: 'a "quoted" \\ back\\slash \' {braces} , comma',
      u: 'žluťoučký 🐎',
      nested: { arr: ['x,y', '"'] },
    };
    await store.append(s, [{ type: 'Q', data }]);
    expect((await store.readStream(s))[0]!.data).toEqual(data);
  });

  it('enforces every expected-version mode and reports expected and actual', async () => {
    const store = await factory.open({});
    const s = sid();
    const conflict = async (p: Promise<unknown>, expected: unknown, actual: unknown) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConcurrencyError);
      expect((err as ConcurrencyError).code).toBe('CONCURRENCY_CONFLICT');
      expect((err as ConcurrencyError).expected).toEqual(expected);
      expect((err as ConcurrencyError).actual).toEqual(actual);
    };
    await conflict(
      store.append(s, [{ type: 'A', data: 1 }], { expected: 'stream_exists' }),
      'stream_exists',
      0,
    );
    await conflict(store.append(s, [{ type: 'A', data: 1 }], { expected: 3 }), 3, 0);
    await store.append(s, [{ type: 'A', data: 1 }], { expected: 'no_stream' });
    await conflict(
      store.append(s, [{ type: 'A', data: 1 }], { expected: 'no_stream' }),
      'no_stream',
      1,
    );
    await conflict(store.append(s, [{ type: 'A', data: 1 }], { expected: 0 }), 'no_stream', 1);
    await store.append(s, [{ type: 'A', data: 2 }], { expected: 'stream_exists' });
    await conflict(store.append(s, [{ type: 'A', data: 1 }], { expected: 1 }), 1, 2);
    await store.append(s, [{ type: 'A', data: 3 }], { expected: 2 });
    await store.append(s, [{ type: 'A', data: 4 }], { expected: 'any' });
    await store.append(s, [{ type: 'A', data: 5 }]);
    const t = sid();
    await store.append(t, [{ type: 'A', data: 1 }], { expected: 'any' });
    expect((await store.readStream(s)).map((e) => e.data)).toEqual([1, 2, 3, 4, 5]);
    expect(await store.streamVersion(t)).toBe(1);
    await expect(
      store.append(s, [{ type: 'A', data: 1 }], { expected: -1 }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('appends several events all or nothing', async () => {
    const store = await factory.open({});
    const s = sid();
    await store.append(s, [{ type: 'A', data: 1 }]);
    await expect(
      store.append(
        s,
        [
          { type: 'B', data: 1 },
          { type: 'C', data: 2 },
        ],
        { expected: 5 },
      ),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await store.readStream(s)).map((e) => e.type)).toEqual(['A']);
  });

  it('is idempotent on event ids: the same append returns the original positions', async () => {
    const store = await factory.open({});
    const s = sid();
    const ids = [newId(), newId()];
    const events = ids.map((id, i) => ({ id, type: 'A', data: i }));
    const first = await store.append(s, events, { expected: 'no_stream' });
    const again = await store.append(s, events, { expected: 'no_stream' });
    expect(first.idempotent).toBe(false);
    expect(again.idempotent).toBe(true);
    expect(again.positions).toEqual(first.positions);
    expect(again.version).toBe(2);
    // A replay with 'any' (found by the unique index) and with an exact version (refused by its
    // own expectation, then found) answers the same way.
    const anyAgain = await store.append(s, events);
    expect(anyAgain).toMatchObject({ idempotent: true, positions: first.positions, version: 2 });
    const third = { id: newId(), type: 'A', data: 3 };
    const exact = await store.append(s, [third], { expected: 2 });
    const exactAgain = await store.append(s, [third], { expected: 2 });
    expect(exactAgain).toMatchObject({ idempotent: true, positions: exact.positions, version: 3 });
    await expect(store.append(s, [{ type: 'A', data: 4 }], { expected: 2 })).rejects.toMatchObject({
      expected: 2,
      actual: 3,
    });
    expect(await store.readStream(s)).toHaveLength(3);
    // Some ids new, some old: refused, nothing written.
    await expect(store.append(s, [events[0]!, { type: 'A', data: 9 }])).rejects.toBeInstanceOf(
      EventIdReusedError,
    );
    // Same ids to another stream: refused.
    await expect(store.append(sid(), events)).rejects.toBeInstanceOf(EventIdReusedError);
    expect(await store.readStream(s)).toHaveLength(3);
    await expect(
      store.append(s, [
        { id: ids[0], type: 'A', data: 1 },
        { id: ids[0], type: 'A', data: 1 },
      ]),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('rejects data that is not JSON-serializable before writing anything', async () => {
    const store = await factory.open({});
    const s = sid();
    await store.append(s, [{ type: 'A', data: 1 }]);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [
      undefined,
      () => 1,
      10n,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      new Date(0),
      new Map(),
      cyclic,
      { deep: [1, { x: Symbol('s') }] },
    ];
    for (const data of bad) {
      const err = await store
        .append(s, [
          { type: 'B', data: 1 },
          { type: 'A', data },
        ])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(/JSON/);
    }
    // The message names where the value is, and what is wrong with it.
    const deep = await store
      .append(s, [{ type: 'A', data: { ok: [1, 'x'], deep: [1, { x: Number.NaN }] } }])
      .catch((e: unknown) => e);
    expect((deep as Error).message).toContain('events[0].data.deep[1].x is NaN');
    const meta = await store
      .append(s, [{ type: 'A', data: 1, metadata: { at: new Date(0) } }])
      .catch((e: unknown) => e);
    expect((meta as Error).message).toContain('events[0].metadata.at is a Date');
    await expect(store.append(s, [])).rejects.toBeInstanceOf(ValidationError);
    await expect(store.append('', [{ type: 'A', data: 1 }])).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(store.append(s, [{ type: '', data: 1 }])).rejects.toBeInstanceOf(ValidationError);
    await expect(
      store.append(s, [{ id: 'not-a-uuid', type: 'A', data: 1 }]),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(await store.streamVersion(s)).toBe(1);
  });

  it('reads a stream forwards and backwards from a version, with a limit', async () => {
    const store = await factory.open({});
    const s = sid();
    await store.append(
      s,
      Array.from({ length: 10 }, (_, i) => ({ type: 'N', data: i + 1 })),
    );
    const data = (es: RecordedEvent[]) => es.map((e) => e.data);
    expect(data(await store.readStream(s, { from: 4, limit: 3 }))).toEqual([4, 5, 6]);
    expect(data(await store.readStream(s, { from: 9 }))).toEqual([9, 10]);
    expect(data(await store.readStream(s, { direction: 'backward', limit: 3 }))).toEqual([
      10, 9, 8,
    ]);
    expect(data(await store.readStream(s, { direction: 'backward', from: 2 }))).toEqual([2, 1]);
    expect(await store.readStream(s, { from: 11 })).toEqual([]);
    expect(await store.readStream(sid())).toEqual([]);
  });

  it('reads the global log in batches from a position and by event type', async () => {
    const store = await factory.open({});
    const start =
      (await store.readAll({ after: 0, limit: 1 })).events.length === 0
        ? 0
        : await lastPosition(store);
    const a = sid('ga');
    const b = sid('gb');
    const r1 = await store.append(a, [
      { type: 'GA', data: 1 },
      { type: 'GB', data: 2 },
    ]);
    const r2 = await store.append(b, [{ type: 'GA', data: 3 }]);
    const r3 = await store.append(a, [{ type: 'GC', data: 4 }]);
    await waitReadable(store, r3.position);
    const all = (await readAllOf(store, start)).filter((e) => e.streamId === a || e.streamId === b);
    expect(all.map((e) => e.data)).toEqual([1, 2, 3, 4]);
    expect(all.map((e) => e.position)).toEqual([...r1.positions, ...r2.positions, ...r3.positions]);
    const positions = (await readAllOf(store, 0)).map((e) => e.position);
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    expect(new Set(positions).size).toBe(positions.length);
    const fromMiddle = await store.readAll({ after: r1.positions[1]!, limit: 1 });
    expect(fromMiddle.events.map((e) => e.data)).toEqual([3]);
    expect(fromMiddle.next).toBe(r2.position);
    const byType = await store.readAll({ after: start, types: ['GA', 'GC'] });
    expect(
      byType.events.filter((e) => e.streamId === a || e.streamId === b).map((e) => e.data),
    ).toEqual([1, 3, 4]);
    const end = await store.readAll({ after: r3.position, types: ['nothing-of-this-type'] });
    expect(end.events).toEqual([]);
    expect(end.next).toBeGreaterThanOrEqual(r3.position);
  });

  it('upcasts old schema versions on read and names an unknown type and version', async () => {
    const plain = await factory.open({});
    const s = sid();
    await plain.append(s, [
      { type: 'Rated', data: { stars: 4 }, schemaVersion: 1 },
      { type: 'Rated', data: { rating: 3, scale: 5 }, schemaVersion: 2 },
      { type: 'Mystery', data: {}, schemaVersion: 7 },
      { type: 'Rated', data: { rating: 1, scale: 5 }, schemaVersion: 2 },
    ]);
    const upcasters = new Upcasters([
      {
        type: 'Rated',
        currentVersion: 2,
        steps: { 1: (d: { stars: number }) => ({ rating: d.stars, scale: 5 }) },
      },
    ]);
    const store = await factory.open({ upcasters });
    const head = await store.readStream(s, { limit: 2 });
    expect(head.map((e) => e.data)).toEqual([
      { rating: 4, scale: 5 },
      { rating: 3, scale: 5 },
    ]);
    expect(head[0]!.schemaVersion).toBe(2);
    expect(head[0]!.storedSchemaVersion).toBe(1);
    const err = await store.readStream(s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownEventError);
    const u = err as UnknownEventError;
    expect(u.message).toContain('"Mystery"');
    expect(u.message).toContain('schema version 7');
    expect(u.eventType).toBe('Mystery');
    expect(u.schemaVersion).toBe(7);
    expect(u.version).toBe(3);
    expect(u.readSoFar.map((e) => e.version)).toEqual([1, 2]);
    // A version newer than the code knows is refused too.
    await plain.append(s, [{ type: 'Rated', data: {}, schemaVersion: 3 }]);
    const newer = await store.readStream(s, { from: 5 }).catch((e: unknown) => e);
    expect((newer as UnknownEventError).message).toMatch(/only up to schema version 2/);
    // New events get the current version by default.
    await store.append(s, [{ type: 'Rated', data: { rating: 5, scale: 5 } }]);
    expect((await plain.readStream(s, { from: 6 }))[0]!.storedSchemaVersion).toBe(2);
  });

  it('stores snapshots per stream and key, never replacing a newer one with an older one', async () => {
    const store = await factory.open({});
    const s = sid();
    expect(await store.loadSnapshot(s, 'k1')).toBeUndefined();
    await store.saveSnapshot({ streamId: s, key: 'k1', version: 10, state: { total: 10 } });
    await store.saveSnapshot({ streamId: s, key: 'k1', version: 5, state: { total: 5 } });
    await store.saveSnapshot({ streamId: s, key: 'k2', version: 3, state: { other: true } });
    expect(await store.loadSnapshot(s, 'k1')).toMatchObject({ version: 10, state: { total: 10 } });
    expect(await store.loadSnapshot(s, 'k2')).toMatchObject({ version: 3, state: { other: true } });
    await store.saveSnapshot({ streamId: s, key: 'k1', version: 12, state: { total: 12 } });
    expect(await store.loadSnapshot(s, 'k1')).toMatchObject({ version: 12 });
  });
}

/** The store's last global position (0 when empty), read page by page through readAll. */
export async function lastPosition(store: EventStore): Promise<number> {
  let pos = 0;
  for (;;) {
    const { next } = await store.readAll({ after: pos, limit: 10_000 });
    if (next === pos) return pos;
    pos = next;
  }
}
