import { sql } from 'drizzle-orm';
import pg from 'pg';
import { jitteredBackoff } from '../../../shared/src/backoff.js';
import type { Logger } from '../../../shared/src/logger.js';
import { pgClientConfig, timedQuery } from '../db/pg-connection.js';
import type { StoreTx } from '../db/store.js';
import { storeUnavailable } from '../db/store-errors.js';
import { currentTx } from '../db/tx-scope.js';
import { checkNotification, deliver, type Notifications, type Subscriber } from './notifications.js';

/** Reconnecting the listen connection: quick at first, then every 5 s at most while the database is away. */
const RECONNECT_BACKOFF = { baseMs: 100, maxMs: 5_000, random: Math.random };
/** A listen connection only receives; a query now and then finds one that silently stopped working. */
const HEARTBEAT_MS = 5_000;

export interface PgNotificationsOptions {
  url: string;
  replicaId: string;
  pool: pg.Pool;
  /** The store: a publish inside one of its transactions goes out with that transaction. */
  owner: object;
  logger: Logger;
}

/**
 * LISTEN/NOTIFY. Publishing is `pg_notify` (inside the publisher's transaction when there is one:
 * PostgreSQL delivers it only on commit). Receiving uses one dedicated connection per replica,
 * opened by the first subscribe; when it is lost it is opened again with the shared backoff,
 * LISTENs again, and then every subscriber's onResync runs: whatever was published in between
 * is lost, and resync reads the state instead.
 */
export class PgNotifications implements Notifications {
  private readonly channels = new Map<string, Set<Subscriber>>();
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly listening = new WeakMap<pg.Client, Set<string>>();
  private attempt = 0;
  private closed = false;
  private readonly logger: Logger;

  constructor(private readonly options: PgNotificationsOptions) {
    this.logger = options.logger.child({ component: 'notifications' });
  }

  async publish(channel: string, payload: string): Promise<void> {
    checkNotification(channel, payload);
    const tx = currentTx(this.options.owner) as StoreTx | undefined;
    try {
      if (tx) await tx.execute(sql`select pg_notify(${channel}, ${payload})`);
      else await this.options.pool.query('select pg_notify($1, $2)', [channel, payload]);
    } catch (error) {
      throw storeUnavailable(error) ?? error;
    }
  }

  async subscribe(channel: string, onMessage: (payload: string) => void, options: { onResync?: () => void } = {}): Promise<() => Promise<void>> {
    checkNotification(channel);
    if (this.closed) throw new Error('notifications are closed');
    const subscriber: Subscriber = { onMessage, onResync: options.onResync };
    let subscribers = this.channels.get(channel);
    if (!subscribers) this.channels.set(channel, (subscribers = new Set()));
    subscribers.add(subscriber);
    try {
      if (this.reconnectTimer === null) {
        // Connected, or connecting for the first time (that connect LISTENs to every channel known then).
        await this.listenAll(this.client ?? (await this.connect()));
      }
      // Otherwise a reconnect is pending: it will LISTEN and then resync this subscriber too.
    } catch (error) {
      subscribers.delete(subscriber);
      if (subscribers.size === 0) this.channels.delete(channel);
      throw storeUnavailable(error) ?? error;
    }
    return async () => {
      subscribers.delete(subscriber);
      if (subscribers.size > 0 || this.channels.get(channel) !== subscribers) return;
      this.channels.delete(channel);
      const client = this.client;
      if (!client) return;
      this.listening.get(client)?.delete(channel);
      await client.query(`UNLISTEN ${channel}`).catch(() => undefined);
    };
  }

  private connect(): Promise<pg.Client> {
    this.connecting ??= (async () => {
      const client = new pg.Client(pgClientConfig(this.options.url, this.options.replicaId, 'listen'));
      client.on('error', (error) => this.lost(client, error));
      client.on('end', () => this.lost(client, new Error('the listen connection closed')));
      client.on('notification', (message) => {
        if (message.payload !== undefined) deliver(this.channels.get(message.channel), message.channel, message.payload, this.logger);
      });
      try {
        await client.connect();
        await this.listenAll(client);
      } catch (error) {
        client.removeAllListeners('end');
        await client.end().catch(() => undefined);
        throw error;
      }
      if (this.closed) {
        await client.end().catch(() => undefined);
        throw new Error('notifications are closed');
      }
      this.client = client;
      this.heartbeat ??= setInterval(() => this.probe(), HEARTBEAT_MS).unref();
      return client;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** LISTENs on `client` to every channel with subscribers that it does not listen to yet. */
  private async listenAll(client: pg.Client): Promise<void> {
    let listening = this.listening.get(client);
    if (!listening) this.listening.set(client, (listening = new Set()));
    for (const channel of this.channels.keys()) {
      if (listening.has(channel)) continue;
      listening.add(channel);
      await client.query(`LISTEN ${channel}`);
    }
  }

  private probe(): void {
    const client = this.client;
    if (!client) return;
    client.query(timedQuery('select 1', [], HEARTBEAT_MS)).catch((error: Error) => this.lost(client, error));
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    this.logger.warn({ err: error }, 'listen connection lost; notifications sent until it is back are lost, subscribers resync then');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = jitteredBackoff(this.attempt++, RECONNECT_BACKOFF);
    this.reconnectTimer = setTimeout(() => {
      this.connect().then(
        async (client) => {
          // Channels first subscribed while this connection was being made.
          await this.listenAll(client).catch((error: Error) => this.lost(client, error));
          if (this.client !== client) return;
          this.reconnectTimer = null;
          this.attempt = 0;
          this.logger.info('listen connection back; resyncing subscribers');
          for (const subscribers of this.channels.values()) {
            for (const subscriber of subscribers) {
              try {
                subscriber.onResync?.();
              } catch (error) {
                this.logger.error({ err: error }, 'notification resync failed');
              }
            }
          }
        },
        (error: unknown) => {
          if (this.closed) return;
          this.logger.warn({ err: error, attempt: this.attempt }, 'listen connection: reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, delay);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.channels.clear();
    const client = this.client ?? (await this.connecting?.catch(() => null));
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
