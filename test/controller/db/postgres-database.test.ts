import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresTestDatabase, stopPostgresTestServer } from '../postgres-database.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL test databases', () => {
  afterAll(async () => {
    await stopPostgresTestServer();
  });

  it('gives each caller its own database with the controller schema, as the unprivileged role', async () => {
    const [one, two] = [await postgresTestDatabase(), await postgresTestDatabase()];
    expect(one.url).not.toBe(two.url);
    expect(one.server).toBe(two.server);
    const tables = await query<{ name: string }>(one.url, "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['hosts', 'manifests', 'reports', 'rollouts', 'webhook_deliveries']));

    await query(one.url, "INSERT INTO hosts (name, public_key) VALUES ('web-1', 'key')");
    expect(await query(two.url, 'SELECT name FROM hosts')).toEqual([]);
    expect(await query(one.url, 'SELECT current_user AS user, name FROM hosts')).toEqual([{ user: 'shoal', name: 'web-1' }]);

    await one.drop();
    await expect(query(one.url, 'SELECT 1')).rejects.toThrow(/does not exist/);
  });

  it('hands a released database to the next caller as a fresh copy: empty, ids from 1, and out of reach under its old name', async () => {
    const first = await postgresTestDatabase();
    const insertEvent = (url: string) => query<{ id: string }>(url, "INSERT INTO events (at, kind, actor, data) VALUES (1, 'test', 'test', '{}') RETURNING id");
    expect(await insertEvent(first.url)).toEqual([{ id: '1' }]);
    await query(first.url, "INSERT INTO hosts (name, public_key) VALUES ('web-1', 'key')");
    // A connection the test left open is ended, as a DROP would end it.
    const leftOpen = new pg.Client({ connectionString: first.url });
    await leftOpen.connect();
    leftOpen.on('error', () => undefined);

    await first.release();
    await expect(query(first.url, 'SELECT 1')).rejects.toThrow(/does not exist/);
    await expect(leftOpen.query('SELECT 1')).rejects.toThrow();

    const next = await postgresTestDatabase();
    expect(next.url).not.toBe(first.url);
    expect(await query(next.url, 'SELECT name FROM hosts')).toEqual([]);
    expect(await insertEvent(next.url)).toEqual([{ id: '1' }]);
    await next.drop();
  });

  it('drops a released database whose schema its test changed instead of handing it on', async () => {
    const first = await postgresTestDatabase();
    await query(first.url, 'ALTER TABLE hosts ADD COLUMN extra text');
    await first.release();
    const next = await postgresTestDatabase();
    const columns = await query<{ name: string }>(next.url, "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'hosts'");
    expect(columns.map((c) => c.name)).not.toContain('extra');
    await next.drop();
  });
});
