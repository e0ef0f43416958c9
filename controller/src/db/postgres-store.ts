import { sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { silentLogger } from '../../../shared/src/logger.js';
import { PgEngineLease } from '../replicas/pg-engine-lease.js';
import { PgNotifications } from '../replicas/pg-notifications.js';
import { ADVISORY_CLASS, MIGRATE_LOCK } from '../replicas/advisory-locks.js';
import { pgClientConfig, POOL_TIMEOUTS, redactUrl } from './pg-connection.js';
import { pgPositional, pgSavepoint, transactionOn, withConflictRetries } from './pg-transaction.js';
import { jsonKey } from './json-path.js';
import * as pgSchema from './schema-pg.js';
import { defaultReplicaId, type Queryable, type Store, type StoreConfig, type StoreDb, type StoreTx } from './store.js';
import { storeUnavailable } from './store-errors.js';
import { currentTx, runTransaction, type TransactionEngine } from './tx-scope.js';

const MIGRATIONS = fileURLToPath(new URL('../../drizzle-pg', import.meta.url));

/**
 * Applies controller/drizzle-pg. Under an advisory lock, so replicas started together migrate one
 * after the other (the second finds nothing left to do) instead of racing on the same DDL.
 */
async function migrateOnce(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1, $2)', [ADVISORY_CLASS, MIGRATE_LOCK]);
    try {
      await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
    } finally {
      await client.query('select pg_advisory_unlock($1, $2)', [ADVISORY_CLASS, MIGRATE_LOCK]);
    }
  } finally {
    client.release();
  }
}

/**
 * How long a missing event id may still appear. What can hold an id unseen is a transaction
 * between the insert that took it and its commit; the controller's transaction bodies do database
 * work only (no network, no timers), each statement is bounded by statement_timeout (30 s) and
 * each pause between statements by idle_in_transaction_session_timeout (60 s, pg-connection.ts).
 * Five minutes is far beyond any such transaction; waiting longer costs only the re-check of the
 * open gaps (one indexed query per read) and holds a durable cursor (webhooks) that much behind.
 */
export const PG_ID_GAP_GRACE_MS = 5 * 60_000;

/** The PostgreSQL engine: a pool for reads and transactions, plus one connection each for LISTEN and the engine lease. */
export async function openPostgresStore(config: StoreConfig): Promise<Store> {
  const replicaId = config.replicaId ?? defaultReplicaId();
  const logger = (config.logger ?? silentLogger()).child({ component: 'store', engine: 'postgres', replica: replicaId });
  const pool = new pg.Pool({ ...pgClientConfig(config.database, replicaId, 'pool'), ...POOL_TIMEOUTS, max: config.poolSize ?? 10 });
  // An idle pooled connection that breaks (server restart) is dropped by the pool; without a
  // listener the 'error' event would end the process.
  pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection lost'));
  try {
    await migrateOnce(pool);
  } catch (error) {
    await pool.end();
    throw storeUnavailable(error) ?? error;
  }
  logger.info({ database: redactUrl(config.database) }, 'database opened');

  const owner = {};
  const nest = (fn: (tx: StoreTx) => Promise<unknown>) => runTransaction(engine, fn);
  const engine: TransactionEngine<StoreTx> = {
    owner,
    top: (body, isolation) =>
      withConflictRetries(async () => {
        const client = await pool.connect();
        // A connection lost while the body awaits something else emits 'error' on the checked-out
        // client, which has no listener then: the next statement fails instead of the process.
        let lost: Error | undefined;
        const onError = (error: Error) => (lost = error);
        client.on('error', onError);
        try {
          return await transactionOn(client, body, nest, isolation);
        } catch (error) {
          lost ??= storeUnavailable(error) ?? undefined;
          throw error;
        } finally {
          client.removeListener('error', onError);
          // With an error the pool discards the connection instead of handing it out again.
          client.release(lost);
        }
      }, logger),
    savepoint: pgSavepoint,
  };

  const notifications = new PgNotifications({ url: config.database, replicaId, pool, owner, logger });
  const leases = new Set<PgEngineLease>();
  let closed = false;
  const db = drizzle(pool, { schema: pgSchema }) as StoreDb;
  const here = (): Queryable => (currentTx(owner) as Queryable | undefined) ?? db;
  const store: Store = {
    engine: 'postgres',
    shared: true,
    idGapGraceMs: PG_ID_GAP_GRACE_MS,
    concurrentWriters: true,
    wholeSetStatements: true,
    onlineBackup: false,
    jsonText: (json, path) => {
      const steps = path.map((step, i) => sql.raw(`${i === path.length - 1 ? '->>' : '->'} ${typeof step === 'number' ? step : `'${jsonKey(step)}'`}`));
      return sql`((${json})::jsonb ${sql.join(steps, sql` `)})`;
    },
    replicaId,
    db,
    t: pgSchema,
    get q() {
      return here();
    },
    rows: async <T extends Record<string, unknown>>(query: SQL) => int8AsNumbers((await here().execute(query)) as pg.QueryResult) as T[],
    positional: pgPositional,
    grewInBulk: async (table) => {
      await here().execute(sql`analyze ${table}`);
    },
    transaction: (fn, options) => runTransaction(engine, fn, options),
    affected: (result) => (result as { rowCount?: number | null }).rowCount ?? 0,
    notifications,
    engineLease(options) {
      const lease = new PgEngineLease({ url: config.database, replicaId, owner, nest, logger, ...options });
      leases.add(lease);
      return lease;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...leases].map((lease) => lease.close()));
      await notifications.close();
      await pool.end();
    },
  };
  return store;
}

/**
 * node-postgres returns 64-bit integers (bigint columns, count(*)) as strings, and drizzle's raw
 * execute() does not map them. Every such value here (epoch milliseconds, versions, ids, counts)
 * is below 2^53, so a number is exact and the rows match what SQLite returns.
 */
function int8AsNumbers(result: pg.QueryResult): Record<string, unknown>[] {
  const int8 = result.fields.filter((field) => field.dataTypeID === pg.types.builtins.INT8).map((field) => field.name);
  if (int8.length === 0) return result.rows;
  for (const row of result.rows) {
    for (const name of int8) if (row[name] !== null) row[name] = Number(row[name]);
  }
  return result.rows;
}
