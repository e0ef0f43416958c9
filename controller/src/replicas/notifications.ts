import type { Logger } from '../../../shared/src/logger.js';
import { afterCommit } from '../db/tx-scope.js';

/**
 * Publish/subscribe between the replicas sharing one database: every subscriber of a channel, on
 * every replica (the publisher's included), gets each payload published on it. A payload names
 * what changed (a host and a version), never the data: the subscriber reads that from the database.
 */
export interface Notifications {
  /**
   * Inside a transaction of the store: delivered only if and when it commits (dropped on rollback).
   * Outside one: delivered at once.
   */
  publish(channel: string, payload: string): Promise<void>;
  /**
   * Resolves once the subscription listens: every later publish reaches `onMessage`, or, if the
   * connection that listens is lost, `onResync` is called after it is listening again. Payloads
   * published while it was lost are gone; `onResync` re-reads the state they would have announced.
   * Rejects with StoreUnavailable if the database cannot be reached now.
   */
  subscribe(channel: string, onMessage: (payload: string) => void, options?: { onResync?: () => void }): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** An SQL identifier too (LISTEN takes no parameter), so only this shape. */
const CHANNEL = /^shoal_[a-z0-9_]{1,50}$/;
/** PostgreSQL's limit is 8000 bytes; a payload is an identifier, far below it. */
export const MAX_PAYLOAD_BYTES = 1000;

export function checkNotification(channel: string, payload?: string): void {
  if (!CHANNEL.test(channel)) throw new Error(`notification channel ${JSON.stringify(channel)}: expected shoal_ followed by [a-z0-9_]`);
  if (payload !== undefined && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
    throw new Error(`notification payload on ${channel}: ${Buffer.byteLength(payload)} bytes, at most ${MAX_PAYLOAD_BYTES}`);
  }
}

export interface Subscriber {
  onMessage(payload: string): void;
  onResync?: () => void;
}

/** Calls each subscriber; one that throws is logged and does not keep the payload from the others. */
export function deliver(subscribers: Iterable<Subscriber> | undefined, channel: string, payload: string, logger: Logger): void {
  for (const subscriber of subscribers ?? []) {
    try {
      subscriber.onMessage(payload);
    } catch (error) {
      logger.error({ err: error, channel }, 'notification subscriber failed');
    }
  }
}

/** The SQLite engine's: one process, so subscribers are in this process; never lost, so never resynced. */
export class LocalNotifications implements Notifications {
  private readonly channels = new Map<string, Set<Subscriber>>();

  constructor(
    /** The store: a publish inside one of its transactions waits for the commit. */
    private readonly owner: object,
    private readonly logger: Logger,
  ) {}

  async publish(channel: string, payload: string): Promise<void> {
    checkNotification(channel, payload);
    // Asynchronous as PostgreSQL's delivery is, so no code comes to rely on a synchronous one.
    const send = () => queueMicrotask(() => deliver(this.channels.get(channel), channel, payload, this.logger));
    if (!afterCommit(this.owner, send)) send();
  }

  async subscribe(channel: string, onMessage: (payload: string) => void, options: { onResync?: () => void } = {}): Promise<() => Promise<void>> {
    checkNotification(channel);
    const subscriber: Subscriber = { onMessage, onResync: options.onResync };
    let set = this.channels.get(channel);
    if (!set) this.channels.set(channel, (set = new Set()));
    set.add(subscriber);
    return async () => {
      set.delete(subscriber);
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
