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
