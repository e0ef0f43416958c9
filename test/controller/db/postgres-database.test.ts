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
});
