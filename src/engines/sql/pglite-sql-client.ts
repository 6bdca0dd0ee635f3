import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Mutex, PGlite, type Transaction } from '@electric-sql/pglite';
import { ClosedError, EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './internal/int8.js';
import { assertChannel, beginStatement, toSqlError } from './internal/pg-dialect.js';
import { PgliteStatements } from './internal/pglite-statements.js';
import {
  type ListenOptions,
  type NotificationHandler,
  type QueryResult,
  type SqlClient,
  SqlError,
  type SqlTransaction,
  type SqlValue,
  type TransactionOptions,
} from './sql-client.js';

export interface PgliteSqlClientOptions {
  /** A folder to keep the database in; undefined keeps it in memory. */
  dataDir?: string | undefined;
  /**
   * PostgreSQL's `max_prepared_transactions` for this database: above 0 it can take part in
   * two-phase commit (`PREPARE TRANSACTION`). Default 0, PostgreSQL's own default.
   */
  maxPreparedTransactions?: number;
}

const LOCK_FILE = 'cdp.lock';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite runs in this process and owns its folder: two processes on one folder would corrupt
 * it, so a lock file holding the owner's pid is taken first. A lock left by a dead process is
 * taken over.
 */
async function takeFolderLock(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && pidAlive(owner)) {
        throw new EngineUnavailableError(
          'pglite',
          `the data folder ${dir} is in use by process ${owner}; stop that process, or set CDP_DATA_DIR to another folder`,
          'CDP_DATA_DIR',
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new EngineUnavailableError(
    'pglite',
    `could not lock the data folder ${dir}`,
    'CDP_DATA_DIR',
  );
}

type PgliteQueryable = Pick<PGlite | Transaction, 'query' | 'exec'>;

/**
 * A fresh in-memory PGlite runs initdb, which takes seconds (3 s on an idle 2-core machine, far
 * more under load). An in-memory database therefore starts from a dump of a freshly initialized
 * cluster, made once per PGlite version and kept in the OS temp folder (about 40 MB): loading it
 * is several times faster. Any failure falls back to a plain initdb.
 */
let templateInMemory: Promise<Blob | undefined> | undefined;

async function pgliteVersion(): Promise<string> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const pkg = JSON.parse(await readFile(join(dirname(entry), '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function loadTemplate(): Promise<Blob | undefined> {
  templateInMemory ??= (async () => {
    const path = join(tmpdir(), `cdp-pglite-template-${await pgliteVersion()}.tar`);
    const existing = await readFile(path).catch(() => undefined);
    if (existing) return new Blob([existing]);
    const fresh = await PGlite.create({ parsers });
    try {
      const dump = await fresh.dumpDataDir('none');
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, Buffer.from(await dump.arrayBuffer()));
      await rename(tmp, path);
      return dump;
    } finally {
      await fresh.close();
    }
  })().catch(() => undefined);
  return templateInMemory;
}

async function createInMemory(settings: PgliteSettings): Promise<PGlite> {
  const template = await loadTemplate();
  if (template) {
    try {
      return await PGlite.create({ ...settings, parsers, loadDataDir: template });
    } catch {
      templateInMemory = undefined; // a damaged template: build a new one next time
    }
  }
  return PGlite.create({ ...settings, parsers });
}

/**
 * A new data folder starts from the template too when one was already made on this machine
 * (a second of extracting instead of several of initdb); the first start on a machine runs
 * initdb rather than spend more time building a template.
 */
async function createInFolder(dir: string, settings: PgliteSettings): Promise<PGlite> {
  const initialized = await stat(join(dir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialized) {
    const path = join(tmpdir(), `cdp-pglite-template-${await pgliteVersion()}.tar`);
    const template = await readFile(path).catch(() => undefined);
    if (template) {
      try {
        return await PGlite.create(dir, {
          ...settings,
          parsers,
          loadDataDir: new Blob([template]),
        });
      } catch {
        // A damaged template: clear what it extracted (not our lock) and fall back to initdb.
        for (const name of await readdir(dir))
          if (name !== LOCK_FILE) await rm(join(dir, name), { recursive: true, force: true });
      }
    }
  }
  return PGlite.create(dir, { ...settings, parsers });
}

/** Server settings PGlite takes at start, as postgresql.conf lines. */
interface PgliteSettings {
  postgresqlconf?: string[];
}

function settingsOf(options: PgliteSqlClientOptions): PgliteSettings {
  const n = options.maxPreparedTransactions;
  if (n === undefined || n === 0) return {};
  if (!Number.isInteger(n) || n < 0 || n > 10_000) {
    throw new RangeError(
      `maxPreparedTransactions must be a whole number from 0 to 10000, got ${n}`,
    );
  }
  return { postgresqlconf: [`max_prepared_transactions = ${n}`] };
}

const parsers = {
  [INT8_OID]: parseInt8,
  [INT8_ARRAY_OID]: parseInt8Array,
};

async function runExec(target: PgliteQueryable, script: string): Promise<void> {
  try {
    await target.exec(script);
  } catch (err) {
    throw toSqlError(err, script);
  }
}

/** SqlClient over embedded PGlite (PostgreSQL compiled to WASM, one connection). */
export class PgliteSqlClient implements SqlClient {
  readonly engine = 'pglite' as const;
  readonly #db: PGlite;
  readonly #unlock: (() => Promise<void>) | undefined;
  readonly #inTransaction = new AsyncLocalStorage<{ open: boolean }>();
  readonly #statements: PgliteStatements;
  /**
   * Held by a transaction for its whole life and by a statement outside one for its exchange,
   * so that a statement never lands inside another caller's open transaction (PGlite's own
   * transaction lock is not public; its query lock is taken per exchange).
   */
  readonly #lock = new Mutex();
  #closed = false;

  private constructor(db: PGlite, unlock: (() => Promise<void>) | undefined) {
    this.#db = db;
    this.#unlock = unlock;
    this.#statements = new PgliteStatements(db);
  }

  async #run<R>(
    text: string,
    params: readonly SqlValue[] | undefined,
    inTransaction: boolean,
  ): Promise<QueryResult<R>> {
    try {
      return await this.#db.runExclusive(() =>
        this.#statements.run<R>(text, params, inTransaction),
      );
    } catch (err) {
      throw toSqlError(err, text);
    }
  }

  static async open(options: PgliteSqlClientOptions = {}): Promise<PgliteSqlClient> {
    const dir = options.dataDir ? resolve(options.dataDir, 'pglite') : undefined;
    const settings = settingsOf(options);
    const unlock = dir ? await takeFolderLock(dir) : undefined;
    try {
      const db = dir ? await createInFolder(dir, settings) : await createInMemory(settings);
      return new PgliteSqlClient(db, unlock);
    } catch (err) {
      await unlock?.();
      throw new EngineUnavailableError(
        'pglite',
        `could not open the embedded database${dir ? ` in ${dir}` : ''}: ${errorMessage(err)}. ` +
          'If the folder was written by another PostgreSQL version, move it away or set CDP_DATA_DIR to a new folder.',
        'CDP_DATA_DIR',
        { cause: err },
      );
    }
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('PGlite SqlClient');
    if (this.#inTransaction.getStore()?.open) {
      // PGlite has one connection: this would wait for the open transaction forever.
      throw new SqlError(
        'a query was sent on the client inside its own transaction callback; use the `tx` handle passed to the callback',
        undefined,
      );
    }
  }

  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>> {
    this.#check();
    return this.#lock.runExclusive(() => this.#run<R>(text, params, false));
  }

  exec(script: string): Promise<void> {
    this.#check();
    return runExec(this.#db, script);
  }

  async transaction<T>(
    fn: (tx: SqlTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    this.#check();
    const begin = beginStatement(options);
    try {
      return await this.#lock.runExclusive(() =>
        this.#db.transaction(async (ptx) => {
          // PGlite has issued a plain BEGIN; set the mode as the transaction's first statement.
          if (begin !== 'BEGIN') await ptx.exec(`SET TRANSACTION ${begin.slice('BEGIN '.length)}`);
          const scope = { open: true };
          const live = () => {
            if (!scope.open)
              throw new SqlError(
                'the transaction has ended: a statement was sent on its handle after its callback returned',
                undefined,
              );
          };
          const tx: SqlTransaction = {
            query: async <R>(text: string, params?: readonly SqlValue[]) => {
              live();
              return this.#run<R>(text, params, true);
            },
            exec: async (script: string) => {
              live();
              return runExec(ptx, script);
            },
            notify: async (channel: string, payload?: string) => {
              live();
              assertChannel(channel);
              await this.#run('SELECT pg_notify($1, $2)', [channel, payload ?? ''], true);
            },
          };
          try {
            return await this.#inTransaction.run(scope, () => fn(tx));
          } finally {
            // Work started inside the callback that outlives it may use the client again.
            scope.open = false;
          }
        }),
      );
    } catch (err) {
      throw toSqlError(err);
    }
  }

  async listen(
    channel: string,
    handler: NotificationHandler,
    _options?: ListenOptions,
  ): Promise<() => Promise<void>> {
    this.#check();
    assertChannel(channel);
    // In process, the connection cannot drop: onReconnect is never needed here.
    const unlisten = await this.#db.listen(channel, (payload) => handler(payload, channel));
    return async () => {
      if (!this.#closed) await unlisten();
    };
  }

  async notify(channel: string, payload?: string): Promise<void> {
    assertChannel(channel);
    await this.query('SELECT pg_notify($1, $2)', [channel, payload ?? '']);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#db.close();
    } finally {
      await this.#unlock?.();
    }
  }
}
