import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { eq } from 'drizzle-orm';
import type Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { openDatabase, type OpenDatabase } from '../../../controller/src/db/open.js';
import * as pgSchema from '../../../controller/src/db/schema-pg.js';
import * as sqliteSchema from '../../../controller/src/db/schema.js';
import { postgresTestDatabase, stopPostgresTestServer, type PostgresTestDatabase } from '../postgres-database.js';

// The two engines' schemas, as their migrations actually build them, must describe the same tables:
// same columns (name, nullability, whether there is a default, a compatible type), primary keys,
// indexes (unique or not, and the predicate of a partial one) and foreign keys. schema-pg.ts derives
// its tables from schema.ts, so this fails when controller/drizzle-pg was not regenerated after a
// schema change, or the derivation is wrong.

interface TableShape {
  columns: Record<string, { type: 'integer' | 'text'; nullable: boolean; hasDefault: boolean }>;
  primaryKey: string[];
  /** where: a partial index's predicate, as predicate() spells it; null for an index of every row. */
  indexes: Record<string, { unique: boolean; where: string | null; columns: string[] }>;
  foreignKeys: { columns: string[]; table: string; foreignColumns: string[]; onDelete: string }[];
}
type SchemaShape = Record<string, TableShape>;

/** PostgreSQL types each SQLite storage class may become (booleans are integers in SQLite, JSON is text). */
const COMPATIBLE: Record<string, 'integer' | 'text'> = { bigint: 'integer', integer: 'integer', boolean: 'integer', text: 'text', jsonb: 'text' };
const ON_DELETE: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };

function sortForeignKeys(keys: TableShape['foreignKeys']): TableShape['foreignKeys'] {
  return keys.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** An index predicate as both engines can be compared on: lower case, without quotes, parentheses or the table's own name. */
function predicate(table: string, text: string): string {
  return text
    .toLowerCase()
    .replace(/[`"()]/g, '')
    .replaceAll(`${table}.`, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function sqliteShape(sqlite: Database.Database): SchemaShape {
  const shape: SchemaShape = {};
  const tables = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__drizzle_migrations'").pluck().all() as string[];
  for (const table of tables) {
    const info = sqlite.pragma(`table_info(${table})`) as { name: string; type: string; notnull: number; dflt_value: string | null; pk: number }[];
    const indexes: TableShape['indexes'] = {};
    for (const index of sqlite.pragma(`index_list(${table})`) as { name: string; unique: number; origin: string; partial: number }[]) {
      const definition = index.partial === 1 ? (sqlite.prepare('SELECT sql FROM sqlite_master WHERE type = ? AND name = ?').pluck().get('index', index.name) as string) : null;
      if (index.origin === 'pk') continue;
      const columns = (sqlite.pragma(`index_info(${index.name})`) as { seqno: number; name: string }[]).sort((a, b) => a.seqno - b.seqno).map((c) => c.name);
      indexes[index.name] = { unique: index.unique === 1, where: definition === null ? null : predicate(table, definition.slice(definition.search(/\bwhere\b/i) + 'where'.length)), columns };
    }
    const keys = new Map<number, TableShape['foreignKeys'][number]>();
    for (const fk of sqlite.pragma(`foreign_key_list(${table})`) as { id: number; seq: number; table: string; from: string; to: string; on_delete: string }[]) {
      const key = keys.get(fk.id) ?? { columns: [], table: fk.table, foreignColumns: [], onDelete: fk.on_delete };
      key.columns[fk.seq] = fk.from;
      key.foreignColumns[fk.seq] = fk.to;
      keys.set(fk.id, key);
    }
    shape[table] = {
      columns: Object.fromEntries(
        info.map((c) => [c.name, { type: c.type.toLowerCase() as 'integer' | 'text', nullable: c.notnull === 0 && c.pk === 0, hasDefault: c.dflt_value !== null }]),
      ),
      primaryKey: info.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
      indexes,
      foreignKeys: sortForeignKeys([...keys.values()]),
    };
  }
  return shape;
}

async function pgShape(client: pg.Client): Promise<SchemaShape> {
  const shape: SchemaShape = {};
  const { rows: tables } = await client.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'");
  for (const { name: table } of tables) {
    const { rows: columns } = await client.query<{ name: string; type: string; nullable: string; default: string | null; identity: string }>(
      `SELECT column_name AS name, data_type AS type, is_nullable AS nullable, column_default AS default, is_identity AS identity
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
      [table],
    );
    const columnsOf = (attnums: string, relation: string) =>
      `ARRAY(SELECT a.attname::text FROM unnest(${attnums}) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = ${relation} AND a.attnum = k.attnum ORDER BY k.ord)`;
    const { rows: indexes } = await client.query<{ name: string; unique: boolean; primary: boolean; where: string | null; columns: string[] }>(
      `SELECT i.relname AS name, ix.indisunique AS unique, ix.indisprimary AS primary, pg_get_expr(ix.indpred, ix.indrelid) AS where, ${columnsOf('ix.indkey', 'ix.indrelid')} AS columns
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid WHERE ix.indrelid = $1::regclass`,
      [`public.${table}`],
    );
    const { rows: foreignKeys } = await client.query<{ table: string; onDelete: string; columns: string[]; foreignColumns: string[] }>(
      `SELECT f.relname AS table, c.confdeltype AS "onDelete", ${columnsOf('c.conkey', 'c.conrelid')} AS columns, ${columnsOf('c.confkey', 'c.confrelid')} AS "foreignColumns"
         FROM pg_constraint c JOIN pg_class f ON f.oid = c.confrelid WHERE c.contype = 'f' AND c.conrelid = $1::regclass`,
      [`public.${table}`],
    );
    shape[table] = {
      columns: Object.fromEntries(
        columns.map((c) => {
          const type = COMPATIBLE[c.type];
          if (!type) throw new Error(`${table}.${c.name} is ${c.type} in PostgreSQL, which has no SQLite counterpart in this test`);
          return [c.name, { type, nullable: c.nullable === 'YES', hasDefault: c.default !== null }];
        }),
      ),
      primaryKey: indexes.find((i) => i.primary)?.columns ?? [],
      indexes: Object.fromEntries(indexes.filter((i) => !i.primary).map((i) => [i.name, { unique: i.unique, where: i.where === null ? null : predicate(table, i.where), columns: i.columns }])),
      foreignKeys: sortForeignKeys(foreignKeys.map((fk) => ({ columns: fk.columns, table: fk.table, foreignColumns: fk.foreignColumns, onDelete: ON_DELETE[fk.onDelete]! }))),
    };
  }
  return shape;
}

type TableRows<S> = { [K in keyof S]: S[K] extends { $inferSelect: infer R; $inferInsert: infer I } ? { select: R; insert: I } : never };

describe('PostgreSQL schema', () => {
  let database: PostgresTestDatabase;
  let client: pg.Client;
  let sqlite: OpenDatabase;
  beforeAll(async () => {
    // Migrated from controller/drizzle-pg (see postgres-database.ts).
    database = await postgresTestDatabase();
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    sqlite = openDatabase(':memory:');
  });
  afterAll(async () => {
    sqlite?.close();
    await client?.end();
    await stopPostgresTestServer();
  });

  it('declares what the SQLite schema declares: tables, columns, primary keys, indexes, foreign keys', async () => {
    const expected = sqliteShape(sqlite.sqlite);
    const actual = await pgShape(client);
    const stale = 'PostgreSQL differs from SQLite (after a change to schema.ts run: npx drizzle-kit generate --config drizzle-pg.config.ts)';
    expect(Object.keys(actual).sort(), stale).toEqual(Object.keys(expected).sort());
    for (const table of Object.keys(expected)) expect({ table, ...actual[table] }, stale).toEqual({ table, ...expected[table] });
  });

  it('derives every table of schema.ts, with the same row types', () => {
    const sqliteTables = Object.keys(sqliteSchema).sort();
    expect(Object.keys(pgSchema).sort()).toEqual(sqliteTables);
    expectTypeOf<TableRows<typeof pgSchema>>().toEqualTypeOf<TableRows<typeof sqliteSchema>>();
  });

  it('round-trips a row through drizzle on both engines to the same values', async () => {
    const db = drizzlePg(client);
    const host = { name: 'web-1', publicKey: 'key', tags: ['web', 'eu'], enrolledAt: 1_767_225_600_123, lastSeenAt: null, paused: true, desiredVersion: 3 };
    await db.insert(pgSchema.hosts).values(host);
    sqlite.db.insert(sqliteSchema.hosts).values(host).run();
    const [fromPg] = await db.select().from(pgSchema.hosts).where(eq(pgSchema.hosts.name, 'web-1'));
    const fromSqlite = sqlite.db.select().from(sqliteSchema.hosts).where(eq(sqliteSchema.hosts.name, 'web-1')).get();
    expect(fromPg).toEqual(fromSqlite);
    expect(fromPg).toMatchObject(host);

    const event = { host: 'web-1', at: 1, kind: 'enrolled', actor: 'test', data: { nested: { ok: true } } };
    const [first] = await db.insert(pgSchema.events).values(event).returning();
    const firstSqlite = sqlite.db.insert(sqliteSchema.events).values(event).returning().get();
    expect(first).toEqual(firstSqlite);
    await db.delete(pgSchema.hosts).where(eq(pgSchema.hosts.name, 'web-1'));
    expect(await db.select().from(pgSchema.events)).toEqual([]);
  });
});
