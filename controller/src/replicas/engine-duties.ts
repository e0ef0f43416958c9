import type { Logger } from '../../../shared/src/logger.js';
import type { EngineLease } from './engine-lease.js';

/**
 * Work that exactly one replica does at a time: the rollout timer, manifest renewal, webhook
 * delivery, retention, the event log. It runs while this replica holds the engine lease. On SQLite
 * the one process holds it from the start; on PostgreSQL a replica that takes the lease over from
 * a dead one starts it from what the database says, as a restarted controller does.
 */
export interface Duty {
  readonly name: string;
  /** Starts the work and resolves once its first pass is done (e.g. resuming rollouts); resolves with how to stop it. */
  start(): Promise<() => Promise<void>>;
}

export class EngineDuties {
  private stops: Array<() => Promise<void>> = [];
  private holding = false;
  /** Starting and stopping, one after the other in the order the lease changed. */
  private changes: Promise<void> = Promise.resolve();

  constructor(
    private readonly lease: EngineLease,
    private readonly duties: readonly Duty[],
    private readonly logger: Logger,
    /** Told whenever this replica starts or stops running the duties. */
    private readonly onHeld: (held: boolean) => void = () => {},
  ) {
    lease.on('acquired', () => void this.enqueue(() => this.startAll()));
    lease.on('lost', (error) => void this.enqueue(() => this.stopAll(error)));
  }

  get held(): boolean {
    return this.holding;
  }

  /** Competes for the lease; resolves after the first attempt and, if it was won, once every duty has started. */
  async start(): Promise<void> {
    this.lease.start();
    await this.lease.settled;
    await this.changes;
  }

  /** Stops the duties (waiting for work in flight) and gives the lease up for another replica. */
  async close(): Promise<void> {
    await this.enqueue(() => this.stopAll(null));
    await this.lease.close();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.changes = this.changes.then(step).catch((error: unknown) => this.logger.error({ err: error }, 'engine duties: changing over failed'));
    return this.changes;
  }

  private async startAll(): Promise<void> {
    if (this.holding) return;
    this.holding = true;
    this.onHeld(true);
    for (const duty of this.duties) {
      try {
        this.stops.push(await duty.start());
      } catch (error) {
        // The others still run; a duty that could not start (the database went away) starts again at the next acquisition.
        this.logger.error({ err: error, duty: duty.name }, 'engine duty failed to start');
      }
    }
    this.logger.info({ duties: this.duties.map((duty) => duty.name) }, 'this replica runs the engine: rollout timer, renewals, webhooks, retention');
  }

  private async stopAll(error: Error | null): Promise<void> {
    if (!this.holding) return;
    this.holding = false;
    this.onHeld(false);
    const stops = this.stops.splice(0).reverse();
    await Promise.allSettled(stops.map((stop) => stop()));
    if (error) this.logger.warn({ err: error }, 'engine lease lost: this replica stopped running the engine; another one takes over');
  }
}
