/**
 * A recorded workload against a quorum store: concurrent clients read and write a few keys and
 * every invocation and completion is recorded as a history the linearizability checker reads
 * (kv model: events carry their key). A write whose outcome is unknown completes as `info`, and
 * that client goes on under a new process id, as in Jepsen.
 */
import type { Clock } from '../../core/clock.js';
import { ValidationError } from '../../core/errors.js';
import type { HistoryEvent } from '../history.js';
import type { QuorumNode } from './node.js';
import { QuorumUnavailableError } from './stamp.js';
import { createQuorumStore, type QuorumMode, type QuorumStats, type QuorumStore } from './store.js';

export interface QuorumWorkloadOptions {
  readonly store: QuorumStore<number>;
  readonly clients: number;
  /** Operations in all, shared among the clients. */
  readonly operations: number;
  /** Keys the clients pick from. Default 8. */
  readonly keys?: number;
  /** Share of writes. Default 0.5. */
  readonly writeRatio?: number;
  /** Key names start with this. Default 'k'. */
  readonly keyPrefix?: string;
  /** A deterministic random source in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** A client waits this long after a failed operation before its next one. Default 0. */
  readonly failureBackoffMs?: number;
  /** Called after every completed operation (e.g. to kill nodes at random). */
  readonly onOperation?: (done: number) => void | Promise<void>;
}

export interface QuorumWorkloadResult {
  readonly history: HistoryEvent[];
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  readonly elapsedMs: number;
}

export async function runQuorumWorkload(
  options: QuorumWorkloadOptions,
): Promise<QuorumWorkloadResult> {
  const { store, clients, operations } = options;
  if (!(Number.isInteger(clients) && clients >= 1))
    throw new ValidationError(`clients must be a positive integer; got ${clients}`);
  const keys = options.keys ?? 8;
  const writeRatio = options.writeRatio ?? 0.5;
  const prefix = options.keyPrefix ?? 'k';
  const random = options.random ?? Math.random;
  const history: HistoryEvent[] = [];
  let issued = 0;
  let done = 0;
  let ok = 0;
  let failed = 0;
  let indeterminate = 0;
  let nextValue = 1;
  const started = performance.now();
  const client = async (c: number) => {
    let process = c;
    while (issued < operations) {
      issued++;
      const key = `${prefix}${Math.floor(random() * keys)}`;
      const write = random() < writeRatio;
      const value = write ? nextValue++ : undefined;
      history.push(
        write
          ? { process, type: 'invoke', f: 'write', key, value }
          : { process, type: 'invoke', f: 'read', key, value: null },
      );
      try {
        if (write) {
          await store.put(key, value as number);
          history.push({ process, type: 'ok', f: 'write', key, value });
        } else {
          const v = await store.get(key);
          history.push({ process, type: 'ok', f: 'read', key, value: v ?? null });
        }
        ok++;
      } catch (err) {
        const unknown = write && (!(err instanceof QuorumUnavailableError) || err.mayHaveApplied);
        history.push({
          process,
          type: unknown ? 'info' : 'fail',
          f: write ? 'write' : 'read',
          key,
          value: value ?? null,
        });
        if (unknown) {
          indeterminate++;
          process += clients;
        } else failed++;
        if (options.failureBackoffMs)
          await new Promise((resolve) => setTimeout(resolve, options.failureBackoffMs));
      }
      done++;
      await options.onOperation?.(done);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  return { history, ok, failed, indeterminate, elapsedMs: performance.now() - started };
}

export interface ClockSkewHistoryOptions {
  readonly nodes: readonly QuorumNode[];
  /** Default 'lww', the mode that loses the second write. */
  readonly mode?: QuorumMode;
  /** The key both writers write. Default 'skew'. */
  readonly key?: string;
  readonly r?: number;
  readonly w?: number;
  /** How far the second writer's clock is behind the first's, in ms. Default 10,000. */
  readonly skewMs?: number;
  /** The first writer's clock reading. Default 2,000,000,000,000 (a fixed instant). */
  readonly now?: number;
}

export interface ClockSkewHistoryResult {
  readonly history: HistoryEvent[];
  /** The counters of the two writers' stores, closed. */
  readonly stats: readonly QuorumStats[];
}

const stoppedClock = (now: number): Clock => ({ now: () => now, sleep: async () => {} });

/**
 * Two writers one after the other, the second with a clock `skewMs` behind the first, then a
 * read, recorded as a history: under last-write-wins the second, acknowledged write loses to
 * the first, and the checker finds it; the linearizable mode orders the writes by its read
 * phase, not by the clocks.
 */
export async function runClockSkewHistory(
  options: ClockSkewHistoryOptions,
): Promise<ClockSkewHistoryResult> {
  const { nodes, r, w } = options;
  const mode = options.mode ?? 'lww';
  const key = options.key ?? 'skew';
  const now = options.now ?? 2_000_000_000_000;
  const writer = (writerId: string, at: number) =>
    createQuorumStore<number>({
      nodes,
      mode,
      writerId,
      clock: stoppedClock(at),
      ...(r === undefined ? {} : { r }),
      ...(w === undefined ? {} : { w }),
    });
  const ahead = writer('ahead', now);
  const behind = writer('behind', now - (options.skewMs ?? 10_000));
  const history: HistoryEvent[] = [];
  try {
    history.push({ process: 0, type: 'invoke', f: 'write', key, value: 1 });
    await ahead.put(key, 1);
    history.push({ process: 0, type: 'ok', f: 'write', key, value: 1 });
    history.push({ process: 1, type: 'invoke', f: 'write', key, value: 2 });
    await behind.put(key, 2);
    history.push({ process: 1, type: 'ok', f: 'write', key, value: 2 });
    history.push({ process: 2, type: 'invoke', f: 'read', key, value: null });
    const read = await ahead.get(key);
    history.push({ process: 2, type: 'ok', f: 'read', key, value: read ?? null });
  } finally {
    await ahead.close();
    await behind.close();
  }
  return { history, stats: [ahead.stats(), behind.stats()] };
}
