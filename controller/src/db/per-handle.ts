import type { Queryable, Store, Tables } from './store.js';

/**
 * Statements for the paths run per report, per poll or per host, where building a drizzle query
 * costs more than the database's own work: `build` runs once per query handle (`store.q`) and its
 * statements are handed back after. SQLite gives every transaction the same handle, PostgreSQL
 * one per pooled connection (db/pg-transaction.ts handleFor), so what is kept is bounded by the
 * pool, not by the transactions run; a named statement is prepared once per connection by node-postgres.
 */
export function perHandle<T>(build: (q: Queryable, t: Tables) => T): (store: Store) => T {
  const built = new WeakMap<object, T>();
  return (store) => {
    const q = store.q;
    let statements = built.get(q);
    if (statements === undefined) {
      statements = build(q, store.t);
      built.set(q, statements);
    }
    return statements;
  };
}
