import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../lab/postgres.js';

const PG_MIGRATIONS = fileURLToPath(new URL('../../controller/drizzle-pg', import.meta.url));
const TEMPLATE = 'shoal_template';

interface Shared {
  server: PostgresServer;
  next: number;
}

let shared: Promise<Shared> | null = null;

/**
 * One server per test process (started on first use; stopPostgresTestServer() in afterAll, or the
 * lab's exit hooks when the process ends), with a template database that has the controller's migrations applied. Each
 * caller gets its own copy of the template, as each SQLite test gets its own file: a
 * `CREATE DATABASE … TEMPLATE` is a file copy, far cheaper than migrating again.
 */
function sharedServer(): Promise<Shared> {
  shared ??= (async () => {
    const server = await startPostgres({ database: TEMPLATE });
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await migrate(drizzle(client), { migrationsFolder: PG_MIGRATIONS });
    } finally {
      await client.end();
    }
    return { server, next: 1 };
  })();
  return shared;
}

/** Stops this process's test server, if one was started (afterAll); the next caller starts a new one. */
export async function stopPostgresTestServer(): Promise<void> {
  const running = shared;
  shared = null;
  if (running) await (await running).server.stop();
}

export interface PostgresTestDatabase {
  url: string;
  server: PostgresServer;
  /** Drops the database (closing its connections first). */
  drop(): Promise<void>;
}

/** A fresh database with the controller's schema, on this process's test server. */
export async function postgresTestDatabase(): Promise<PostgresTestDatabase> {
  const state = await sharedServer();
  const name = `shoal_case_${state.next++}`;
  const admin = new pg.Client({ connectionString: state.server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE} OWNER shoal`);
  } finally {
    await admin.end();
  }
  const url = new URL(state.server.url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    server: state.server,
    async drop() {
      const client = new pg.Client({ connectionString: state.server.adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
