import { and, eq, inArray, is, Param, Placeholder, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import type { PositionalStatement, Queryable, Store, Tables } from './store.js';

/**
 * The row counts statements are prepared for. Any number of rows is written as a sum of these,
 * largest first (600 rows: 2 x 256, 64, 16, 2 x 4), so a wave's batch is a handful of statements.
 */
const CHUNK_SIZES = [256, 64, 16, 4, 1] as const;
const LARGEST_CHUNK = CHUNK_SIZES[0];

/** A statement for a number of rows, as built: drizzle's query builder gives its SQL text and parameters. */
interface Buildable {
  toSQL(): { sql: string; params: unknown[] };
}

/** A chunk statement that returns rows (a `returning`, a select), with the columns it selects. */
export interface ReturningChunk {
  query: Buildable;
  /** The fields the statement selects, as given to its `returning()` or `select()`: each returned row is mapped back through them as drizzle does. */
  returns: Record<string, AnyColumn>;
}

interface Encoder {
  mapToDriverValue(value: unknown): unknown;
}

interface Decoder {
  mapFromDriverValue(value: unknown): unknown;
}

/**
 * A chunk statement for one row count, whichever connection runs it: its SQL, and where each
 * parameter's value comes from, worked out once: parameter k is `rows[at + offsets[k]][fields[k]]`
 * through `encoders[k]` when it has one, or `constants[k]` when offsets[k] is -1.
 */
interface Bound {
  /** Its prepared-statement name (empty: unnamed) and SQL text. */
  name: string;
  text: string;
  fields: string[];
  offsets: number[];
  encoders: Array<Encoder | undefined>;
  constants: unknown[];
  names: string[] | undefined;
  decoders: Decoder[];
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
 * A multi-row write (a batch of manifests, events, member updates) or a read by many keys (a
 * report group's rollout members, a wave's pending members, a renewal batch's reboot settings) through
 * statements prepared once per query handle and row count, instead of a drizzle build per batch.
 * Building a 500-row statement (drizzle's checks on every value, then SQLite compiling it afresh)
 * cost more than executing it: about 40 % of the controller's CPU while it issued a 10,000-host
 * wave. PostgreSQL gets one statement for the whole batch (chunkSizes); node-postgres prepares a
 * statement of one of CHUNK_SIZES once per connection under `<name>_<size>`, any other size goes
 * unnamed (planned each time: a name per row count would leave hundreds of prepared statements
 * on each connection).
 *
 * `build` makes the statement for `size` rows, row i's values as placeholders `rowValue(field, i)`
 * (placeholderRow, rowKeysIn, rowValues make them) and values shared by every row of the write
 * (a rollout id, a time) as `shared(field)`, taken from the chunk's first row. Drizzle builds the
 * SQL text; the values are bound by position (Store.positional), each parameter's source worked
 * out once per statement: drizzle's execute() looked up and encoded each of a wave's 100,000
 * values by name, about 15 % of the main thread's CPU for a 10,000-host wave (a profile of
 * bench/wave-issue.ts). Returns the rows a ReturningChunk returns, mapped as drizzle maps them
 * (flat selections of columns); none for a plain write.
 */
export function chunkedStatement<Row extends object, Out = never>(
  name: string,
  build: (q: Queryable, t: Tables, size: number) => Buildable | ReturningChunk,
): (store: Store, rows: readonly Row[]) => Promise<Out[]> {
  // The SQL and its binding are the same on every connection of a store, so they are kept once
  // per store and size; only the prepared statement is per query handle. Kept per handle, a
  // PostgreSQL controller held them for every size up to 256 on each of its pooled connections.
  const bound = new WeakMap<Store, Map<number, Bound>>();
  const prepared = new WeakMap<object, Map<number, PositionalStatement>>();
  const statement = (store: Store, size: number): { binding: Bound; statement: PositionalStatement } => {
    const q = store.q;
    let bindings = bound.get(store);
    if (!bindings) bound.set(store, (bindings = new Map()));
    let binding = bindings.get(size);
    if (!binding) {
      const named = (CHUNK_SIZES as readonly number[]).includes(size);
      bindings.set(size, (binding = bind(named ? `${name}_${size}` : '', build(q, store.t, size))));
    }
    let statements = prepared.get(q);
    if (!statements) prepared.set(q, (statements = new Map()));
    let ready = statements.get(size);
    if (!ready) statements.set(size, (ready = store.positional(q, binding.name, binding.text)));
    return { binding, statement: ready };
  };
  return async (store, rows) => {
    const results: Out[] = [];
    let at = 0;
    for (const size of chunkSizes(store, rows.length)) {
      const {
        binding: { fields, offsets, encoders, constants, names, decoders },
        statement: ready,
      } = statement(store, size);
      const values = new Array<unknown>(fields.length);
      for (let k = 0; k < fields.length; k++) {
        const offset = offsets[k]!;
        if (offset < 0) {
          values[k] = constants[k];
          continue;
        }
        const row = rows[at + offset] as Record<string, unknown>;
        const field = fields[k]!;
        let value = row[field];
        if (value === undefined) {
          if (!(field in row)) throw new Error(`${name}: a row has no field "${field}" (it has ${Object.keys(row).join(', ')})`);
          value = null;
        }
        const encoder = encoders[k];
        values[k] = encoder ? encoder.mapToDriverValue(value) : value;
      }
      const returned = await ready.run(values);
      if (names) for (const row of returned) results.push(mapped(row, names, decoders) as Out);
      at += size;
    }
    return results;
  };
}

/** Works out, once per statement, where each of its parameters comes from (see Bound). */
function bind(name: string, built: Buildable | ReturningChunk): Bound {
  const query = 'returns' in built ? built.query : built;
  const { sql: text, params } = query.toSQL();
  const bound: Bound = { name, text, fields: [], offsets: [], encoders: [], constants: [], names: undefined, decoders: [] };
  for (const param of params) {
    // An insert's value is a Param around the placeholder with the column as its encoder (a JSON column's stringify).
    const [placeholder, encoder] = is(param, Param) && is(param.value, Placeholder) ? [param.value, param.encoder as Encoder] : [param, undefined];
    if (is(placeholder, Placeholder)) {
      const { field, offset } = parsePlaceholder(placeholder.name);
      bound.fields.push(field);
      bound.offsets.push(offset);
      bound.encoders.push(encoder);
      bound.constants.push(undefined);
    } else {
      bound.fields.push('');
      bound.offsets.push(-1);
      bound.encoders.push(undefined);
      bound.constants.push(param);
    }
  }
  if ('returns' in built) {
    bound.names = Object.keys(built.returns);
    bound.decoders = Object.values(built.returns);
  }
  return bound;
}

/** A returned row as drizzle maps a flat selection of columns: each non-null value through its column's decoder. */
function mapped(row: unknown[], names: readonly string[], decoders: readonly Decoder[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let k = 0; k < names.length; k++) {
    const value = row[k];
    out[names[k]!] = value === null || value === undefined ? null : decoders[k]!.mapFromDriverValue(value);
  }
  return out;
}

/** Row placeholders are `<field>#<i>`; a name without `#` is a value shared by all rows, read from the chunk's first. */
const ROW_MARK = '#';

function parsePlaceholder(name: string): { field: string; offset: number } {
  const mark = name.lastIndexOf(ROW_MARK);
  if (mark < 0) return { field: name, offset: 0 };
  return { field: name.slice(0, mark), offset: Number(name.slice(mark + 1)) };
}

/** Row `index`'s `field` in a chunk statement. */
export function rowValue(field: string, index: number): Placeholder {
  return sql.placeholder(`${field}${ROW_MARK}${index}`);
}

/** `field` of the write's rows, the same in all of them (a rollout id, a time): bound from each chunk's first row. */
export function shared(field: string): Placeholder {
  return sql.placeholder(field);
}

/** `{ field: rowValue(field, index) }` for each field: one row of a chunk statement's values. */
export function placeholderRow<Field extends string>(fields: readonly Field[], index: number): Record<Field, Placeholder> {
  return Object.fromEntries(fields.map((field) => [field, rowValue(field, index)])) as Record<Field, Placeholder>;
}

/** 0, 1, …, size - 1: the row indexes of a chunk statement. */
export function rowIndexes(size: number): number[] {
  return Array.from({ length: size }, (_, i) => i);
}

/**
 * Each row's own value in a chunk statement keyed by `key`: a `case` on `column` over the rows'
 * keys, or the one row's value in a one-row chunk. Values inside a `case` need a cast on
 * PostgreSQL, which cannot infer a parameter's type there. Linear in the rows for each row it
 * touches: updates take their values from rowValues instead; this is for a delete's condition.
 */
export function byRowKey(column: AnyColumn, key: string, size: number, value: (index: number) => SQL): SQL {
  if (size === 1) return value(0);
  return sql`case ${column} ${sql.join(rowIndexes(size).map((i) => sql`when ${rowValue(key, i)} then ${value(i)}`), sql` `)} end`;
}

/** `column in (<key> of each row)`: the rows a chunk statement keyed by `key` touches. */
export function rowKeysIn(column: AnyColumn, key: string, size: number): SQL {
  return inArray(column, rowIndexes(size).map((i) => rowValue(key, i)));
}

/** The SQL type of a rowValues field: `text` as bound, others cast where used. */
export type ValueType = 'text' | 'bigint';

/**
 * The rows' values as a table to update from: `from(v.from)` with `v.from` = `(values (<row 0>),
 * …) as v`, and `v.of[field]` the field's value in the joined row. An `update … from` it finds
 * each target row's values by a join on the key, an index lookup a row, where a `case` over the
 * keys costs a comparison per key for each row (O(rows²)). Both engines name a VALUES list's
 * columns column1, column2, …; SQLite has UPDATE FROM since 3.33.
 *
 * The list holds bare parameters: PostgreSQL types them text, so a field of another type is cast
 * where it is used. A cast inside the list instead made SQLite's planner scan the whole target
 * table against the list for a chunk of 256 rows (five times the `case`'s cost, not a fifth).
 */
export function rowValues<Field extends string>(
  types: Record<Field, ValueType>,
  size: number,
): { from: SQL; of: Record<Field, SQL>; joins(column: AnyColumn, key: Field): SQL } {
  const fields = Object.keys(types) as Field[];
  const tuple = (i: number) => sql`(${sql.join(fields.map((field) => rowValue(field, i)), sql`, `)})`;
  const of = Object.fromEntries(
    fields.map((field, k) => [field, types[field] === 'text' ? sql.raw(`v.column${k + 1}`) : sql.raw(`cast(v.column${k + 1} as ${types[field]})`)]),
  ) as Record<Field, SQL>;
  return {
    from: sql`(values ${sql.join(rowIndexes(size).map(tuple), sql`, `)}) as v`,
    of,
    // The join, plus the keys as an `in (…)` list bound to the same values. Given only the join,
    // PostgreSQL hashed the VALUES list and scanned the whole target table against it (a
    // sequential scan of every host for each report group; its estimate of a table that grew
    // since it was last analysed makes a scan look cheap); the list lets it fetch just those rows
    // by the key's index. SQLite looks each row up by key either way.
    joins: (column, key) => and(eq(column, of[key]), rowKeysIn(column, key, size))!,
  };
}
