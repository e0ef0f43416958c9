import pg from 'pg';
import { afterAll, afterEach, inject } from 'vitest';
import { openStore, type Store } from '../../controller/src/db/store.js';
import type { PostgresServer } from '../lab/postgres.js';
import { TEMPLATE, startTemplateServer, type TemplateServer } from './postgres-template.js';

let own: Promise<PostgresServer> | null = null;
let next = 1;

/**
 * The server of the run if a globalSetup provided one (the postgres project: one server for
 * every worker, so no test file pays for initdb), else one per test process, started on first use
 * (stopPostgresTestServer() in afterAll, or the lab's exit hooks when the process ends).
 */
async function templateServer(): Promise<TemplateServer> {
  const provided = inject('shoalPostgres');
  if (provided) return provided;
  own ??= startTemplateServer();
  return own;
}

/** Stops this process's own test server, if it started one (afterAll); the next caller starts a new one. A provided server is the run's: its globalSetup stops it. */
export async function stopPostgresTestServer(): Promise<void> {
  const running = own;
  own = null;
  if (running) await (await running).stop();
}

export interface PostgresTestDatabase {
  url: string;
  server: TemplateServer;
  /** Drops the database (closing its connections first). */
  drop(): Promise<void>;
}

/**
 * A fresh database with the controller's schema. Each caller gets its own copy of the template,
 * as each SQLite test gets its own file: a `CREATE DATABASE … TEMPLATE` is a file copy, far
 * cheaper than migrating again. Named by the process too, as workers share a provided server.
 */
export async function postgresTestDatabase(): Promise<PostgresTestDatabase> {
  const server = await templateServer();
  const name = `shoal_case_${process.pid}_${next++}`;
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: server.adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE} OWNER shoal`);
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  return { url: url.toString(), server, drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

export interface ReplicaDatabase {
  /** A store on this test's database named `replicaId`, as another controller process has; closed after the test. */
  replica(replicaId: string): Promise<Store>;
  /** This test's database (created by the first replica() of the test). */
  readonly database: PostgresTestDatabase;
}

/**
 * Replicas on one PostgreSQL database per test: registers the hooks that close every replica's
 * store and drop the database after each test (after the file's own later-registered afterEach
 * hooks, which run first), and stop this process's server after the file.
 */
export function replicaDatabasePerTest(): ReplicaDatabase {
  let database: PostgresTestDatabase | null = null;
  const stores: Store[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await database?.drop();
    database = null;
  });
  afterAll(async () => {
    await stopPostgresTestServer();
  });
  return {
    async replica(replicaId) {
      database ??= await postgresTestDatabase();
      const store = await openStore({ database: database.url, replicaId });
      stores.push(store);
      return store;
    },
    get database() {
      if (!database) throw new Error('no database yet: call replica() first in this test');
      return database;
    },
  };
}
