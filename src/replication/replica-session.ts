import type {
  ListenOptions,
  NotificationHandler,
  QueryResult,
  SqlClient,
  SqlTransaction,
  SqlValue,
  TransactionOptions,
} from '../engines/sql/sql-client.js';
import { type ConsistencyToken, formatConsistencyToken } from './consistency-token.js';
import { plain } from './internal/plain-result.js';
import { mayReadOnReplica } from './internal/statement-kind.js';
import type {
  ReadConsistency,
  ReadResult,
  ReplicaRouter,
  WriteOptions,
  WriteResult,
} from './replica-router.js';

/**
 * One user's view through a router: every write's token is kept, and reads are served only by
 * servers that have replayed the latest of them (read-your-writes) and the position of the
 * last replica read (monotonic reads). Pass `token` to continue a session across requests.
 */
export class ReplicaSession implements SqlClient {
  readonly engine = 'postgres' as const;
  readonly #router: ReplicaRouter;
  #token: ConsistencyToken | undefined;
  #sticky: string | undefined;

  /** @internal */
  constructor(router: ReplicaRouter, token?: string) {
    this.#router = router;
    this.#token = token === undefined ? undefined : router.token(token);
  }

  /** The session's position, to hand to the next request (undefined before any write). */
  get token(): string | undefined {
    return this.#token && formatConsistencyToken(this.#token);
  }

  /** Raises the session's position to at least this token. */
  observe(token: string | ConsistencyToken): void {
    const t = this.#router.token(token);
    if (
      !this.#token ||
      t.timeline > this.#token.timeline ||
      (t.timeline === this.#token.timeline && t.lsn > this.#token.lsn)
    ) {
      this.#token = t;
    }
  }

  /**
   * A read that sees the session's writes and never goes back in time: it sticks to the
   * replica it read from last while that one keeps up, and otherwise reads from a replica that
   * has replayed the session's token, or from the primary (whose position then becomes the
   * session's token).
   */
  async read<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<ReadResult<R>> {
    const consistency: ReadConsistency = this.#token
      ? { kind: 'after', token: this.#token }
      : { kind: 'any' };
    const res = await this.#router.read<R>(
      text,
      params,
      consistency,
      this.#sticky === undefined ? {} : { onlyReplica: this.#sticky },
    );
    if (res.primary) {
      this.#sticky = undefined;
      this.observe(await this.#router.currentToken());
    } else {
      this.#sticky = res.servedBy;
    }
    return res;
  }

  async write<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
    options?: WriteOptions,
  ): Promise<WriteResult<R>> {
    const res = await this.#router.write<R>(text, params, options);
    this.observe(res.token);
    return res;
  }

  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>> {
    if (mayReadOnReplica(text)) return this.read<R>(text, params).then(plain);
    return this.write<R>(text, params).then(plain);
  }

  async exec(script: string): Promise<void> {
    await this.#router.exec(script);
    this.observe(await this.#router.currentToken());
  }

  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions) {
    const { value, token } = await this.#router.writeTransaction(fn, options);
    this.observe(token);
    return value;
  }

  listen(channel: string, handler: NotificationHandler, options?: ListenOptions) {
    return this.#router.listen(channel, handler, options);
  }

  notify(channel: string, payload?: string): Promise<void> {
    return this.#router.notify(channel, payload);
  }

  ping(): Promise<void> {
    return this.#router.ping();
  }

  /** A session holds nothing of its own: closing it is a no-op (close the router). */
  async close(): Promise<void> {}
}
