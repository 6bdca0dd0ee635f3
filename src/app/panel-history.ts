import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { EngineStatus, Panel } from './feature.js';

/** What the dashboard stream sends each period. */
export interface Snapshot {
  at: string;
  engines: EngineStatus[];
  panels: Panel[];
}

/** One point of history: the numeric figures of every panel, by panel id then label. */
export interface HistorySample {
  /** Milliseconds since the epoch. */
  t: number;
  values: Record<string, Record<string, number>>;
}

/**
 * The dashboard's feed: one sampler takes engine status and every panel once per period (so a
 * panel's rates are measured over the period, however many dashboards are open) and keeps the
 * numeric figures of the last `capacity` samples, so a page opened later draws its charts with
 * history. Subscribers get each snapshot as it is taken.
 */
export class PanelHistory {
  readonly #samples: HistorySample[] = [];
  readonly #listeners = new Set<(s: Snapshot) => void>();
  readonly #take: () => Promise<Omit<Snapshot, 'at'>>;
  readonly #capacity: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #latest: Snapshot | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> | undefined;

  private constructor(o: PanelHistoryOptions) {
    this.#take = o.take;
    this.#capacity = o.capacity ?? 600;
    this.#clock = o.clock;
    this.#logger = o.logger;
    this.#timer = setInterval(() => void this.sample(), o.intervalMs);
    this.#timer.unref();
  }

  /**
   * Start sampling every `intervalMs`. The first sample starts at once but is not waited for:
   * features that open engines in the background (a payout ledger, region databases) would hold
   * the platform's start until they are up; the dashboard gets the sample when it is taken.
   */
  static async open(o: PanelHistoryOptions): Promise<PanelHistory> {
    const h = new PanelHistory(o);
    void h.sample();
    return h;
  }

  /** The latest snapshot (taken at most one period ago). */
  get latest(): Snapshot | undefined {
    return this.#latest;
  }

  /** The kept samples, oldest first. */
  samples(): HistorySample[] {
    return [...this.#samples];
  }

  /** Call `fn` with every snapshot from now on; returns the unsubscribe function. */
  subscribe(fn: (s: Snapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Take a sample now (skipped while one is being taken). */
  async sample(): Promise<void> {
    if (this.#busy) return this.#busy;
    this.#busy = (async () => {
      try {
        const now = this.#clock.now();
        const taken = await this.#take();
        const snapshot: Snapshot = { at: new Date(now).toISOString(), ...taken };
        this.#latest = snapshot;
        const values: HistorySample['values'] = {};
        for (const p of taken.panels) {
          const figures: Record<string, number> = {};
          for (const s of p.stats) if (typeof s.value === 'number') figures[s.label] = s.value;
          values[p.id] = figures;
        }
        this.#samples.push({ t: now, values });
        if (this.#samples.length > this.#capacity) this.#samples.shift();
        for (const fn of this.#listeners) fn(snapshot);
      } catch (err) {
        this.#logger.warn({ err: errorMessage(err) }, 'dashboard sample failed');
      } finally {
        this.#busy = undefined;
      }
    })();
    return this.#busy;
  }

  /** A snapshot taken now, after any sample in progress (which may predate the caller's writes). */
  async fresh(): Promise<Snapshot | undefined> {
    await this.#busy;
    await this.sample();
    return this.#latest;
  }

  /** Stop sampling; waits for a sample in progress. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
    await this.#busy;
  }
}

export interface PanelHistoryOptions {
  take: () => Promise<Omit<Snapshot, 'at'>>;
  intervalMs: number;
  /** Samples kept. Default 600 (10 minutes at 1 s). */
  capacity?: number;
  clock: Clock;
  logger: Logger;
}
