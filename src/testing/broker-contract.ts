import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { ValidationError } from '../core/errors.js';
import {
  type Broker,
  createEnvelope,
  type Delivery,
  deadLetter,
  deferDelivery,
  EventTypes,
  eventHandler,
  type HandlerResult,
  type MessageHandler,
  publishEnvelope,
  retryLater,
  UnknownEventTypeError,
} from '../messaging/index.js';
import { eventually } from './eventually.js';

export function uniq(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/**
 * An explicit barrier for a "nothing more arrives" assertion, instead of a fixed sleep: a marker
 * message published after the awaited ones and retried once after `delayMs` (the longest backoff
 * a case uses). Once every group has handled the marker's second attempt, a redelivery scheduled
 * before it has had its turn. Each handler lets the marker through first: `if (marker.is(d))
 * return marker.handle(group)`.
 */
function barrier(b: Broker, topic: string, groups: string[], delayMs = 50) {
  const id = uniq('barrier-');
  const passed = new Set<string>();
  return {
    is: (d: Delivery): boolean => d.id === id,
    handle(group: string, d: Delivery): HandlerResult {
      if (d.attempt < 2) return retryLater(delayMs);
      passed.add(group);
      return undefined;
    },
    /** Publishes the marker and resolves once every group has handled it. */
    async pass(): Promise<void> {
      await b.publish({ topic, id, body: 'barrier' });
      await eventually(
        () => groups.every((g) => passed.has(g)),
        `the barrier message in groups ${groups.join(', ')}`,
      );
    },
  };
}

/** Gives the broker under test, which the caller opens in `beforeAll` and closes in `afterAll`. */
export type BrokerFactory = () => Broker;

/**
 * The broker contract: every adapter passes the same cases. `broker()` gives the adapter under
 * test (created in the caller's beforeAll). Each case uses its own topics and groups.
 */
export function brokerContract(broker: BrokerFactory): void {
  const backoff = { baseDelayMs: 10, maxDelayMs: 50 };

  it('publishes a confirmed message and delivers id, key, headers and body to a group', async () => {
    const b = broker();
    const topic = uniq('t.basic.');
    const got: Delivery[] = [];
    const sub = await b.subscribe({ group: uniq('g'), topics: [topic] }, async (d) => {
      got.push(d);
    });
    try {
      const receipt = await b.publish({
        topic,
        id: 'm-1',
        key: 'key-7',
        headers: { 'x-tenant': 'acme' },
        body: '{"hello":1}',
      });
      expect(receipt).toEqual({ id: 'm-1', duplicate: false });
      await eventually(() => got.length === 1, 'one delivery');
      const d = got[0]!;
      expect(d.id).toBe('m-1');
      expect(d.key).toBe('key-7');
      expect(d.topic).toBe(topic);
      expect(d.headers['x-tenant']).toBe('acme');
      expect(d.body).toBe('{"hello":1}');
      expect(d.attempt).toBe(1);
    } finally {
      await sub.close();
    }
  });

  it('rejects bad topics, groups and reserved headers with a validation error', async () => {
    const b = broker();
    await expect(b.publish({ topic: 'bad topic', id: 'x', body: '' })).rejects.toThrow(
      ValidationError,
    );
    await expect(
      b.publish({ topic: 'ok', id: 'x', headers: { 'cdp-id': 'y' }, body: '' }),
    ).rejects.toThrow(/reserved/);
    await expect(
      b.subscribe({ group: 'no spaces', topics: ['ok'] }, async () => {}),
    ).rejects.toThrow(ValidationError);
  });

  it('shares a group among competing consumers and gives every group every message', async () => {
    const b = broker();
    const topic = uniq('t.share.');
    const group = uniq('g');
    const other = uniq('g');
    const a: string[] = [];
    const c: string[] = [];
    const all: string[] = [];
    const marker = barrier(b, topic, [group, other]);
    const handler = (g: string, into: string[]) => async (d: Delivery) => {
      if (marker.is(d)) return marker.handle(g, d);
      // A little work per message, so that both competing consumers get some.
      await new Promise((r) => setTimeout(r, 3));
      into.push(d.id);
    };
    const s1 = await b.subscribe({ group, topics: [topic], concurrency: 1 }, handler(group, a));
    const s2 = await b.subscribe({ group, topics: [topic], concurrency: 1 }, handler(group, c));
    const s3 = await b.subscribe({ group: other, topics: [topic] }, handler(other, all));
    try {
      const n = 40;
      for (let i = 0; i < n; i++) await b.publish({ topic, id: `share-${i}`, body: `${i}` });
      await eventually(() => a.length + c.length >= n && all.length >= n, 'all deliveries');
      await marker.pass();
      const shared = [...a, ...c].sort();
      expect(shared).toEqual(Array.from({ length: n }, (_, i) => `share-${i}`).sort());
      expect(a.length).toBeGreaterThan(0);
      expect(c.length).toBeGreaterThan(0);
      expect([...all].sort()).toEqual(shared);
    } finally {
      await Promise.all([s1.close(), s2.close(), s3.close()]);
    }
  });

  it('keeps messages for a durable group while no consumer is attached', async () => {
    const b = broker();
    const topic = uniq('t.durable.');
    const group = uniq('g');
    const got: string[] = [];
    const s1 = await b.subscribe({ group, topics: [topic] }, async (d) => {
      got.push(d.id);
    });
    await s1.close();
    await b.publish({ topic, id: 'while-away', body: 'x' });
    const s2 = await b.subscribe({ group, topics: [topic] }, async (d) => {
      got.push(d.id);
    });
    try {
      await eventually(() => got.length === 1, 'the message kept while away');
      expect(got).toEqual(['while-away']);
    } finally {
      await s2.close();
    }
  });

  it('drops a repeated message id (on the broker, or in the consumer)', async () => {
    const b = broker();
    const topic = uniq('t.dedup.');
    const got: string[] = [];
    const sub = await b.subscribe(
      { group: uniq('g'), topics: [topic], concurrency: 1 },
      async (d) => {
        got.push(d.id);
      },
    );
    try {
      const r1 = await b.publish({ topic, id: 'same', body: '1' });
      await eventually(() => got.length === 1, 'first');
      const r2 = await b.publish({ topic, id: 'same', body: '1' });
      await b.publish({ topic, id: 'after', body: '2' });
      // With one consumer at concurrency 1, 'after' is the barrier: it comes after the duplicate.
      await eventually(() => got.includes('after'), 'the next message');
      expect(r1.duplicate).toBe(false);
      if (b.dedupOnBroker) expect(r2.duplicate).toBe(true);
      expect(got).toEqual(['same', 'after']);
    } finally {
      await sub.close();
    }
  });

  it('retries later with a delay, counting attempts', async () => {
    const b = broker();
    const topic = uniq('t.retry.');
    const group = uniq('g');
    const attempts: number[] = [];
    const marker = barrier(b, topic, [group]);
    const sub = await b.subscribe(
      { group, topics: [topic], backoff, maxDeliveries: 5 },
      async (d) => {
        if (marker.is(d)) return marker.handle(group, d);
        attempts.push(d.attempt);
        if (d.attempt < 3) return retryLater(20);
      },
    );
    try {
      await b.publish({ topic, id: 'r1', body: 'x' });
      await eventually(() => attempts.length === 3, 'three attempts');
      await marker.pass();
      expect(attempts).toEqual([1, 2, 3]);
      expect(await b.listDeadLetters({ group: sub.group })).toEqual([]);
    } finally {
      await sub.close();
    }
  });

  it('dead-letters a poison message after exactly maxDeliveries attempts, keeping body, headers and error', async () => {
    const b = broker();
    const topic = uniq('t.poison.');
    const group = uniq('g');
    let calls = 0;
    const marker = barrier(b, topic, [group]);
    const sub = await b.subscribe(
      { group, topics: [topic], backoff, maxDeliveries: 4 },
      async (d) => {
        if (marker.is(d)) return marker.handle(group, d);
        calls++;
        throw new Error(`boom ${calls}`);
      },
    );
    try {
      await b.publish({ topic, id: 'poison-1', key: 'k', headers: { 'x-a': 'b' }, body: 'P' });
      await eventually(
        async () => (await b.listDeadLetters({ group })).length === 1,
        'the dead letter',
      );
      await marker.pass();
      expect(calls).toBe(4);
      const [d] = await b.listDeadLetters({ group });
      expect(d!.id).toBe('poison-1');
      expect(d!.topic).toBe(topic);
      expect(d!.key).toBe('k');
      expect(d!.body).toBe('P');
      expect(d!.headers['x-a']).toBe('b');
      expect(d!.attempts).toBe(4);
      expect(d!.error).toContain('boom 4');
    } finally {
      await sub.close();
    }
  });

  it('dead-letters invalid input at once, and on request, without retrying', async () => {
    const b = broker();
    const topic = uniq('t.invalid.');
    const group = uniq('g');
    let calls = 0;
    const marker = barrier(b, topic, [group]);
    const sub = await b.subscribe({ group, topics: [topic], backoff }, async (d) => {
      if (marker.is(d)) return marker.handle(group, d);
      calls++;
      if (d.id === 'bad') throw new ValidationError('amount: must be positive');
      return deadLetter('not for us');
    });
    try {
      await b.publish({ topic, id: 'bad', body: '{}' });
      await b.publish({ topic, id: 'nope', body: '{}' });
      await eventually(async () => (await b.listDeadLetters({ group })).length === 2, 'two dead');
      await marker.pass();
      expect(calls).toBe(2);
      const dead = await b.listDeadLetters({ group });
      const byId = Object.fromEntries(dead.map((d) => [d.id, d]));
      expect(byId.bad!.error).toContain('must be positive');
      expect(byId.bad!.attempts).toBe(1);
      expect(byId.nope!.error).toBe('not for us');
    } finally {
      await sub.close();
    }
  });

  it('defers without spending attempts', async () => {
    const b = broker();
    const topic = uniq('t.defer.');
    const group = uniq('g');
    const seen: number[] = [];
    const sub = await b.subscribe(
      { group, topics: [topic], backoff, maxDeliveries: 2, concurrency: 1 },
      async (d) => {
        seen.push(d.attempt);
        if (seen.length <= 2) return deferDelivery(10);
        throw new Error('fails');
      },
    );
    try {
      await b.publish({ topic, id: 'deferred', body: 'x' });
      await eventually(async () => (await b.listDeadLetters({ group })).length === 1, 'dead');
      expect(seen).toEqual([1, 1, 1, 2]);
    } finally {
      await sub.close();
    }
  });

  it('replays a dead letter to its group and removes it from the dead-letter destination', async () => {
    const b = broker();
    const topic = uniq('t.replay.');
    const group = uniq('g');
    let healthy = false;
    const handled: Delivery[] = [];
    const sub = await b.subscribe(
      { group, topics: [topic], backoff, maxDeliveries: 1 },
      async (d) => {
        if (!healthy) throw new Error('down');
        handled.push(d);
      },
    );
    try {
      await b.publish({ topic, id: 'replay-me', key: 'k1', headers: { 'x-h': '1' }, body: 'R' });
      await eventually(async () => (await b.listDeadLetters({ group })).length === 1, 'dead');
      healthy = true;
      expect(await b.replayDeadLetter('replay-me')).toBe(1);
      await eventually(() => handled.length === 1, 'replayed delivery');
      expect(handled[0]!.id).toBe('replay-me');
      expect(handled[0]!.topic).toBe(topic);
      expect(handled[0]!.key).toBe('k1');
      expect(handled[0]!.headers['x-h']).toBe('1');
      expect(handled[0]!.body).toBe('R');
      expect(await b.listDeadLetters({ group })).toEqual([]);
      expect(await b.replayDeadLetter('no-such-id')).toBe(0);
    } finally {
      await sub.close();
    }
  });

  it('back-to-back dead-letter listings each see every dead letter (a listing puts back what it looked at before the next one counts)', async () => {
    const b = broker();
    const topic = uniq('t.relist.');
    const group = uniq('g');
    const sub = await b.subscribe(
      { group, topics: [topic], backoff, maxDeliveries: 1 },
      async () => {
        throw new Error('down');
      },
    );
    try {
      for (const id of ['d1', 'd2', 'd3']) {
        await b.publish({ topic, id: `${group}-${id}`, key: id, headers: {}, body: id });
      }
      await eventually(async () => (await b.listDeadLetters({ group })).length === 3, 'dead');
      const seen: number[] = [];
      for (let i = 0; i < 60; i++) seen.push((await b.listDeadLetters({ group })).length);
      expect(seen.filter((n) => n !== 3)).toEqual([]);
    } finally {
      await sub.close();
    }
  });

  it('bad input: a payload failing its schema and an unknown type are dead-lettered on the first attempt, never retried; publishers reject them before sending', async () => {
    const b = broker();
    const topic = uniq('t.badinput.');
    const types = new EventTypes();
    types.define('item.published', z.object({ id: z.string(), title: z.string() }));
    const handled: unknown[] = [];
    const calls = new Map<string, number>();
    const strictGroup = uniq('g');
    const lenientGroup = uniq('g');
    const marker = barrier(b, topic, [strictGroup, lenientGroup]);
    const counted =
      (inner: MessageHandler): MessageHandler =>
      async (d) => {
        if (marker.is(d)) return marker.handle(strictGroup, d);
        calls.set(d.id, (calls.get(d.id) ?? 0) + 1);
        return inner(d);
      };
    const strict = await b.subscribe(
      { group: strictGroup, topics: [topic], backoff, maxDeliveries: 5 },
      counted(
        eventHandler(types, async (env) => {
          handled.push(env.data);
        }),
      ),
    );
    const ignored: string[] = [];
    const lenient = await b.subscribe(
      { group: lenientGroup, topics: [topic], backoff, maxDeliveries: 5 },
      async (d) => {
        if (marker.is(d)) return marker.handle(lenientGroup, d);
        ignored.push(d.id);
        return eventHandler(types, async () => {}, { unknownTypes: 'ignore' })(d);
      },
    );
    try {
      const good = createEnvelope({
        type: 'item.published',
        source: '/t',
        data: { id: 'c1', title: 'SQL', extra: true },
      });
      const broken = createEnvelope({ type: 'item.published', source: '/t', data: { id: 2 } });
      const unknown = createEnvelope({ type: 'item.retired', source: '/t', data: {} });
      // Publishers given the types refuse both before anything is sent.
      await expect(publishEnvelope(b, topic, broken, { types })).rejects.toThrow(ValidationError);
      await expect(publishEnvelope(b, topic, unknown, { types })).rejects.toThrow(
        UnknownEventTypeError,
      );
      // Publishers without the types send them; the consumers decide.
      await publishEnvelope(b, topic, broken);
      await publishEnvelope(b, topic, unknown);
      await b.publish({ topic, id: 'not-an-envelope', body: '{"hello":' });
      await publishEnvelope(b, topic, good);
      await eventually(
        async () => (await b.listDeadLetters({ group: strictGroup })).length === 3,
        'three dead letters in the strict group',
      );
      await eventually(() => handled.length === 1, 'the good event');
      await eventually(() => ignored.length === 4, 'four deliveries to the lenient group');
      await marker.pass();
      expect(handled).toEqual([{ id: 'c1', title: 'SQL' }]);
      const dead = Object.fromEntries(
        (await b.listDeadLetters({ group: strictGroup })).map((d) => [d.id, d]),
      );
      expect(dead[broken.id]!.error).toMatch(/VALIDATION_FAILED.*title/);
      expect(dead[broken.id]!.attempts).toBe(1);
      expect(dead[unknown.id]!.error).toContain('MESSAGING_UNKNOWN_EVENT_TYPE');
      expect(dead[unknown.id]!.error).toContain('item.retired');
      expect(dead['not-an-envelope']!.error).toContain('not JSON');
      // Each was delivered exactly once: invalid input is never retried.
      for (const id of [broken.id, unknown.id, 'not-an-envelope', good.id]) {
        expect(calls.get(id)).toBe(1);
      }
      // Configured to ignore unknown types, the other group acks it; the rest still dead-letter.
      const lenientDead = (await b.listDeadLetters({ group: lenientGroup })).map((d) => d.id);
      expect(lenientDead.sort()).toEqual([broken.id, 'not-an-envelope'].sort());
    } finally {
      await Promise.all([strict.close(), lenient.close()]);
    }
  });
}
