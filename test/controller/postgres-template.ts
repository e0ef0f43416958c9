import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../lab/postgres.js';

const PG_MIGRATIONS = fileURLToPath(new URL('../../controller/drizzle-pg', import.meta.url));
export const TEMPLATE = 'shoal_template';

/** Where test databases are made: the template database's URL (as `shoal`) and the superuser's. */
export type TemplateServer = Pick<PostgresServer, 'url' | 'adminUrl'>;

declare module 'vitest' {
  export interface ProvidedContext {
    /** A server with a migrated template, started once for the run by postgres-global-setup.ts. */
    shoalPostgres: TemplateServer;
  }
}

/** Starts a server whose database `shoal_template` has the controller's migrations applied. */
export async function startTemplateServer(): Promise<PostgresServer> {
  const server = await startPostgres({ database: TEMPLATE });
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    await migrate(drizzle(client), { migrationsFolder: PG_MIGRATIONS });
  } finally {
    await client.end();
  }
  return server;
}
