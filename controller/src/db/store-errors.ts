/**
 * The database cannot be reached or dropped the connection (server down, restarting, failing over,
 * a partition). Expected while PostgreSQL is unavailable; the one `onError` answers it with 503 so
 * a load balancer and the agents move to another replica, and the same call succeeds once the
 * database is back (pools reconnect on their own). `cause` is the driver's error.
 */
export class StoreUnavailable extends Error {
  override readonly name = 'StoreUnavailable';
  constructor(readonly detail: string, options: { cause: unknown }) {
    super(`the database is unavailable: ${detail}`, options);
  }
}

/** Engine work was asked of a replica that does not hold the engine lease (never had it, or lost it). */
export class LeaseNotHeld extends Error {
  override readonly name = 'LeaseNotHeld';
  constructor(message = 'this replica does not hold the engine lease', options?: { cause: unknown }) {
    super(message, options);
  }
}

/** Node's socket errors that mean "no connection to the server". */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * SQLSTATEs of a lost or refused connection: class 08 (connection exception), 57P01..57P03
 * (admin/crash shutdown, cannot connect now), 53300 (too many connections).
 */
function unavailableSqlState(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

/** node-postgres reports some connection failures only by message (no code). */
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
];

function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  // drizzle wraps driver errors in DrizzleQueryError { cause }; follow a few levels, never a cycle.
  for (let current = error; current !== undefined && current !== null && chain.length < 8 && !chain.includes(current); ) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/** The SQLSTATE of a PostgreSQL error anywhere in the cause chain. */
export function sqlState(error: unknown): string | undefined {
  for (const link of causes(error)) {
    const code = (link as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/**
 * `error` (from any store operation, wrapped by drizzle or not) as a StoreUnavailable when it means
 * the database could not be reached; null for every other failure (constraint, bug, conflict).
 */
export function storeUnavailable(error: unknown): StoreUnavailable | null {
  for (const link of causes(error)) {
    if (link instanceof StoreUnavailable) return link;
    const code = (link as { code?: unknown }).code;
    const message = link instanceof Error ? link.message : '';
    if (typeof code === 'string' && (SOCKET_CODES.has(code) || unavailableSqlState(code))) return new StoreUnavailable(message || code, { cause: link });
    if (CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) return new StoreUnavailable(message, { cause: link });
  }
  return null;
}

/** A serialization failure (40001) or deadlock (40P01): the transaction may succeed if run again. */
export function retryableConflict(error: unknown): boolean {
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

/** A write referred to a row that is gone (a foreign key): PostgreSQL 23503, SQLite's SQLITE_CONSTRAINT_FOREIGNKEY. */
export function foreignKeyViolation(error: unknown): boolean {
  for (const link of causes(error)) {
    const code = (link as { code?: unknown }).code;
    if (code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return true;
  }
  return false;
}
