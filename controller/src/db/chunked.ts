import { inArray, sql, type AnyColumn, type Placeholder, type SQL } from 'drizzle-orm';
import type { Queryable, Store, Tables } from './store.js';

/**
 * The row counts statements are prepared for. Any number of rows is written as a sum of these,
 * largest first (600 rows: 2 x 256, 64, 16, 2 x 4), so a wave's batch is a handful of statements.
 */
const CHUNK_SIZES = [256, 64, 16, 4, 1] as const;
const LARGEST_CHUNK = CHUNK_SIZES[0];

interface Prepared {
  execute(params: Record<string, unknown>): unknown;
}

/** A statement for a number of rows, not yet prepared: a drizzle query builder. */
interface Preparable {
  prepare(name: string): Prepared;
}

/**
 * The row counts a write of `rows` rows goes in. A store with whole-set statements
 * (Store.wholeSetStatements, PostgreSQL) takes up to LARGEST_CHUNK rows a statement, so a report
 * group or a wave's batch of that size is one round trip; others the prepared sizes.
 */
function chunkSizes(store: Store, rows: number): number[] {
  const sizes: number[] = [];
  let left = rows;
  if (store.wholeSetStatements) {
    for (; left > 0; left -= Math.min(left, LARGEST_CHUNK)) sizes.push(Math.min(left, LARGEST_CHUNK));
    return sizes;
  }
  for (const size of CHUNK_SIZES) for (; left >= size; left -= size) sizes.push(size);
  return sizes;
}

/**
 * A multi-row write (a batch of manifests, events, member updates) through statements prepared
 * once per query handle and row count, instead of a drizzle build per batch. Building a 500-row
 * statement (drizzle's checks on every value, then SQLite compiling it afresh) cost more than
 * executing it: about 40 % of the controller's CPU while it issued a 10,000-host wave. PostgreSQL
 * gets one statement for the whole batch (chunkSizes); node-postgres prepares a statement of one
 * of CHUNK_SIZES once per connection under `<name>_<size>`, any other size goes unnamed (planned
 * each time: a name per row count would leave hundreds of prepared statements on each connection).
 *
 * `build` makes the statement for `size` rows with placeholders `<field><i>` for i < size;
 * `bind` names each row's values the same way (see `indexedParams`).
 */
export function chunkedWrite<Row>(
  name: string,
  build: (q: Queryable, t: Tables, size: number) => Preparable,
  bind: (row: Row, index: number, params: Record<string, unknown>) => void,
): (store: Store, rows: readonly Row[]) => Promise<unknown[]> {
  const built = new WeakMap<object, Map<number, Prepared>>();
  const statement = (store: Store, size: number): Prepared => {
    const q = store.q;
    let bySize = built.get(q);
    if (!bySize) built.set(q, (bySize = new Map()));
    let prepared = bySize.get(size);
    if (!prepared) {
      const named = (CHUNK_SIZES as readonly number[]).includes(size);
      bySize.set(size, (prepared = build(q, store.t, size).prepare(named ? `${name}_${size}` : '')));
    }
    return prepared;
  };
  // What each statement returned, in order (the rows of a `returning`, for those that have one).
  return async (store, rows) => {
    const results: unknown[] = [];
    let at = 0;
    for (const size of chunkSizes(store, rows.length)) {
      const params: Record<string, unknown> = {};
      for (let i = 0; i < size; i++) bind(rows[at + i]!, i, params);
      results.push(await statement(store, size).execute(params));
      at += size;
    }
    return results;
  };
}

/** Copies `row`'s fields into `params` as `<field><index>`: the `bind` of a chunkedWrite over plain rows. */
export function indexedParams<Row extends object>(row: Row, index: number, params: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(row)) params[`${field}${index}`] = value;
}

/** `{ field: placeholder('<field><index>') }` for each field: one row of a chunk statement's values. */
export function placeholderRow<Field extends string>(fields: readonly Field[], index: number): Record<Field, Placeholder> {
  return Object.fromEntries(fields.map((field) => [field, sql.placeholder(`${field}${index}`)])) as Record<Field, Placeholder>;
}

/** 0, 1, …, size - 1: the row indexes of a chunk statement. */
export function rowIndexes(size: number): number[] {
  return Array.from({ length: size }, (_, i) => i);
}

/**
 * Each row's own value in a chunk statement that updates rows by a key: a `case` on `column` over
 * the rows' keys (placeholders `<key><i>`), or the one row's value in a one-row chunk. Values
 * inside a `case` need a cast on PostgreSQL, which cannot infer a parameter's type there.
 */
export function byRowKey(column: AnyColumn, key: string, size: number, value: (index: number) => SQL): SQL {
  if (size === 1) return value(0);
  return sql`case ${column} ${sql.join(rowIndexes(size).map((i) => sql`when ${sql.placeholder(`${key}${i}`)} then ${value(i)}`), sql` `)} end`;
}

/** `column in (<key>0, …)`: the rows a chunk statement keyed by `key` touches. */
export function rowKeysIn(column: AnyColumn, key: string, size: number): SQL {
  return inArray(column, rowIndexes(size).map((i) => sql.placeholder(`${key}${i}`)));
}
