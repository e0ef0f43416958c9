import Database from 'better-sqlite3';
import { sql, type SQL } from 'drizzle-orm';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { silentLogger, type Logger } from '../../../shared/src/logger.js';
import { SoloLease } from '../replicas/engine-lease.js';
import { LocalNotifications } from '../replicas/notifications.js';
import { AsyncLock } from './async-lock.js';
import { openDatabase, type OpenDatabase } from './open.js';
import { jsonKey } from './json-path.js';
import * as schema from './schema.js';
import { WalCheckpointer } from './wal-checkpointer.js';
import { defaultReplicaId, type Queryable, type Store, type StoreConfig, type StoreDb, type StoreTx, type Tables } from './store.js';
import { currentTx, runTransaction, type TransactionEngine } from './tx-scope.js';

/**
 * The default engine: one SQLite file, two connections. The writer sits behind an async lock held
 * for a whole transaction: a body awaits between its statements, and anything else reaching the
 * writer meanwhile would land inside that transaction. Reads outside transactions use a read-only
 * connection; in WAL mode it sees the last commit and never waits for the writer. One store per
 * file per process: a second writer connection in the same process would wait for the first one's
 * lock synchronously (busy_timeout), blocking the very event loop that would release it. A third
 * connection, on a thread of its own, copies the WAL into the file (db/wal-checkpointer.ts), so a
 * commit never does it on the event loop.
 */
export function openSqliteStore(config: StoreConfig): Store {
  const file = config.database;
  if (file === '' || file === ':memory:') {
    throw new Error(`database ${JSON.stringify(file)}: the store needs a file path (it opens a writer and a reader connection on it)`);
  }
  const logger = (config.logger ?? silentLogger()).child({ component: 'store', engine: 'sqlite' });
  const replicaId = config.replicaId ?? defaultReplicaId();
  const writer = openDatabase(file);
  const reader = new Database(file, { readonly: true, fileMustExist: true });
  reader.pragma('busy_timeout = 5000');
  const lock = new AsyncLock();
  const sqlite = writer.sqlite;
  const checkpointer = new WalCheckpointer(sqlite, { logger });
  let closed = false;
  // Transaction control runs for every transaction and savepoint: compiled once, not parsed per use.
  const control = new Map<string, Database.Statement>();
  const run = (statement: string): void => {
    let prepared = control.get(statement);
    if (!prepared) control.set(statement, (prepared = sqlite.prepare(statement)));
    prepared.run();
  };

  // Every transaction gets this one handle (prepared statements are cached per handle). Its own
  // transaction() is better-sqlite3's, which needs a synchronous body: route it to savepoints.
  const txHandle = Object.create(writer.db, {
    transaction: { value: <T>(fn: (tx: StoreTx) => Promise<T>) => store.transaction(fn) },
  }) as StoreTx;

  const engine: TransactionEngine<StoreTx> = {
    owner: {},
    // Any isolation asked for: one writer at a time is serial, which is at least as strong.
    top: (body) =>
      lock.run(async () => {
        if (closed) throw new Error('the store is closed');
        // IMMEDIATE takes the write lock now, so a transaction never fails halfway on a lock upgrade.
        run('BEGIN IMMEDIATE');
        try {
          const result = await body(txHandle);
          run('COMMIT');
          checkpointer.committed();
          return result;
        } catch (error) {
          if (sqlite.inTransaction) run('ROLLBACK');
          throw error;
        }
      }),
    savepoint: async (_tx, name, body) => {
      run(`SAVEPOINT ${name}`);
      try {
        const result = await body();
        run(`RELEASE ${name}`);
        return result;
      } catch (error) {
        run(`ROLLBACK TO ${name}`);
        run(`RELEASE ${name}`);
        throw error;
      }
    },
  };

  const notifications = new LocalNotifications(engine.owner, logger);
  const readDb = drizzle(reader, { schema }) as unknown as StoreDb;
  const here = (): Queryable => (currentTx(engine.owner) as Queryable | undefined) ?? readDb;
  const store: Store = {
    engine: 'sqlite',
    shared: false,
    idGapGraceMs: 0,
    concurrentWriters: false,
    wholeSetStatements: false,
    onlineBackup: true,
    jsonText: (json, path) => {
      const steps = path.map((step) => (typeof step === 'number' ? `[${step}]` : `.${jsonKey(step)}`)).join('');
      return sql`json_extract(${json}, ${`$${steps}`})`;
    },
    replicaId,
    db: readDb,
    t: schema as unknown as Tables,
    get q() {
      return here();
    },
    rows: async <T extends Record<string, unknown>>(query: SQL) => (here() as unknown as BetterSQLite3Database).all<T>(query),
    positional: (q, _name, text) => {
      // Transactions run on the writer; reads outside them on the reader (see `here`).
      const statement = (q === readDb ? reader : sqlite).prepare(text);
      if (!statement.reader) {
        return {
          run: async (values) => {
            statement.run(values);
            return [];
          },
        };
      }
      statement.raw(true);
      return { run: async (values) => statement.all(values) as unknown[][] };
    },
    grewInBulk: async () => {},
    transaction: (fn, options) => runTransaction(engine, fn, options),
    affected: (result) => (result as { changes?: number }).changes ?? 0,
    notifications,
    engineLease: (options) => new SoloLease(store, options),
    async close() {
      if (closed) return;
      // Waits for the transaction in progress, and makes every later one fail.
      await lock.run(async () => {
        closed = true;
      });
      await notifications.close();
      await checkpointer.close();
      reader.close();
      finalCheckpoint(sqlite, logger);
      writer.close();
    },
  };
  writers.set(store, writer);
  return store;
}

/**
 * Copies what the WAL still holds into the database file and empties it, so a stopped
 * controller's file is complete on its own (a copy of it, `shoal` commands that open it). Another
 * process reading the file can hold the WAL back: then it stays beside the file, as safe as
 * before, and the log says so.
 */
function finalCheckpoint(sqlite: Database.Database, logger: Logger): void {
  const [result] = sqlite.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  if (result && result.busy !== 0) {
    logger.warn({ frames: result.log, copied: result.checkpointed }, 'closed with pages left in the -wal file (another connection held them): the database file needs it beside it until the next start copies them');
  }
}

const writers = new WeakMap<Store, OpenDatabase>();

/**
 * The synchronous better-sqlite3 connection under a SQLite store, for what only SQLite has: the
 * online backup (db/backup.ts), whether a failed statement ended the transaction (reports/store.ts),
 * and tests and benchmarks that inspect the file directly. Never for queries of the controller:
 * they go through the Store. Throws on PostgreSQL, naming the engine.
 */
export function sqliteWriter(store: Store): OpenDatabase {
  const writer = writers.get(store);
  if (!writer) throw new Error(`this needs the SQLite database file and the controller runs on ${store.engine}`);
  return writer;
}
