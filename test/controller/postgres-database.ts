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
  if (running) {
    // Its recycled databases go with it.
    recycled.length = 0;
    templateShape = null;
  }
  if (running) await (await running).stop();
}

export interface PostgresTestDatabase {
  url: string;
  server: TemplateServer;
  /** Drops the database (closing its connections first). */
  drop(): Promise<void>;
  /**
   * Gives the database up after its test: emptied and renamed for this process's next test
   * (recycled), or dropped when it cannot be. Either way nothing can reach it under this name.
   */
  release(): Promise<void>;
}

/** Databases of this process's finished tests, emptied and renamed, for its next ones (see recycle). */
const recycled: string[] = [];
/** The shape of a fresh copy of the template (schemaShape), taken in this process from its first copy. */
let templateShape: Promise<string | null> | null = null;

/**
 * A fresh database with the controller's schema. Each caller gets its own copy of the template,
 * as each SQLite test gets its own file: a `CREATE DATABASE … TEMPLATE` is a file copy, far
 * cheaper than migrating again -- and a recycled one cheaper still (CREATE DATABASE of the ~8 MB
 * template took about 0.4 s of each PostgreSQL test). Named by the process too, as workers share a
 * provided server.
 */
export async function postgresTestDatabase(): Promise<PostgresTestDatabase> {
  const server = await templateServer();
  let name = recycled.pop();
  if (name === undefined) {
    name = nextName();
    await adminQuery(server, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE} OWNER shoal`);
    // Taken before any test can touch it. Null when it cannot be read: then nothing is recycled.
    templateShape ??= withSuperuser(server, name, schemaShape).catch(() => null);
    await templateShape;
  }
  const taken = name;
  const url = new URL(server.url);
  url.pathname = `/${taken}`;
  const drop = () => dropDatabase(server, taken);
  return { url: url.toString(), server, drop, release: () => recycle(server, taken).catch(drop) };
}

const nextName = () => `shoal_case_${process.pid}_${next++}`;

/**
 * Makes a finished test's database as good as a fresh copy for the next test: its connections
 * ended, renamed (a pool the test left behind cannot reconnect into another test's database, as
 * it could not after a DROP), every table emptied with its identity sequences restarted. A
 * database whose schema the test changed is dropped instead.
 */
async function recycle(server: TemplateServer, name: string): Promise<void> {
  const fresh = nextName();
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    // Terminated backends leave asynchronously; RENAME refuses while any is still connected.
    for (let attempt = 0; ; attempt++) {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      try {
        await admin.query(`ALTER DATABASE ${name} RENAME TO ${fresh}`);
        break;
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  } finally {
    await admin.end();
  }
  const expected = await templateShape;
  const emptied = await withSuperuser(server, fresh, async (client) => {
    if (!expected || (await schemaShape(client)) !== expected) return false;
    const { rows } = await client.query<{ name: string }>("SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = 'public'");
    await client.query(`TRUNCATE ${rows.map((r) => r.name).join(', ')} RESTART IDENTITY CASCADE`);
    return true;
  }).catch(() => false);
  if (emptied) recycled.push(fresh);
  else await dropDatabase(server, fresh);
}

/** Drops `name`, ending its connections first. */
function dropDatabase(server: TemplateServer, name: string): Promise<void> {
  return adminQuery(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/**
 * Everything but the rows of public tables that could tell one database of the controller's
 * schema from another: relations and their columns, constraints, indexes, functions, triggers,
 * schemas, and the migrations drizzle recorded.
 */
async function schemaShape(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ shape: string }>(`
    WITH own AS (SELECT oid, nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%')
    SELECT md5(string_agg(item, E'\n' ORDER BY item)) AS shape FROM (
      SELECT 'schema ' || nspname AS item FROM own
      UNION ALL SELECT format('relation %s.%s %s %s', own.nspname, c.relname, c.relkind, c.relpersistence) FROM pg_class c JOIN own ON own.oid = c.relnamespace
      UNION ALL SELECT format('column %s.%s.%s %s %s %s', own.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN own ON own.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped
      UNION ALL SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace IN (SELECT oid FROM own)
      UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname IN (SELECT nspname FROM own)
      UNION ALL SELECT format('function %s %s', proname, md5(prosrc)) FROM pg_proc WHERE pronamespace IN (SELECT oid FROM own)
      UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
      UNION ALL SELECT 'sequence ' || seqrelid::regclass::text || ' ' || seqstart FROM pg_sequence
      UNION ALL SELECT 'setting ' || array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
      UNION ALL SELECT 'migrations ' || count(*) FROM drizzle.__drizzle_migrations
    ) items`);
  return rows[0]!.shape;
}

async function withSuperuser<T>(server: TemplateServer, database: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const url = new URL(server.adminUrl);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function adminQuery(server: TemplateServer, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: server.adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
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
