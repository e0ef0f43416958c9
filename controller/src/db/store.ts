import { hostname } from 'node:os';
import type { NodePgDatabase, NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgTable } from 'drizzle-orm/pg-core';
import type { AnyColumn, ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import type { EngineLease, EngineLeaseOptions } from '../replicas/engine-lease.js';
import type { Notifications } from '../replicas/notifications.js';
import type * as pgSchema from './schema-pg.js';
import { openSqliteStore } from './sqlite-store.js';

// The storage boundary of issue 16 (docs/high-availability.md): the controller's code talks to a
// Store and never learns which engine it runs on. Queries are drizzle query builders written once
// against `store.t.<table>` and awaited; they are type-checked against the PostgreSQL types, which
// the SQLite tables match column for column (schema-pg.ts derives them; schema-parity.test.ts
// checks the migrations). On SQLite the store hands out its SQLite database and tables under those
// types: sound at run time, since SQL generation and value mapping come from the tables given.

export type Tables = typeof pgSchema;
export type StoreDb = NodePgDatabase<Tables>;
/** What a transaction body receives: the same query API as StoreDb. */
export type StoreTx = Parameters<Parameters<StoreDb['transaction']>[0]>[0];
/** Either of them: what `store.q` is, and what a query helper that may run inside or outside a transaction takes. */
export type Queryable = PgDatabase<NodePgQueryResultHKT, Tables, ExtractTablesWithRelations<Tables>>;
export type Engine = 'sqlite' | 'postgres';

/**
 * How a transaction is isolated from concurrent ones. `serializable` (the default) is the Store's
 * promise: transactions behave as if run one after another. `read-committed` is for a body whose
 * one contended write is a conditional UPDATE of a hot row that states in its WHERE everything the
 * write depends on (a use of a capped enrollment token): each statement sees what was committed
 * before it ran, and an UPDATE that meets a row another transaction is changing waits for it and
 * re-checks its WHERE on the new row, instead of failing the whole transaction for a retry as
 * SERIALIZABLE does. Every replica contending for the row then gets its turn instead of losing a
 * lottery of retries. The body must be correct under that: no decision on a read a concurrent
 * commit could invalidate, other than what the WHERE re-checks or a unique key enforces. SQLite
 * runs every transaction serially whatever is asked (one writer), which is stronger. Nested
 * transactions keep the enclosing one's isolation; a serializable one inside a read-committed one
 * is refused as a bug.
 */
export type Isolation = 'serializable' | 'read-committed';

export interface TransactionOptions {
  /** Default `serializable`. */
  isolation?: Isolation;
}

export interface Store {
  /** For messages and logs only: behaviour that differs between engines is asked by what it means, below. */
  readonly engine: Engine;
  /**
   * Other controller processes (replicas) may use this database at the same time (PostgreSQL);
   * what one process knows in memory (who is connected to it) is then not the whole fleet's.
   */
  readonly shared: boolean;
  /**
   * How long an event id may stay invisible after a higher one became visible: PostgreSQL takes
   * ids at insert and commits transactions concurrently; 0 where ids appear in commit order (SQLite).
   */
  readonly idGapGraceMs: number;
  /**
   * Writers run side by side (PostgreSQL), so two transactions of this process touching the same
   * rows conflict and one runs again; with one writer at a time (SQLite) they simply queue.
   */
  readonly concurrentWriters: boolean;
  /**
   * A multi-row write goes as one statement for all its rows (up to a few hundred; db/chunked.ts):
   * each statement is a round trip to the server (PostgreSQL), where a report group written as
   * statements of fixed row counts took a dozen or more of them. Otherwise (SQLite: no round
   * trips, compiling is the cost) a few fixed row counts compiled once and reused.
   */
  readonly wholeSetStatements: boolean;
  /** Whether the live database can be copied consistently from inside the process (db/backup.ts: SQLite's online backup). */
  readonly onlineBackup: boolean;
  /** The JSON value at `path` inside `json` (a JSON text column), as text, in the engine's JSON dialect. */
  jsonText(json: SQL | AnyColumn, path: ReadonlyArray<string | number>): SQL;
  /** This replica's name among those sharing the database (config replicaId, else host name and pid). */
  readonly replicaId: string;
  /**
   * Reads outside a transaction: committed data only, never another transaction's uncommitted
   * writes. Writes go through transaction() (on SQLite this handle is read-only and refuses them).
   * Errors come wrapped by drizzle; storeUnavailable() recognises a lost database in them.
   */
  readonly db: StoreDb;
  readonly t: Tables;
  /**
   * Where a query belongs: the transaction the caller runs in (at any depth of awaits inside a
   * body of this store's transaction()), else `db`. Code that may be called from a transaction
   * queries through this, so it reads that transaction's own uncommitted writes.
   */
  readonly q: Queryable;
  /**
   * A raw SQL statement through `q`, its rows as plain objects keyed by the SQL column names
   * (alias them). Values come back as the engine holds them: JSON columns as text on SQLite and
   * parsed on PostgreSQL, booleans as 0/1 or true/false; 64-bit integers as numbers on both.
   * For statements drizzle's builders cannot express or that run once per host on hot paths.
   */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  /**
   * A statement given as SQL text in this engine's dialect with positional parameters (what a
   * drizzle builder's toSQL() returns), compiled for query handle `q` (a `store.q`) and run on its
   * connection with a plain array of driver values. For db/chunked.ts, which binds each slot once
   * per statement instead of drizzle's execute() naming and encoding every value on every run. On
   * PostgreSQL a non-empty `name` makes it a prepared statement of each connection it runs on.
   */
  positional(q: Queryable, name: string, text: string): PositionalStatement;
  /**
   * Says that `table` just grew in bulk in the transaction open on the store (a rollout's thousands of
   * members). PostgreSQL's planner estimates from the sample it last took, until autovacuum
   * samples again (up to a minute later, and only past 10 % growth): taking a rollout's 10,000
   * members for the few dozen it saw, it read every member for each report group and each batch
   * of a wave. PostgreSQL samples the table again now (ANALYZE, in the transaction: it counts the
   * transaction's own rows and rolls back with it; a role that does not own the table gets a
   * warning, not an error). SQLite keeps no statistics unless asked and plans by its indexes: nothing.
   */
  grewInBulk(table: PgTable): Promise<void>;
  /**
   * Runs `fn` as one transaction: all of its writes commit together or, if it throws, none do.
   * Transactions behave as if run one after another (SQLite: one writer at a time; PostgreSQL:
   * SERIALIZABLE, `fn` run again after a serialization failure or deadlock, so `fn` does database
   * work and pure computation only, and publishes effects through `notifications` or after it
   * returns). Called inside a body of this store (at any depth of awaits) it is a savepoint of the
   * enclosing transaction; `tx.transaction(fn)` is the same. Throws StoreUnavailable, not a
   * driver error, when the database cannot be reached. `options.isolation` may relax the guarantee
   * for one transaction (see Isolation).
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Rows changed by an awaited insert/update/delete without returning() (SQLite `changes`, PostgreSQL `rowCount`). */
  affected(result: unknown): number;
  /** Publish/subscribe between replicas (PostgreSQL LISTEN/NOTIFY; in-process on SQLite). */
  readonly notifications: Notifications;
  /** The lease that lets exactly one replica run the rollout engine (SQLite: always this process). */
  engineLease(options?: EngineLeaseOptions): EngineLease;
  /** Stops notifications and leases made by this store and closes its connections. */
  close(): Promise<void>;
}

/** A statement of Store.positional. */
export interface PositionalStatement {
  /** Runs it with `values` in parameter order; the rows it returns (none for a plain write), each as its column values in select order, as the driver gives them. */
  run(values: unknown[]): Promise<unknown[][]>;
}

export interface StoreConfig {
  /** A file path (SQLite, the default) or a postgres:// / postgresql:// URL. */
  database: string;
  /** Names this replica (its notifications, its connections in pg_stat_activity: `shoal:<replicaId>:…`); default host name and pid. */
  replicaId?: string;
  /** PostgreSQL connections in the pool; default 10. */
  poolSize?: number;
  logger?: Logger;
}

/** A replica's default name: unique among processes on a network, stable for the life of the process. */
export function defaultReplicaId(): string {
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${process.pid}`;
}

export function isPostgresUrl(database: string): boolean {
  return /^postgres(ql)?:\/\//i.test(database);
}

/**
 * Opens the store `config.database` names and brings its schema up to date. The PostgreSQL engine
 * (node-postgres, its drizzle dialect, the derived tables) is loaded only when asked for: about
 * 10 MB of a SQLite controller's memory otherwise.
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  if (!isPostgresUrl(config.database)) return openSqliteStore(config);
  const { openPostgresStore } = await import('./postgres-store.js');
  return openPostgresStore(config);
}
