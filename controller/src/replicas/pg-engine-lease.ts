import { EventEmitter } from 'node:events';
import pg from 'pg';
import { jitteredBackoff } from '../../../shared/src/backoff.js';
import type { Logger } from '../../../shared/src/logger.js';
import { AsyncLock } from '../db/async-lock.js';
import { pgClientConfig, timedQuery } from '../db/pg-connection.js';
import { engineOnClient } from '../db/pg-transaction.js';
import type { StoreTx } from '../db/store.js';
import { LeaseNotHeld, storeUnavailable } from '../db/store-errors.js';
import { currentTx, runTransaction } from '../db/tx-scope.js';
import { ADVISORY_CLASS, ENGINE_LOCK } from './advisory-locks.js';
import type { EngineLease, EngineLeaseOptions } from './engine-lease.js';

export interface PgEngineLeaseOptions extends EngineLeaseOptions {
  url: string;
  replicaId: string;
  /** The store: nested transactions inside fenced work join it. */
  owner: object;
  nest: (fn: (tx: StoreTx) => Promise<unknown>) => Promise<unknown>;
  logger: Logger;
}

/**
 * The engine lease on PostgreSQL: a session-level advisory lock, held on a dedicated connection.
 *
 * Exclusive: PostgreSQL grants the lock to one session at a time. Released when the holder's
 * session ends: at once when its process dies (the kernel closes the socket), within ~6 s when its
 * host vanishes (server-side TCP keepalives, pg-connection.ts); a replica without the lease tries
 * every `pollMs`. Takeover bound: pollMs + 6 s = 7 s with the default 1 s poll.
 *
 * Fenced: fenced work runs as a transaction on that same connection. A session-level lock is
 * released only by an explicit unlock or the end of the session, and a session that ended commits
 * nothing more; so every commit of fenced work happened while its replica held the lock, before
 * anyone else could take it. A replica whose connection was killed finds out on its next statement
 * (or its heartbeat); its open transaction dies with the session and is rolled back.
 */
export class PgEngineLease extends EventEmitter<{ acquired: []; lost: [error: Error] }> implements EngineLease {
  private client: pg.Client | null = null;
  private holding = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private started = false;
  /** One thing at a time on the lease connection: a fenced transaction, a lock attempt or a heartbeat. */
  private readonly lock = new AsyncLock();
  private readonly pollMs: number;
  private readonly logger: Logger;
  private settle!: () => void;
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(private readonly options: PgEngineLeaseOptions) {
    super();
    this.pollMs = options.pollMs ?? 1_000;
    this.logger = options.logger.child({ component: 'engine-lease' });
  }

  get held(): boolean {
    return this.holding;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.schedule(0);
  }

  async fenced<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (currentTx(this.options.owner) !== undefined) throw new Error('fenced work must start outside any transaction');
    return this.lock.run(async () => {
      const client = this.client;
      if (!this.holding || !client) throw new LeaseNotHeld();
      const engine = engineOnClient(this.options.owner, () => client, this.options.nest, this.logger);
      try {
        return await runTransaction(engine, fn);
      } catch (error) {
        const down = storeUnavailable(error);
        if (!down) throw error;
        this.drop(client, down);
        throw new LeaseNotHeld('the engine lease was lost before this work committed', { cause: down });
      }
    });
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    try {
      const client = this.client ?? (await this.connect());
      await this.lock.run(async () => {
        if (this.client !== client) return;
        if (this.holding) {
          // The holder's heartbeat: a connection that stopped answering is a lost lease.
          await client.query(timedQuery('select 1', [], 2 * this.pollMs));
          return;
        }
        const result = await client.query<{ acquired: boolean }>(
          timedQuery('select pg_try_advisory_lock($1, $2) as acquired', [ADVISORY_CLASS, ENGINE_LOCK], 2 * this.pollMs),
        );
        if (result.rows[0]?.acquired && this.client === client && !this.closed) {
          this.holding = true;
          this.logger.info('engine lease acquired');
          this.emit('acquired');
        }
      });
      this.failures = 0;
      this.schedule(this.pollMs);
    } catch (error) {
      if (this.client) this.drop(this.client, error as Error);
      if (!this.closed) this.logger.warn({ err: error }, 'engine lease: database unreachable');
      this.schedule(Math.max(this.pollMs, jitteredBackoff(this.failures++, { baseMs: this.pollMs, maxMs: 5_000, random: Math.random })));
    } finally {
      this.settle();
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(pgClientConfig(this.options.url, this.options.replicaId, 'lease'));
    client.on('error', (error) => this.drop(client, error));
    client.on('end', () => this.drop(client, new Error('the lease connection closed')));
    try {
      await client.connect();
    } catch (error) {
      client.removeAllListeners('end');
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Error('the lease is closed');
    }
    this.client = client;
    return client;
  }

  /** Forgets `client` (its session, and the lock with it, is gone or going) and reports the loss once. */
  private drop(client: pg.Client, error: Error): void {
    if (this.client !== client) return;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (this.holding) {
      this.holding = false;
      this.logger.warn({ err: error }, 'engine lease lost');
      this.emit('lost', error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.settle();
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    // Waits for fenced work in progress; ending the session releases the lock.
    await this.lock.run(async () => {
      this.client = null;
      this.holding = false;
    });
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
