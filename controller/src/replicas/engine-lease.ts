import { EventEmitter } from 'node:events';
import type { Store, StoreTx } from '../db/store.js';
import { LeaseNotHeld } from '../db/store-errors.js';

export interface EngineLeaseOptions {
  /** How often a replica without the lease tries to take it, and the holder checks it still has it; default 1000 ms. */
  pollMs?: number;
}

/**
 * The right to run the rollout engine (ticks, renewals, webhook dispatch, retention), held by
 * exactly one replica at a time. Emits 'acquired' when this replica gets it and 'lost' when it no
 * longer has it (then the engine stops its loops; it may get the lease again later).
 */
export interface EngineLease extends EventEmitter<{ acquired: []; lost: [error: Error] }> {
  readonly held: boolean;
  /** Starts trying to take the lease (and keeps trying after a loss) until close(). */
  start(): void;
  /** Resolves once the first attempt after start() is over, won ('acquired' emitted before) or not. */
  readonly settled: Promise<void>;
  /**
   * Runs `fn` as a transaction that commits only while this replica holds the lease, so a replica
   * that lost it cannot commit engine work after another one took over. Throws LeaseNotHeld when
   * the lease is not held (or is lost before the commit). Must not be called inside a transaction.
   */
  fenced<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /** Gives the lease up (another replica takes it on its next poll) and stops. */
  close(): Promise<void>;
}

/** SQLite: one process is the only replica, so it holds the lease from start() on. */
export class SoloLease extends EventEmitter<{ acquired: []; lost: [error: Error] }> implements EngineLease {
  private state: 'new' | 'held' | 'closed' = 'new';
  private settle!: () => void;
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    private readonly store: Store,
    _options: EngineLeaseOptions = {},
  ) {
    super();
  }

  get held(): boolean {
    return this.state === 'held';
  }

  start(): void {
    if (this.state !== 'new') return;
    this.state = 'held';
    // Asynchronous as on PostgreSQL, so a listener attached right after start() sees it.
    queueMicrotask(() => {
      this.emit('acquired');
      this.settle();
    });
  }

  async fenced<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (!this.held) throw new LeaseNotHeld();
    return this.store.transaction(fn);
  }

  async close(): Promise<void> {
    this.state = 'closed';
  }
}
