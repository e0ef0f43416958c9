import { inArray, sql } from 'drizzle-orm';
import { silentLogger, type Logger } from '../../../shared/src/logger.js';
import type { ConnectionMode } from '../../../shared/src/operator-api.js';
import { runBackground } from '../background.js';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { inWriteLane } from '../db/write-lane.js';

/** lastSeenAt is written at most this often per host, so 10,000 polling hosts do not mean 10,000 writes a cycle. */
const SEEN_WRITE_INTERVAL_MS = 5_000;
/** Hosts per UPDATE statement (three parameters each, well under either engine's limit). */
const WRITE_CHUNK = 500;

/**
 * How each host is connected right now: websocket while one is open; polling when a poll arrived
 * within three poll intervals; otherwise offline. Kept in memory (read on every status and rollout
 * step); lastSeenAt is also written to the hosts row, off the caller's path: the hosts seen since the
 * last write are written together in one transaction, so a login or a poll never waits for it.
 */
export class Presence {
  private readonly websockets = new Set<string>();
  private readonly lastPoll = new Map<string, number>();
  /** Long-polls being held open per host: a host waiting on one is connected, however long the wait. */
  private readonly holding = new Map<string, number>();
  private readonly lastWritten = new Map<string, number>();
  /** Newer than the database when a websocket host was only heard through pongs. */
  private readonly lastHeard = new Map<string, number>();
  /** lastSeenAt values waiting for the next write, by host. */
  private readonly unwritten = new Map<string, number>();
  /** The write in progress (it takes what is unwritten when it starts), or null. */
  private writing: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly pollIntervalMs: number,
    private readonly logger: Logger = silentLogger(),
  ) {}

  websocketOpened(host: string): void {
    this.websockets.add(host);
    this.seen(host, true);
  }

  websocketClosed(host: string): void {
    this.websockets.delete(host);
    this.seen(host, true);
  }

  polled(host: string): void {
    this.lastPoll.set(host, this.clock.now());
    this.seen(host);
  }

  /** A long-poll is held for `host` until the returned function is called. */
  holdPoll(host: string): () => void {
    this.holding.set(host, (this.holding.get(host) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.holding.get(host) ?? 1) - 1;
      if (left > 0) this.holding.set(host, left);
      else this.holding.delete(host);
    };
  }

  /** A sign of life that is not worth a write (a websocket pong): kept in memory only. */
  heard(host: string): void {
    this.lastHeard.set(host, this.clock.now());
  }

  seen(host: string, force = false): void {
    const now = this.clock.now();
    this.lastHeard.set(host, now);
    const written = this.lastWritten.get(host);
    if (!force && written !== undefined && now - written < SEEN_WRITE_INTERVAL_MS) return;
    this.lastWritten.set(host, now);
    this.unwritten.set(host, now);
    this.startWriting();
  }

  /** Resolves once every lastSeenAt noted so far is written (or its write failed, which is logged). */
  async flush(): Promise<void> {
    while (this.writing !== null || this.unwritten.size > 0) {
      this.startWriting();
      await this.writing?.catch(() => undefined);
    }
  }

  private startWriting(): void {
    if (this.writing !== null || this.unwritten.size === 0) return;
    const writing = this.write();
    this.writing = writing;
    runBackground(this.logger, 'presence last-seen write', () => writing);
    // Hosts seen while this write ran go in the next one.
    void writing
      .catch(() => undefined)
      .then(() => {
        this.writing = null;
        this.startWriting();
      });
  }

  private async write(): Promise<void> {
    // The hosts seen in this turn of the event loop join the same transaction.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const batch = [...this.unwritten];
    this.unwritten.clear();
    const { store } = this;
    const { hosts } = store.t;
    // In the write lane: report groups update the same hosts rows (see write-lane.ts).
    await inWriteLane(store, () =>
      store.transaction(async (tx) => {
        // One statement per chunk of hosts, not one per host: a round trip each on PostgreSQL.
        for (let i = 0; i < batch.length; i += WRITE_CHUNK) {
          const chunk = batch.slice(i, i + WRITE_CHUNK);
          const at = sql.join(
            chunk.map(([host, ms]) => sql`when ${host} then cast(${ms} as bigint)`),
            sql` `,
          );
          await tx
            .update(hosts)
            .set({ lastSeenAt: sql`case ${hosts.name} ${at} end` })
            .where(inArray(hosts.name, chunk.map(([host]) => host)));
        }
      }),
    );
  }

  /** The later of the stored lastSeenAt and what this process heard since. */
  lastSeen(host: string, stored: number | null): number | null {
    const heard = this.lastHeard.get(host);
    if (heard === undefined) return stored;
    return stored === null ? heard : Math.max(stored, heard);
  }

  mode(host: string): ConnectionMode {
    if (this.websockets.has(host)) return 'websocket';
    if (this.holding.has(host)) return 'polling';
    const polled = this.lastPoll.get(host);
    if (polled !== undefined && this.clock.now() - polled <= 3 * this.pollIntervalMs) return 'polling';
    return 'offline';
  }
}
