import { CdpError } from '../core/errors.js';

/** Base of the sharding module's errors; `code` names the condition. */
export class ShardingError extends CdpError {}

/** A statement was sent without a shard key and not as a fan-out. */
export class ShardKeyRequiredError extends ShardingError {
  constructor(what: string) {
    super(
      'SHARD_KEY_REQUIRED',
      `${what} has no shard key: give the key of the row it touches, or run it on every shard with fanOut()/aggregate()`,
    );
  }
}

/** A key whose type does not match the map's key type. */
export class ShardKeyTypeError extends ShardingError {
  readonly map: string;
  constructor(map: string, expected: string, key: unknown) {
    super(
      'SHARD_KEY_TYPE',
      `shard map "${map}" takes ${expected} keys; got ${typeof key} ${JSON.stringify(String(key)).slice(0, 60)}. Pass a key of the map's type`,
    );
    this.map = map;
  }
}

/** A shard URL that does not parse, or a shard that does not answer. */
export class ShardUnavailableError extends ShardingError {
  readonly shard: string;
  constructor(shard: string, message: string, options?: { cause?: unknown }) {
    super('SHARD_UNAVAILABLE', message, options);
    this.shard = shard;
  }
}

/** The map (or its shard list) does not know the map, shard, slot or range asked for. */
export class ShardMapError extends ShardingError {
  constructor(message: string) {
    super('SHARD_MAP_INVALID', message);
  }
}

/** A move was asked for while another move of the same map is running. */
export class MoveInProgressError extends ShardingError {
  readonly runningMove: string;
  constructor(map: string, running: { id: string; unit: string; phase: string }) {
    super(
      'SHARD_MOVE_IN_PROGRESS',
      `shard map "${map}" is already moving ${running.unit} (move ${running.id}, phase ${running.phase}); ` +
        'wait for it to finish (or resume it after a crash) before starting another. Nothing was started',
    );
    this.runningMove = running.id;
  }
}

/**
 * A write reached a shard that does not own the key's unit (the router's map was stale, or a
 * move's cut-over is fencing writes). The router refreshes its map and retries.
 */
export class ShardFencedError extends ShardingError {
  readonly shard: string;
  readonly unit: string;
  constructor(shard: string, unit: string) {
    super(
      'SHARD_FENCED',
      `shard "${shard}" does not own ${unit} (a move is cutting over, or the map changed); retry after refreshing the map`,
    );
    this.shard = shard;
    this.unit = unit;
  }
}

/** A fan-out passed its deadline and partial results were not allowed. */
export class FanOutDeadlineError extends ShardingError {
  readonly missing: readonly string[];
  constructor(deadlineMs: number, missing: readonly string[]) {
    super(
      'FANOUT_DEADLINE',
      `fan-out passed its ${deadlineMs} ms deadline without an answer from shard(s) ${missing.join(', ')}; ` +
        'raise the deadline, or pass allowPartial to get the answered shards flagged as partial',
    );
    this.missing = missing;
  }
}

/** A move's verification found the copy differs from the source. */
export class MoveVerificationError extends ShardingError {
  constructor(message: string) {
    super('SHARD_MOVE_VERIFY_FAILED', message);
  }
}
