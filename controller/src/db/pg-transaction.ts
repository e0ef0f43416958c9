import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { jitteredBackoff } from '../../../shared/src/backoff.js';
import type { Logger } from '../../../shared/src/logger.js';
import * as pgSchema from './schema-pg.js';
import type { Isolation, PositionalStatement, Queryable, StoreTx } from './store.js';
import { retryableConflict, sqlState, storeUnavailable } from './store-errors.js';
import type { TransactionEngine } from './tx-scope.js';

/**
 * A serialization failure is retried this many times in all, with full jitter so the two sides do
 * not collide again. Replicas contending for one row all the time (a fleet enrolling with one token
 * through two replicas: each attempt loses about half the time) ran out of 10 attempts about once
 * in a thousand; 20 make that about once in a million, and cost at most ~5 s of backoff.
 */
const MAX_ATTEMPTS = 20;
const RETRY_BACKOFF = { baseMs: 5, maxMs: 250, random: Math.random };

/**
 * One query handle per connection, which every transaction on that connection gets as its `tx`.
 * Drizzle's own transaction() makes a new handle per transaction, and the statements the hot
 * paths build once per handle (db/per-handle.ts, db/chunked.ts) were then built again for every
 * transaction: a report group or a wave's batch rebuilt its multi-row statements each time, about
 * a quarter of a PostgreSQL controller's CPU per report (bench/README.md). The handle runs queries
 * on its connection only, so a statement built on it is only ever used there.
 */
const handles = new WeakMap<object, StoreTx>();

function handleFor(client: pg.Client | pg.PoolClient, nest: (fn: (tx: StoreTx) => Promise<unknown>) => Promise<unknown>): StoreTx {
  let tx = handles.get(client);
  if (!tx) {
    tx = drizzle(client, { schema: pgSchema }) as unknown as StoreTx;
    // Nesting means the same at every depth and on both engines: a savepoint through the Store.
    Object.defineProperty(tx, 'transaction', { value: nest });
    handles.set(client, tx);
  }
  return tx;
}

const BEGIN = { serializable: sql.raw('begin isolation level serializable'), 'read-committed': sql.raw('begin isolation level read committed') } as const;
const COMMIT = sql.raw('commit');
const ROLLBACK = sql.raw('rollback');

/**
 * One transaction of `body` on `client`, SERIALIZABLE unless asked otherwise: PostgreSQL then
 * guarantees the outcome of some serial order of all committed transactions, which is what the
 * controller's read-then-write code assumes (SQLite gives it by having one writer). `tx.transaction`
 * is routed to `nest`, so that nesting has the same meaning at every depth and on both engines.
 */
export async function transactionOn<T>(
  client: pg.Client | pg.PoolClient,
  body: (tx: StoreTx) => Promise<T>,
  nest: (fn: (tx: StoreTx) => Promise<unknown>) => Promise<unknown>,
  isolation: Isolation,
): Promise<T> {
  const tx = handleFor(client, nest);
  await tx.execute(BEGIN[isolation]);
  let result: T;
  try {
    result = await body(tx);
  } catch (error) {
    // What failed is what the caller needs to see (a conflict to retry, a lost connection), not a failed rollback after it.
    await tx.execute(ROLLBACK).catch(() => undefined);
    throw error;
  }
  await tx.execute(COMMIT);
  return result;
}

/**
 * Runs `attempt` again after a serialization failure or deadlock; a lost database becomes
 * StoreUnavailable. Each retry is logged (debug): contention an operator can look for.
 */
export async function withConflictRetries<T>(attempt: () => Promise<T>, logger: Logger): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const down = storeUnavailable(error);
      if (down) throw down;
      if (!retryableConflict(error) || tries >= MAX_ATTEMPTS) throw error;
      logger.debug({ attempt: tries, sqlState: sqlState(error) }, 'transaction conflicted with a concurrent one, running it again');
    }
    await sleep(jitteredBackoff(tries - 1, RETRY_BACKOFF));
  }
}

/** Savepoints by statement on the transaction's own connection, the same on every connection. */
export async function pgSavepoint<T>(tx: StoreTx, name: string, body: () => Promise<T>): Promise<T> {
  await tx.execute(sql.raw(`savepoint ${name}`));
  try {
    const result = await body();
    await tx.execute(sql.raw(`release savepoint ${name}`));
    return result;
  } catch (error) {
    await tx.execute(sql.raw(`rollback to savepoint ${name}`));
    throw error;
  }
}

/** A transaction engine running its top-level transactions on one given connection (the lease's). */
export function engineOnClient(
  owner: object,
  client: () => pg.Client | pg.PoolClient,
  nest: (fn: (tx: StoreTx) => Promise<unknown>) => Promise<unknown>,
  logger: Logger,
): TransactionEngine<StoreTx> {
  return {
    owner,
    top: (body, isolation) => withConflictRetries(() => transactionOn(client(), body, nest, isolation), logger),
    savepoint: pgSavepoint,
  };
}

/**
 * Store.positional on PostgreSQL: the statement runs on the connection (or pool, outside a
 * transaction) under handle `q`, a transaction's handle being its connection's own (handleFor).
 * node-postgres prepares a named statement once per connection and reuses it by name after.
 */
export function pgPositional(q: Queryable, name: string, text: string): PositionalStatement {
  const client = (q as unknown as { $client: pg.Pool | pg.PoolClient }).$client;
  return {
    run: async (values) => (await client.query<unknown[]>({ ...(name ? { name } : {}), text, values, rowMode: 'array' })).rows,
  };
}
