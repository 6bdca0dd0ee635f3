import type { Clock } from '../../core/clock.js';
import { CdpError, ValidationError } from '../../core/errors.js';

/**
 * A hybrid logical clock timestamp (Kulkarni et al., 2014): the physical time in ms the
 * timestamp is close to, a logical counter that orders events within one millisecond and
 * after a clock read behind a timestamp already seen, and the node that made it (the final
 * tie-break, so that any two timestamps of different nodes are ordered).
 */
export interface HlcTimestamp {
  wall: number;
  logical: number;
  node: string;
}

/** Total order of HLC timestamps: wall time, then logical counter, then node id. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/** A remote timestamp further ahead of this clock than the allowed drift. */
export class ClockDriftError extends CdpError {
  readonly driftMs: number;
  constructor(driftMs: number, maxDriftMs: number) {
    super(
      'REPLICATION_CLOCK_DRIFT',
      `a remote timestamp is ${driftMs} ms ahead of this node's clock (allowed ${maxDriftMs} ms); check the sender's clock (NTP) or raise maxDriftMs`,
    );
    this.driftMs = driftMs;
  }
}

export interface HybridLogicalClockOptions {
  /** This node's id: letters, digits, `_`, `-` and `.` (it orders ties, so ids must differ). */
  node: string;
  /** Physical time source (the project's Clock). */
  clock: Clock;
  /**
   * Refuse a received timestamp more than this far ahead of the physical clock (a sender with
   * a broken clock would otherwise drag every node's timestamps forward). Default 60,000 ms.
   */
  maxDriftMs?: number;
}

export const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Throws a ValidationError for a node id that is not 1-64 letters, digits, `_`, `-`, `.`. */
export function assertNodeId(node: string): void {
  if (!NODE_ID.test(node)) {
    throw new ValidationError(
      `invalid node id ${JSON.stringify(node)}: use 1-64 letters, digits, '_', '-' or '.'`,
    );
  }
}

/**
 * A hybrid logical clock: `now()` stamps a local event, `receive(ts)` moves the clock past a
 * timestamp seen from another node. Timestamps it issues are strictly increasing and stay
 * within the drift bound of physical time, so last-write-wins by HLC respects causality
 * (a write that saw another is ordered after it) even when wall clocks disagree.
 */
export class HybridLogicalClock {
  readonly node: string;
  readonly #clock: Clock;
  readonly #maxDrift: number;
  #wall = 0;
  #logical = 0;

  constructor(options: HybridLogicalClockOptions) {
    assertNodeId(options.node);
    this.node = options.node;
    this.#clock = options.clock;
    this.#maxDrift = options.maxDriftMs ?? 60_000;
  }

  /** A timestamp for a local event (a write). */
  now(): HlcTimestamp {
    const pt = this.#clock.now();
    if (pt > this.#wall) {
      this.#wall = pt;
      this.#logical = 0;
    } else {
      this.#logical++;
    }
    return { wall: this.#wall, logical: this.#logical, node: this.node };
  }

  /** Merge a timestamp received from another node; returns the local timestamp after it. */
  receive(remote: HlcTimestamp): HlcTimestamp {
    const pt = this.#clock.now();
    if (remote.wall - pt > this.#maxDrift)
      throw new ClockDriftError(remote.wall - pt, this.#maxDrift);
    const wall = Math.max(this.#wall, remote.wall, pt);
    if (wall === this.#wall && wall === remote.wall) {
      this.#logical = Math.max(this.#logical, remote.logical) + 1;
    } else if (wall === this.#wall) {
      this.#logical++;
    } else if (wall === remote.wall) {
      this.#logical = remote.logical + 1;
    } else {
      this.#logical = 0;
    }
    this.#wall = wall;
    return { wall: this.#wall, logical: this.#logical, node: this.node };
  }

  /** The last timestamp issued or received (without advancing). */
  peek(): HlcTimestamp {
    return { wall: this.#wall, logical: this.#logical, node: this.node };
  }
}
