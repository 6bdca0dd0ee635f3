import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import {
  casRegisterModel,
  checkLinearizability,
  type HistoryEvent,
  historyOperations,
  kvModel,
  parseHistory,
  registerModel,
} from '../../src/replication/index.js';

const fixture = (path: string) =>
  readFileSync(new URL(`./fixtures/${path}`, import.meta.url), 'utf8');

/** Porcupine's published verdicts (porcupine_test.go, checkJepsen). */
const porcupine: [string, boolean][] = [
  ['etcd_000', false],
  ['etcd_001', false],
  ['etcd_002', true],
  ['etcd_005', true],
  ['etcd_007', true],
  ['etcd_018', true],
  ['etcd_100', true],
  ['etcd_101', true],
];

/** Knossos's published verdicts: the folder each history is in. */
const knossos = [
  'good/cas-register-bug',
  'good/memstress3-33',
  'bad/rethink-fail-minimal',
  'bad/bad-analysis',
  'bad/immediate-failure',
  'bad/cas-failure',
];

describe('published histories get their published verdicts', () => {
  it.each(porcupine)('Porcupine %s (Jepsen log of etcd): linearizable = %s', (name, want) => {
    const { format, events } = parseHistory(fixture(`porcupine/${name}.log`));
    expect(format).toBe('jepsen-log');
    const r = checkLinearizability(events, casRegisterModel);
    expect(r.verdict).toBe(want ? 'linearizable' : 'not-linearizable');
  });

  it.each(knossos)('Knossos cas-register/%s (EDN)', (name) => {
    const { format, events } = parseHistory(fixture(`knossos/${name}.edn`));
    expect(format).toBe('edn');
    const r = checkLinearizability(events, casRegisterModel);
    expect(r.verdict).toBe(name.startsWith('good/') ? 'linearizable' : 'not-linearizable');
  });

  it('names the read that cannot be explained, not an operation after it (Knossos rethink-fail-minimal)', () => {
    const { events } = parseHistory(fixture('knossos/bad/rethink-fail-minimal.edn'));
    const v = checkLinearizability(events, casRegisterModel).violation;
    expect(v?.unplaced).toMatchObject({ process: 1, f: 'read', output: 3 });
    expect(v?.excerpt.map((op) => op.process)).toEqual([0, 1, 2]);
    expect(v?.stateBefore).toBe('4');
  });
});

const inv = (process: number, f: string, value: unknown = null, key?: string): HistoryEvent => ({
  process,
  type: 'invoke',
  f,
  value,
  ...(key ? { key } : {}),
});
const ok = (process: number, f: string, value: unknown = null, key?: string): HistoryEvent => ({
  process,
  type: 'ok',
  f,
  value,
  ...(key ? { key } : {}),
});

describe('history semantics', () => {
  it('a read of an overwritten value after the overwrite completed is not linearizable', () => {
    const h = [inv(0, 'write', 1), ok(0, 'write', 1), inv(1, 'write', 2), ok(1, 'write', 2)];
    expect(
      checkLinearizability([...h, inv(2, 'read'), ok(2, 'read', 2)], registerModel).verdict,
    ).toBe('linearizable');
    expect(
      checkLinearizability([...h, inv(2, 'read'), ok(2, 'read', 1)], registerModel).verdict,
    ).toBe('not-linearizable');
  });

  it('a read concurrent with a write may see either value', () => {
    const h = [inv(0, 'write', 1), ok(0, 'write', 1), inv(1, 'write', 2), inv(2, 'read')];
    for (const seen of [1, 2])
      expect(
        checkLinearizability([...h, ok(2, 'read', seen), ok(1, 'write', 2)], registerModel).verdict,
      ).toBe('linearizable');
  });

  it('either of two concurrent writes may be the last, but not a value neither wrote', () => {
    const h = [inv(0, 'write', 1), inv(1, 'write', 2), ok(0, 'write', 1), ok(1, 'write', 2)];
    for (const [seen, verdict] of [
      [1, 'linearizable'],
      [2, 'linearizable'],
      [3, 'not-linearizable'],
    ] as const)
      expect(
        checkLinearizability([...h, inv(2, 'read'), ok(2, 'read', seen)], registerModel).verdict,
      ).toBe(verdict);
  });

  it('a failed write did not happen; an indeterminate one may or may not have', () => {
    const failed: HistoryEvent[] = [inv(0, 'write', 1), { ...ok(0, 'write', 1), type: 'fail' }];
    const info: HistoryEvent[] = [inv(0, 'write', 1), { ...ok(0, 'write', 1), type: 'info' }];
    const readsOne = [inv(1, 'read'), ok(1, 'read', 1)];
    const readsNil = [inv(1, 'read'), ok(1, 'read', null)];
    expect(checkLinearizability([...failed, ...readsOne], registerModel).verdict).toBe(
      'not-linearizable',
    );
    expect(checkLinearizability([...info, ...readsOne], registerModel).verdict).toBe(
      'linearizable',
    );
    expect(checkLinearizability([...info, ...readsNil], registerModel).verdict).toBe(
      'linearizable',
    );
    expect(historyOperations(failed)).toEqual([]);
    expect(historyOperations(info)[0]?.ret).toBe(Number.POSITIVE_INFINITY);
  });

  it('a cas that completed ok took effect only if its expected value was there', () => {
    const h = [inv(0, 'write', 1), ok(0, 'write', 1), inv(1, 'cas', [1, 5]), ok(1, 'cas', [1, 5])];
    expect(
      checkLinearizability([...h, inv(2, 'read'), ok(2, 'read', 5)], casRegisterModel).verdict,
    ).toBe('linearizable');
    const wrong = [
      inv(0, 'write', 2),
      ok(0, 'write', 2),
      inv(1, 'cas', [1, 5]),
      ok(1, 'cas', [1, 5]),
    ];
    expect(checkLinearizability(wrong, casRegisterModel).verdict).toBe('not-linearizable');
    expect(() => checkLinearizability(h, registerModel)).toThrow(/cas-register/);
  });

  it('checks a map one key at a time and reports the key with no linearization', () => {
    const h = [
      inv(0, 'put', 1, 'a'),
      ok(0, 'put', 1, 'a'),
      inv(1, 'put', 7, 'b'),
      ok(1, 'put', 7, 'b'),
      inv(0, 'get', null, 'a'),
      ok(0, 'get', 1, 'a'),
      inv(1, 'get', null, 'b'),
      ok(1, 'get', null, 'b'),
    ];
    const r = checkLinearizability(h, kvModel);
    expect(r).toMatchObject({ verdict: 'not-linearizable', partitions: 2 });
    expect(r.violation?.partition).toBe('b');
    expect(r.violation?.excerpt.every((op) => op.key === 'b')).toBe(true);
  });

  it('reads Jepsen independent [key value] tuples for the kv model', () => {
    const log = [
      'INFO  jepsen.util - 0\t:invoke\t:write\t[x 1]',
      'INFO  jepsen.util - 0\t:ok\t:write\t[x 1]',
      'INFO  jepsen.util - 1\t:invoke\t:read\t[y nil]',
      'INFO  jepsen.util - 1\t:ok\t:read\t[y 1]',
    ].join('\n');
    const r = checkLinearizability(parseHistory(log).events, kvModel);
    expect(r).toMatchObject({ verdict: 'not-linearizable', partitions: 2 });
    expect(r.violation?.partition).toBe('y');
  });

  it('reads its JSON format', () => {
    const text = JSON.stringify({ history: [inv(0, 'write', 'v'), ok(0, 'write', 'v')] });
    expect(parseHistory(text)).toEqual({
      format: 'json',
      events: [inv(0, 'write', 'v'), ok(0, 'write', 'v')],
    });
    expect(() => parseHistory('{"history": [{"process": 0}]}')).toThrow(/does not match/);
  });

  it('gives the verdict unknown when the timeout runs out', () => {
    let t = 0;
    const clock: Clock = { now: () => (t += 1000), sleep: async () => {} };
    const { events } = parseHistory(fixture('porcupine/etcd_002.log'));
    const r = checkLinearizability(events, casRegisterModel, { timeoutMs: 5000, clock });
    expect(r.verdict).toBe('unknown');
  });
});
