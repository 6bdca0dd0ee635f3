/**
 * The linearizability checker: published Jepsen histories of etcd (Porcupine's test data, eight
 * of them kept in test/replication/fixtures) and a generated key-value history. No peer runs
 * here: Porcupine (Go) and Knossos (Clojure) are not JavaScript.
 */
import { readFileSync } from 'node:fs';
import type { HistoryEvent } from '../../replication/history.js';
import {
  casRegisterModel,
  checkLinearizability,
  kvModel,
  parseHistory,
} from '../../replication/index.js';
import { type BenchResult, type BenchSuite, median, result, timeMs } from '../harness.js';
import { crdtMergeResults } from './crdt-merge.js';
import { quorumCases } from './replication-quorum.js';
import { regionCases } from './replication-regions.js';
import { replicaCases } from './replication-replicas.js';

const ETCD = ['000', '001', '002', '005', '007', '018', '100', '101'];

function etcdHistories(): HistoryEvent[][] {
  return ETCD.map(
    (n) =>
      parseHistory(
        readFileSync(
          new URL(`../../../test/replication/fixtures/porcupine/etcd_${n}.log`, import.meta.url),
          'utf8',
        ),
      ).events,
  );
}

/**
 * A linearizable kv history: operations run in sequence on a map (a deterministic generator
 * picks key, kind and value), each recorded with an interval overlapping its neighbours'.
 */
function generatedKv(operations: number, keys: number): HistoryEvent[] {
  let seed = 0x9e3779b9;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  const map = new Map<string, number>();
  const events: (HistoryEvent & { time: number })[] = [];
  for (let i = 0; i < operations; i++) {
    const key = `k${rand(keys)}`;
    const at = 10 * i + 5;
    const base = { process: i, key };
    const span = { call: at - rand(30) - 0.5, ret: at + rand(30) + 0.5 };
    if (rand(2) === 0) {
      const v = rand(5);
      map.set(key, v);
      events.push({ ...base, type: 'invoke', f: 'put', value: v, time: span.call });
      events.push({ ...base, type: 'ok', f: 'put', value: v, time: span.ret });
    } else {
      events.push({ ...base, type: 'invoke', f: 'get', value: null, time: span.call });
      events.push({ ...base, type: 'ok', f: 'get', value: map.get(key) ?? null, time: span.ret });
    }
  }
  return events.sort((a, b) => a.time - b.time);
}

const suite: BenchSuite = {
  name: 'replication',
  description: 'linearizability checker: published etcd histories, a generated kv history',
  async run(ctx) {
    const rounds = ctx.quick ? 3 : 10;
    const out: BenchResult[] = [];
    const etcd = etcdHistories();
    const etcdTimes: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const ms = await timeMs(() => {
        for (const h of etcd) checkLinearizability(h, casRegisterModel);
      });
      if (r > 0) etcdTimes.push(ms);
    }
    out.push(
      result({
        id: 'linearizability.check.etcd',
        metric: 'histories checked per second',
        unit: 'histories/s',
        ours: Math.round((etcd.length / median(etcdTimes)) * 1000 * 10) / 10,
        higherIsBetter: true,
        params: { histories: ETCD.map((n) => `etcd_${n}`), rounds },
      }),
    );
    const ops = ctx.quick ? 20_000 : 100_000;
    const kv = generatedKv(ops, 100);
    const kvTimes: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const ms = await timeMs(() => {
        if (checkLinearizability(kv, kvModel).verdict !== 'linearizable')
          throw new Error('the generated kv history must be linearizable');
      });
      if (r > 0) kvTimes.push(ms);
    }
    out.push(
      result({
        id: 'linearizability.check.kv',
        metric: 'operations checked per second',
        unit: 'ops/s',
        ours: Math.round((ops / median(kvTimes)) * 1000),
        higherIsBetter: true,
        params: { operations: ops, keys: 100, rounds },
      }),
    );
    out.push(...(await quorumCases(ctx)));
    out.push(...(await crdtMergeResults(ctx)));
    // primary and replicas
    out.push(...(await replicaCases(ctx)));
    out.push(...(await regionCases(ctx)));
    return out;
  },
};

export default suite;
