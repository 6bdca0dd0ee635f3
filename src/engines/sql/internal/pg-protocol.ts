import pg from 'pg';
import pgUtils from 'pg/lib/utils.js';
import type { PipelineStep, TextRows } from '../sql-client.js';

// Everything that drives `pg` through its internals, not its documented API, is in this file:
// `pg/lib/utils.js` (how pg turns a parameter into text), the connection's protocol writer and
// its statement maps, and the handler names of pg's submittable protocol (what pg-cursor
// implements). `pgInternalsProblems` lists what of that a pg version lacks;
// test/engines/sql/pg-internals.test.ts runs it and checks the installed version against
// `PG_CHECKED_MINOR`, so an upgrade of pg that changes them fails there by name. package.json
// pins pg to `~PG_CHECKED_MINOR.x` for the same reason.

/** The pg release line (major.minor) whose internals this file was written and checked against. */
export const PG_CHECKED_MINOR = '8.23';

/** What `pg` hands a submittable: the connection's protocol writer and its statement maps. */
interface PgConnection {
  stream: { cork?: () => void; uncork?: () => void };
  parsedStatements: Record<string, string>;
  submittedNamedStatements: Record<string, string>;
  parse(config: { name: string; text: string; types: unknown[] }): void;
  bind(config: {
    statement: string;
    values: readonly unknown[];
    valueMapper: (value: unknown) => unknown;
  }): void;
  execute(config: Record<string, never>): void;
  sync(): void;
}

/** The connection methods the pipeline writes with. */
const CONNECTION_METHODS = ['parse', 'bind', 'execute', 'sync'] as const;
/** The connection's statement maps, shared with pg's own named queries. */
const CONNECTION_MAPS = ['parsedStatements', 'submittedNamedStatements'] as const;
/** The client's message handlers that call a submittable's `handle...` methods. */
const CLIENT_HANDLERS = [
  '_handleDataRow',
  '_handleCommandComplete',
  '_handleErrorMessage',
  '_handleReadyForQuery',
] as const;

/**
 * What of the internals this file uses the loaded `pg` lacks, one sentence each naming the
 * part; empty when all are there. Checks their shape, not their behaviour: the adapter's
 * server tests (test/engines/sql/postgres.test.ts, `preparedRows` and `preparedPipeline`) run
 * them.
 */
export function pgInternalsProblems(): string[] {
  const problems: string[] = [];
  if (typeof (pgUtils as { prepareValue?: unknown } | undefined)?.prepareValue !== 'function') {
    problems.push("pg/lib/utils.js no longer exports prepareValue (the parameters' text form)");
  }
  const Connection = (pg as unknown as { Connection?: new () => Record<string, unknown> })
    .Connection;
  if (typeof Connection !== 'function') {
    problems.push('pg no longer exports Connection (the protocol writer)');
  } else {
    for (const m of CONNECTION_METHODS) {
      if (typeof Connection.prototype[m] !== 'function')
        problems.push(`pg's Connection has no method ${m}()`);
    }
    const con = new Connection();
    for (const f of CONNECTION_MAPS) {
      const map = con[f];
      if (typeof map !== 'object' || map === null)
        problems.push(`pg's Connection has no ${f} map (named statements per connection)`);
    }
    (con as { stream?: { destroy?: () => void } }).stream?.destroy?.();
  }
  const client = pg.Client.prototype as unknown as Record<string, unknown>;
  for (const h of CLIENT_HANDLERS) {
    if (typeof client[h] !== 'function')
      problems.push(`pg's Client has no ${h}() (the submittable protocol's dispatch)`);
  }
  return problems;
}

/** How `pg` turns a parameter into its text form (arrays, dates, buffers, JSON). */
const prepareValue = (value: unknown): unknown => pgUtils.prepareValue(value);

/**
 * Named statements run back to back in one round trip: for each, Parse (only on the
 * connection's first use of the name) + Bind + Execute, then one Sync, with no Describe: the
 * server sends no row description and the rows arrive as text, in column order. The steps run
 * in one implicit transaction (it commits at the Sync; an error skips the rest and rolls it
 * back), and each step is bound after the one before has run, so under read committed each
 * sees what was committed before it started. `pg`'s own query describes the portal on every
 * execution, builds row objects through its type parsers and sends one statement per round
 * trip; for statements run thousands of times a second with columns the caller knows, that is
 * measurable (see `SqlEventStore`). Implements `pg`'s submittable protocol (`client.query` of
 * an object with `submit`), as pg-cursor does. It has no `name`, so `pg` leaves the
 * connection's statement maps alone: it records its statements as parsed when it sends them
 * (a failure closes the connection, see `runPipeline`).
 */
class RawPipeline {
  readonly #steps: readonly PipelineStep[];
  readonly #rows: TextRows[];
  #step = 0;
  readonly #resolve: (rows: TextRows[]) => void;
  readonly #reject: (err: unknown) => void;

  constructor(
    steps: readonly PipelineStep[],
    resolve: (rows: TextRows[]) => void,
    reject: (err: unknown) => void,
  ) {
    this.#steps = steps;
    this.#rows = steps.map(() => []);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  submit(con: PgConnection): Error | null {
    if (typeof con.parsedStatements !== 'object' || typeof con.parse !== 'function') {
      return new Error(
        `this version of pg changed the internals the prepared pipeline uses (see pgInternalsProblems: ${pgInternalsProblems().join('; ') || 'the connection handed to submit'}); it was checked against pg ${PG_CHECKED_MINOR}.x`,
      );
    }
    for (const { statement } of this.#steps) {
      const known =
        con.parsedStatements[statement.name] ?? con.submittedNamedStatements[statement.name];
      if (known !== undefined && known !== statement.text) {
        return new Error(`prepared statement ${statement.name} is already used for another text`);
      }
    }
    con.stream.cork?.();
    try {
      for (const { statement, values } of this.#steps) {
        if (con.parsedStatements[statement.name] === undefined) {
          con.parse({ name: statement.name, text: statement.text, types: [] });
          con.parsedStatements[statement.name] = statement.text;
        }
        con.bind({ statement: statement.name, values, valueMapper: prepareValue });
        con.execute({});
      }
      con.sync();
    } finally {
      con.stream.uncork?.();
    }
    return null;
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.#rows[this.#step]?.push(msg.fields);
  }

  handleCommandComplete(): void {
    this.#step++;
  }

  /** The end of a statement that failed, or of the connection: `pg` sends nothing after it. */
  handleError(err: unknown): void {
    this.#reject(err);
  }

  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }

  handleRowDescription(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/**
 * Runs `steps` on `conn` as one pipeline (see `RawPipeline`) and returns each one's rows. The
 * caller owns the connection: on a failure it must not reuse it (`release(err)`).
 */
export function runPipeline(
  conn: pg.PoolClient,
  steps: readonly PipelineStep[],
): Promise<TextRows[]> {
  return new Promise<TextRows[]>((resolve, reject) => {
    conn.query(new RawPipeline(steps, resolve, reject) as never);
  });
}
