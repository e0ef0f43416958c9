import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { Db, Tx } from './open.js';

const caches = new WeakMap<object, Map<string, unknown>>();

/**
 * Builds a drizzle prepared statement once per database (or transaction) handle. Building a query
 * costs ~250 µs; running a prepared one ~10 µs. That matters on the paths every agent hits: polls,
 * websocket logins, pushes.
 */
export function prepared<T>(db: Db | Tx, key: string, build: () => T): T {
  let cache = caches.get(db);
  if (!cache) {
    cache = new Map();
    caches.set(db, cache);
  }
  let statement = cache.get(key) as T | undefined;
  if (statement === undefined) {
    statement = build();
    cache.set(key, statement);
  }
  return statement;
}

/**
 * A plain better-sqlite3 statement, prepared once per database handle, for the few statements that
 * run once per host of a wave or once per report: there drizzle's parameter filling and row mapping
 * cost more than SQLite itself. Prepared on the database, it runs inside whatever transaction is
 * open on that connection. Column names are the SQL ones (snake_case): alias them in the query.
 */
export function statement(db: Db, text: string): Statement {
  return prepared(db, `sql:${text}`, () => {
    const client = (db as Db & { $client?: Database.Database }).$client;
    if (!client || typeof client.prepare !== 'function') throw new Error('statement: the database handle has no better-sqlite3 client');
    return client.prepare(text);
  });
}
