import { getTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type OpenDatabase } from '../../../controller/src/db/open.js';
import * as schema from '../../../controller/src/db/schema.js';

describe('controller database', () => {
  let dir: string;
  let database: OpenDatabase;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-db-test-'));
    database = openDatabase(join(dir, 'controller.sqlite'));
  });
  afterEach(() => {
    database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in WAL mode with foreign keys enforced and a busy timeout', () => {
    expect(database.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(database.sqlite.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(database.sqlite.pragma('busy_timeout', { simple: true })).toBeGreaterThanOrEqual(1000);
    expect(() =>
      database.sqlite.prepare("insert into manifests (host, version, store_path, action, rollout_id, issued_at, expires_at, envelope) values ('ghost', 1, '/nix/store/x', 'switch', null, 0, 0, '{}')").run(),
    ).toThrow(/FOREIGN KEY/);
  });

  it('creates the database readable by its owner only', () => {
    database.sqlite.prepare("insert into hosts (name, public_key) values ('web-1', 'AAAA')").run();
    for (const suffix of ['', '-wal', '-shm']) {
      expect(statSync(join(dir, `controller.sqlite${suffix}`)).mode & 0o777, suffix).toBe(0o600);
    }
  });

  it('has migrations that build exactly the tables and columns the schema declares', () => {
    const tables = (Object.values(schema) as unknown[]).filter((value): value is SQLiteTable => value instanceof SQLiteTable);
    expect(tables.length).toBeGreaterThanOrEqual(6);
    for (const table of tables) {
      const config = getTableConfig(table);
      const columns = database.sqlite.prepare(`select name from pragma_table_info(?)`).pluck().all(config.name);
      expect(new Set(columns), config.name).toEqual(new Set(config.columns.map((column) => column.name)));
    }
  });

  it('opens an existing database again without re-running migrations', () => {
    database.sqlite.prepare("insert into hosts (name, public_key) values ('web-1', 'AAAA')").run();
    database.close();
    database = openDatabase(join(dir, 'controller.sqlite'));
    expect(database.sqlite.prepare('select name from hosts').pluck().all()).toEqual(['web-1']);
  });
});
