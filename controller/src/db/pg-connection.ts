import type pg from 'pg';

/**
 * How every PostgreSQL connection of a replica is made. `role` names it in pg_stat_activity as
 * `shoal:<replica>:<role>` (pool, listen, lease), which is also how an operator (or a test) finds
 * the one to look at.
 */
export function pgClientConfig(url: string, replicaId: string, role: string): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: `shoal:${replicaId}:${role}`,
    // An unreachable server fails a connect within 5 s instead of hanging a request (StoreUnavailable).
    connectionTimeoutMillis: 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 3_000,
    // Server side: a peer that vanished without closing (its host died, a partition) is noticed
    // within ~6 s, which releases its engine lease (replicas/pg-engine-lease.ts). TCP only; a Unix
    // socket closes with its process.
    options: '-c tcp_keepalives_idle=3 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 -c tcp_user_timeout=6000',
  };
}

/** Bounds for pool connections, so that no request waits on the database forever. */
export const POOL_TIMEOUTS = {
  statement_timeout: 30_000,
  lock_timeout: 10_000,
  // A body stuck between statements must not hold its row and predicate locks for ever.
  idle_in_transaction_session_timeout: 60_000,
  // Client side: an answer that never comes (half-open connection) fails the query.
  query_timeout: 40_000,
} satisfies pg.ClientConfig;

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

/** A query with a client-side deadline (node-postgres supports it per query; its types do not say so). */
export function timedQuery(text: string, values: unknown[], timeoutMs: number): pg.QueryConfig {
  return { text, values, query_timeout: timeoutMs } as pg.QueryConfig;
}
