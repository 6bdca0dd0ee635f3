/**
 * Histories built from a real sequential run are linearizable whatever the overlap of their
 * intervals; a read of an overwritten value after every operation completed is not.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  casRegisterModel,
  checkLinearizability,
  type HistoryEvent,
  kvModel,
} from '../../src/replication/index.js';

type Step = { f: 'write'; value: number } | { f: 'read' } | { f: 'cas'; from: number; to: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ f: fc.constant('write' as const), value: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ f: fc.constant('read' as const) }),
  fc.record({
    f: fc.constant('cas' as const),
    from: fc.integer({ min: 0, max: 4 }),
    to: fc.integer({ min: 0, max: 4 }),
  }),
);

interface Spec {
  steps: Step[];
  /** How far before and after its linearization point each operation's interval reaches. */
  spread: [number, number][];
  /** Which operations' outcome is unknown (:info). */
  info: boolean[];
}

const spec = (maxLength: number, withInfo: boolean): fc.Arbitrary<Spec> =>
  fc.integer({ min: 1, max: maxLength }).chain((n) =>
    fc.record({
      steps: fc.array(step, { minLength: n, maxLength: n }),
      spread: fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { minLength: n, maxLength: n }),
      info: fc.array(withInfo ? fc.boolean() : fc.constant(false), { minLength: n, maxLength: n }),
    }),
  );

/**
 * Run the steps in order on a register (linearization point of step i at time 10i + 5), then
 * record each as an invoke and a completion around its point; every operation has its own
 * process, so any overlap is possible.
 */
function record(s: Spec, key?: string): { events: HistoryEvent[]; end: number } {
  let state: number | null = null;
  const timed: (HistoryEvent & { time: number })[] = [];
  s.steps.forEach((st, i) => {
    const at = 10 * i + 5;
    const [before, after] = s.spread[i] as [number, number];
    const base = { process: `${key ?? ''}p${i}`, f: st.f, ...(key ? { key } : {}) };
    let input: unknown = null;
    let output: unknown = null;
    let type: HistoryEvent['type'] = 'ok';
    if (st.f === 'write') {
      state = st.value;
      input = output = st.value;
    } else if (st.f === 'read') {
      output = state;
    } else {
      input = output = [st.from, st.to];
      if (state === st.from) state = st.to;
      else type = 'fail';
    }
    if (s.info[i]) type = 'info';
    timed.push({ ...base, type: 'invoke', value: input, time: at - before - 0.5 });
    timed.push({ ...base, type, value: output, time: at + after + 0.5 });
  });
  timed.sort((a, b) => a.time - b.time);
  return { events: timed, end: 10 * s.steps.length + 50 };
}

describe('linearizability checker properties', () => {
  it('a history recorded from a sequential run is linearizable (cas register, with :fail and :info)', () => {
    fc.assert(
      fc.property(spec(40, true), (s) => {
        const { events } = record(s);
        expect(checkLinearizability(events, casRegisterModel).verdict).toBe('linearizable');
      }),
      { numRuns: 200 },
    );
  });

  it('a kv history recorded per key from sequential runs is linearizable', () => {
    fc.assert(
      fc.property(spec(15, true), spec(15, true), (a, b) => {
        const events = [...record(a, 'a').events, ...record(b, 'b').events].sort(
          (x, y) => (x.time as number) - (y.time as number),
        );
        expect(checkLinearizability(events, kvModel).verdict).toBe('linearizable');
      }),
      { numRuns: 100 },
    );
  });

  it('a read, after everything completed, of a value overwritten by a later completed write is not linearizable', () => {
    // Unique written values (the step index) and no cas: an overwritten value cannot come back.
    const writesAndReads = fc.integer({ min: 2, max: 30 }).chain((n) =>
      fc.record({
        kinds: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        spread: fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { minLength: n, maxLength: n }),
      }),
    );
    fc.assert(
      fc.property(writesAndReads, ({ kinds, spread }) => {
        const s: Spec = {
          steps: kinds.map((w, i) => (w ? { f: 'write', value: i } : { f: 'read' })),
          spread: spread as [number, number][],
          info: kinds.map(() => false),
        };
        const { events, end } = record(s);
        const writes = s.steps.flatMap((st, i) => (st.f === 'write' ? [i] : []));
        const call = (i: number) => 10 * i + 5 - (s.spread[i] as [number, number])[0] - 0.5;
        const ret = (i: number) => 10 * i + 5 + (s.spread[i] as [number, number])[1] + 0.5;
        // A write followed in real time by another write: its value is stale at the end.
        const stale = writes.find((w) => writes.some((w2) => ret(w) < call(w2)));
        fc.pre(writes.length > 0);
        const value = stale ?? null;
        const read: HistoryEvent[] = [
          { process: 'reader', type: 'invoke', f: 'read', value: null, time: end },
          { process: 'reader', type: 'ok', f: 'read', value, time: end + 1 },
        ];
        const r = checkLinearizability([...events, ...read], casRegisterModel);
        expect(r.verdict).toBe('not-linearizable');
        expect(r.violation?.unplaced.process).toBe('reader');
      }),
      { numRuns: 200 },
    );
  });
});
