import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcurrencyError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import {
  type AppendResult,
  type EventStore,
  type ExpectedVersion,
  MemoryEventStore,
  type RecordedEvent,
  SqlEventStore,
} from '../../src/events/index.js';
import { lastPosition } from '../../src/testing/event-store-contract.js';
import { createTempDatabase } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';

/**
 * Racing appends per expected-version mode, checked against a reference model: each stream's
 * versions are 1..n without gaps, every successful append holds exactly the versions its
 * expectation allows, every refusal is a ConcurrencyError whose actual contradicts the
 * expectation, and a reader tailing the global log during the race sees every committed event
 * exactly once, in position order. CDP_RACE_APPENDS sets the number per mode (default 10,000).
 */
type Mode = 'any' | 'no_stream' | 'stream_exists' | 'exact';
const MODES: Mode[] = ['any', 'no_stream', 'stream_exists', 'exact'];
const PER_RUN = 500;

interface Op {
  stream: number;
  count: number;
  mode: Mode | 'create';
}

interface Outcome {
  op: Op;
  expected: ExpectedVersion;
  ids: string[];
  result?: AppendResult;
  error?: unknown;
}

async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

/**
 * Follow the global log until told to stop and then until `stop.upTo` is reached: readers may
 * be held back by any open transaction on the server (other tests, other databases), so the
 * end is a position, not an empty batch. Gives up 60 s after stop (then events are missing).
 */
async function tail(
  store: EventStore,
  after: number,
  into: RecordedEvent[],
  stop: { done: boolean; upTo: number },
): Promise<number> {
  let pos = after;
  let deadline = Number.POSITIVE_INFINITY;
  for (;;) {
    const finished = stop.done;
    if (finished && deadline === Number.POSITIVE_INFINITY) deadline = Date.now() + 60_000;
    const { events, next } = await store.readAll({ after: pos, limit: 200 });
    into.push(...events);
    if (next === pos) {
      if (finished && (pos >= stop.upTo || Date.now() > deadline)) return pos;
      await new Promise((r) => setTimeout(r, 2));
    }
    pos = next;
  }
}

let runSeq = 0;

async function race(
  store: EventStore,
  mode: Mode,
  ops: Op[],
  concurrency: number,
): Promise<string[]> {
  const prefix = `race-${mode}-${process.pid}-${runSeq++}`;
  const violations: string[] = [];
  const start = await lastPosition(store);
  const seen: RecordedEvent[] = [];
  const stop = { done: false, upTo: 0 };
  const reader = tail(store, start, seen, stop);
  const outcomes: Outcome[] = [];
  await pool(ops, concurrency, async (op) => {
    const stream = `${prefix}-${op.stream}`;
    let expected: ExpectedVersion;
    if (op.mode === 'exact') expected = await store.streamVersion(stream);
    else if (op.mode === 'create') expected = 'no_stream';
    else expected = op.mode;
    const ids = Array.from({ length: op.count }, () => newId());
    const o: Outcome = { op, expected, ids };
    try {
      o.result = await store.append(
        stream,
        ids.map((id, i) => ({ id, type: 'Raced', data: { i } })),
        { expected },
      );
    } catch (err) {
      o.error = err;
    }
    outcomes.push(o);
  });
  stop.upTo = Math.max(0, ...outcomes.flatMap((o) => o.result?.positions ?? []));
  stop.done = true;
  const finalPos = await reader;

  const committed = new Map<string, { stream: string; version: number; position: number }>();
  const perStream = new Map<string, Outcome[]>();
  for (const o of outcomes) {
    const stream = `${prefix}-${o.op.stream}`;
    if (o.error) {
      if (!(o.error instanceof ConcurrencyError)) {
        violations.push(`unexpected error ${String(o.error)}`);
        continue;
      }
      const actual = o.error.actual as number;
      const e = o.expected;
      const contradicts =
        (e === 'no_stream' && actual > 0) ||
        (e === 'stream_exists' && actual === 0) ||
        (typeof e === 'number' && actual !== e);
      if (!contradicts)
        violations.push(`refusal without contradiction: expected ${e}, actual ${actual}`);
      continue;
    }
    const r = o.result!;
    const first = r.version - o.ids.length + 1;
    if (o.expected === 'no_stream' && first !== 1)
      violations.push(`no_stream append landed at version ${first}`);
    if (o.expected === 'stream_exists' && first < 2)
      violations.push('stream_exists append created the stream');
    if (typeof o.expected === 'number' && first !== o.expected + 1) {
      violations.push(`expected ${o.expected} but landed at ${first}`);
    }
    o.ids.forEach((id, i) => {
      committed.set(id, { stream, version: first + i, position: r.positions[i]! });
    });
    perStream.set(stream, [...(perStream.get(stream) ?? []), o]);
  }
  if (mode === 'any' && outcomes.some((o) => o.error))
    violations.push('an any-version append was refused');
  // Stored streams equal the model: versions 1..n, exactly the successful appends' events.
  const streams = new Set(ops.map((op) => `${prefix}-${op.stream}`));
  for (const stream of streams) {
    const events = await store.readStream(stream);
    events.forEach((e, i) => {
      if (e.version !== i + 1) violations.push(`${stream}: version ${e.version} at index ${i}`);
      const c = committed.get(e.id);
      if (!c) violations.push(`${stream}: event ${e.id} of a refused append is stored`);
      else if (c.version !== e.version || c.position !== e.position || c.stream !== stream) {
        violations.push(
          `${stream}: event ${e.id} stored at ${e.version}/${e.position}, reported ${c.version}/${c.position}`,
        );
      }
    });
    const expectedCount = (perStream.get(stream) ?? []).reduce((n, o) => n + o.ids.length, 0);
    if (events.length !== expectedCount)
      violations.push(`${stream}: ${events.length} events, ${expectedCount} committed`);
  }
  // The tailing reader saw every committed event once, in position order, and nothing else.
  const mine = seen.filter((e) => e.streamId.startsWith(`${prefix}-`));
  const ids = new Set<string>();
  let last = 0;
  for (const e of mine) {
    if (ids.has(e.id)) violations.push(`reader saw ${e.id} twice`);
    ids.add(e.id);
    if (e.position <= last) violations.push(`reader saw position ${e.position} after ${last}`);
    last = e.position;
  }
  for (const [id, c] of committed) {
    if (!ids.has(id))
      violations.push(
        `reader missed ${id} at position ${c.position} (reader ended at ${finalPos}, upTo ${stop.upTo})`,
      );
  }
  if (ids.size !== committed.size)
    violations.push(`reader saw ${ids.size} events, ${committed.size} committed`);
  return violations;
}

function opsArb(mode: Mode, size: number): fc.Arbitrary<Op[]> {
  const streams = mode === 'no_stream' ? size / 4 : 12;
  const modeArb: fc.Arbitrary<Op['mode']> =
    mode === 'stream_exists'
      ? fc.oneof(
          { arbitrary: fc.constant<Op['mode']>('create'), weight: 1 },
          { arbitrary: fc.constant<Op['mode']>(mode), weight: 3 },
        )
      : fc.constant(mode);
  return fc.array(
    fc.record({
      stream: fc.nat({ max: streams - 1 }),
      count: fc.integer({ min: 1, max: 3 }),
      mode: modeArb,
    }),
    { minLength: size, maxLength: size },
  );
}

function racingSuite(getStore: () => EventStore, total: number, concurrency: number): void {
  for (const mode of MODES) {
    it(`${total} racing appends with expected version ${mode}: zero violations`, {
      timeout: 180_000,
    }, async () => {
      const perRun = Math.min(PER_RUN, total);
      let appends = 0;
      const all: string[] = [];
      await fc.assert(
        fc.asyncProperty(opsArb(mode, perRun), async (ops) => {
          const v = await race(getStore(), mode, ops, concurrency);
          appends += ops.filter((o) => o.mode === mode).length;
          all.push(...v);
          if (v.length > 0) console.log(`violations (${v.length}):`, v.slice(0, 5));
          return v.length === 0;
        }),
        { numRuns: Math.ceil(total / perRun), endOnFailure: true },
      );
      expect(all.slice(0, 10)).toEqual([]);
      expect(appends).toBeGreaterThanOrEqual(mode === 'stream_exists' ? total * 0.6 : total);
    });
  }
}

const TOTAL = Number(process.env.CDP_RACE_APPENDS ?? 10_000);

describe('racing appends on MemoryEventStore', () => {
  const store = new MemoryEventStore();
  racingSuite(() => store, TOTAL, 16);
});

describe('racing appends on SqlEventStore (PGlite, one connection: interleaved, not parallel)', () => {
  let sql: PgliteSqlClient;
  let store: SqlEventStore;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    store = await SqlEventStore.open(sql);
  });
  afterAll(() => sql.close());
  racingSuite(() => store, Math.min(TOTAL, 200), 8);
});

describeServer(
  'racing appends on SqlEventStore (PostgreSQL, 16 connections)',
  'CDP_DATABASE_URL',
  (url) => {
    let db: { url: string; drop: () => Promise<void> };
    let sql: PgSqlClient;
    let store: SqlEventStore;
    beforeAll(async () => {
      db = await createTempDatabase(url, { prefix: 'cdp_evrace' });
      // Races, not durability, are under test: commits need not wait for the disk (visibility
      // and ordering are the same), which keeps 40,000 appends within the test budget on a
      // shared machine. The fault run keeps synchronous commits.
      const setup = await PgSqlClient.open({ url: db.url, max: 1 });
      await setup.exec(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$",
      );
      await setup.close();
      sql = await PgSqlClient.open({ url: db.url, max: 17 });
      store = await SqlEventStore.open(sql, { notify: false });
    });
    afterAll(async () => {
      await sql?.close();
      await db?.drop();
    });
    racingSuite(() => store, TOTAL, 16);
  },
);
