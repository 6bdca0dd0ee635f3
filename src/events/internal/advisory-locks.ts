/**
 * The event store's advisory lock keys (two-int form). The migrations' SQL spells the same
 * numbers literally (a migration never changes once shipped); the store's statements use these.
 *
 * Class 'cdpe' (the bytes read as an int): POSITION_LOCK is held for microseconds while a
 * transaction takes its transaction id and its positions, so that position order equals
 * transaction-id order; APPEND_GATE is held shared by every appender until it commits, and
 * exclusively by an append inside a transaction that already had an id, and by `lockAppends`.
 */
export const LOCK_CLASS = 1667526757;
export const POSITION_LOCK = 1;
export const APPEND_GATE = 2;
/**
 * Per-stream lock (class 'cdps', second int the stream id's hashtext): held by an appender
 * until it commits, taken before its positions, so that a stream's events get their positions
 * in version order (migration 4).
 */
export const STREAM_LOCK_CLASS = 1667526771;
