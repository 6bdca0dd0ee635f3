import type { PGlite } from '@electric-sql/pglite';
import { protocol } from '@electric-sql/pglite';
import type { QueryResult, SqlValue } from '../sql-client.js';

/**
 * Runs one parameterised statement on PGlite as a single protocol exchange (Parse with the
 * parameters' types, Bind, Describe, Execute, Sync), through PGlite's public `execProtocol`.
 *
 * Why: PGlite's own `query` sends Parse, Describe (to learn the parameters' types), Bind,
 * Describe, Execute and Sync as six separate calls into the WASM backend; for the short
 * statements the platform runs, those calls cost more than the statement (an INSERT of one row:
 * 0.36-0.46 ms through `query`, 0.21 ms as one exchange). The parameters' types are learnt once
 * per statement text with a Parse + Describe exchange and kept; the values are then encoded by
 * PGlite's own serializers for those types and the rows decoded by its parsers, exactly as
 * `query` does, so results do not change.
 *
 * The caller holds the locks: PGlite's query lock (`runExclusive`) around each exchange, and
 * outside a transaction whatever keeps the exchange out of another caller's open transaction.
 */
export class PgliteStatements {
  readonly #db: PGlite;
  /** Parameter type OIDs per statement text, learnt on first use. */
  readonly #types = new Map<string, readonly number[]>();
  readonly #maxTexts: number;

  constructor(db: PGlite, maxTexts = 1000) {
    this.#db = db;
    this.#maxTexts = maxTexts;
  }

  async #exchange(parts: Uint8Array[], inTransaction: boolean) {
    let size = 0;
    for (const p of parts) size += p.byteLength;
    const message = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      message.set(p, at);
      at += p.byteLength;
    }
    // Inside a transaction the files are synced when it ends, as PGlite's own query does.
    return (await this.#db.execProtocol(message, { syncToFs: !inTransaction })).messages;
  }

  async #paramTypes(text: string, inTransaction: boolean): Promise<readonly number[]> {
    const known = this.#types.get(text);
    if (known) return known;
    const { serialize } = protocol;
    const messages = await this.#exchange(
      [serialize.parse({ text, types: [] }), serialize.describe({ type: 'S' }), serialize.sync()],
      inTransaction,
    );
    const described = messages.find((m) => m.name === 'parameterDescription') as
      | { dataTypeIDs: number[] }
      | undefined;
    const types = described?.dataTypeIDs ?? [];
    // Texts are the program's statements, a bounded set; a program that builds texts without
    // bound (values written into the text) only makes this forget and describe again.
    if (this.#types.size >= this.#maxTexts) this.#types.clear();
    this.#types.set(text, types);
    return types;
  }

  /**
   * Runs `text` with `params`; the caller holds PGlite's query lock. Types kept from an earlier
   * run may be stale after a schema change (a column's type altered): when the statement then
   * fails with an error of a value's type, outside a transaction, the types are learnt again and
   * the statement runs once more (a failed autocommitted statement changed nothing). Inside a
   * transaction the error is thrown (the transaction is aborted), and the next run learns them.
   */
  async run<R>(
    text: string,
    params: readonly SqlValue[] | undefined,
    inTransaction: boolean,
  ): Promise<QueryResult<R>> {
    const values = params ?? [];
    if (values.length === 0) return this.#runTyped<R>(text, values, [], inTransaction);
    const kept = this.#types.has(text);
    const types = await this.#paramTypes(text, inTransaction);
    try {
      return await this.#runTyped<R>(text, values, types, inTransaction);
    } catch (err) {
      // The statement's types may have changed with the schema: learn them again.
      this.#types.delete(text);
      if (!kept || inTransaction || !STALE_TYPE_CODES.has((err as { code?: string }).code ?? ''))
        throw err;
      const fresh = await this.#paramTypes(text, inTransaction);
      return this.#runTyped<R>(text, values, fresh, inTransaction);
    }
  }

  async #runTyped<R>(
    text: string,
    values: readonly SqlValue[],
    types: readonly number[],
    inTransaction: boolean,
  ): Promise<QueryResult<R>> {
    const db = this.#db;
    const encoded = values.map((v, i) => {
      if (v === null || v === undefined) return null;
      const serializer = db.serializers[types[i]!];
      return serializer ? serializer(v) : String(v);
    });
    const { serialize } = protocol;
    const messages = await this.#exchange(
      [
        serialize.parse({ text, types: types as number[] }),
        serialize.bind({ values: encoded }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      ],
      inTransaction,
    );
    return decode<R>(messages, db.parsers);
  }
}

/**
 * SQLSTATEs a parameter of a stale type causes: invalid text representation, numeric value out
 * of range, datatype mismatch, undefined function or operator, ambiguous function.
 */
const STALE_TYPE_CODES = new Set(['22P02', '22003', '42804', '42883', '42725']);

type Parsers = Record<number | string, (value: string, typeId: number) => unknown>;

interface Field {
  name: string;
  dataTypeID: number;
}

/** Rows and the affected-row count of one statement's messages, as PGlite's `query` builds them. */
function decode<R>(messages: readonly { name: string }[], parsers: Parsers): QueryResult<R> {
  let fields: Field[] = [];
  const rows: R[] = [];
  let affected = 0;
  for (const m of messages) {
    if (m.name === 'rowDescription') {
      fields = (m as unknown as { fields: Field[] }).fields;
    } else if (m.name === 'dataRow') {
      const values = (m as unknown as { fields: (string | null)[] }).fields;
      const row: Record<string, unknown> = {};
      for (let i = 0; i < fields.length; i++) {
        const f = fields[i]!;
        const v = values[i] ?? null;
        const parse = parsers[f.dataTypeID];
        row[f.name] = v === null ? null : parse ? parse(v, f.dataTypeID) : v;
      }
      rows.push(row as R);
    } else if (m.name === 'commandComplete') {
      const words = (m as unknown as { text: string }).text.split(' ');
      const n = Number.parseInt(words[words.length - 1]!, 10);
      if (['INSERT', 'UPDATE', 'DELETE', 'COPY', 'MERGE'].includes(words[0]!) && !Number.isNaN(n))
        affected += n;
    }
  }
  return { rows, rowCount: affected || rows.length };
}
