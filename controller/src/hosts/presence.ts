import { silentLogger, type Logger } from '../../../shared/src/logger.js';
import type { ConnectionMode } from '../../../shared/src/operator-api.js';
import { runBackground } from '../background.js';
import type { Clock } from '../clock.js';
import { chunkedStatement, rowValues } from '../db/chunked.js';
import type { Store } from '../db/store.js';
import { inWriteLane } from '../db/write-lane.js';
import { HEARTBEAT_MS, STALE_AFTER_MS, dropHeartbeat, readOtherClaims, writeClaims, type ClaimWrite, type HeldMode, type RemoteClaim } from './shared-presence.js';

/** lastSeenAt is written at most this often per host, so 10,000 polling hosts do not mean 10,000 writes a cycle. */
const SEEN_WRITE_INTERVAL_MS = 5_000;

/**
 * How each host is connected right now: websocket while one is open; polling when a poll arrived
 * within three poll intervals; otherwise offline. Kept in memory (read on every status and rollout
 * step); lastSeenAt is also written to the hosts row, off the caller's path: the hosts seen since the
 * last write are written together in one transaction, so a login or a poll never waits for it.
 *
 * On PostgreSQL other replicas hold other hosts: this replica's own knowledge answers for the hosts
 * it holds, and the claims of the others (shared-presence.ts), read every heartbeat, for the rest.
 * The same write rounds publish this replica's claims when a host's mode here changes.
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
  /** Whether other replicas may share the database (PostgreSQL): claims and heartbeats are written only then. */
  private readonly shared: boolean;
  /** What this replica last wrote as its claim per host ('unknown': the write failed; write again). */
  private readonly published = new Map<string, HeldMode | 'unknown'>();
  /** Hosts whose mode here may differ from what is published, for the next write round. */
  private readonly touched = new Set<string>();
  private heartbeatDue = false;
  private forgetEarlier = true;
  /** The other replicas' claims as last read. */
  private remote = new Map<string, RemoteClaim>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly pollIntervalMs: number,
    private readonly logger: Logger = silentLogger(),
  ) {
    this.shared = store.shared;
  }

  /** PostgreSQL: heartbeats (and reads the others' claims) now and every `intervalMs` until stop(). SQLite: nothing to share. */
  start(intervalMs = HEARTBEAT_MS): void {
    if (!this.shared || this.timer !== null) return;
    const beat = () => runBackground(this.logger, 'presence heartbeat', () => this.heartbeat());
    beat();
    this.timer = setInterval(beat, intervalMs);
    this.timer.unref();
  }

  /** Writes what is pending; on PostgreSQL also drops this replica's heartbeat, so the others see its hosts offline at once. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
    if (!this.shared) return;
    try {
      await dropHeartbeat(this.store);
    } catch (error) {
      // The others then see this replica's hosts go when its heartbeat turns stale.
      this.logger.warn({ err: error }, 'could not drop this replica\'s heartbeat');
    }
  }

  /** One heartbeat: writes this replica's heartbeat and changed claims, then reads the other replicas' claims. */
  async heartbeat(): Promise<void> {
    if (!this.shared) return;
    this.heartbeatDue = true;
    await this.flush();
    this.remote = await readOtherClaims(this.store);
  }

  websocketOpened(host: string): void {
    this.websockets.add(host);
    this.seen(host, true);
    this.touch(host);
  }

  websocketClosed(host: string): void {
    this.websockets.delete(host);
    this.seen(host, true);
    this.touch(host);
  }

  polled(host: string): void {
    this.lastPoll.set(host, this.clock.now());
    this.seen(host);
    this.touch(host);
  }

  /** A long-poll is held for `host` until the returned function is called. */
  holdPoll(host: string): () => void {
    this.holding.set(host, (this.holding.get(host) ?? 0) + 1);
    this.touch(host);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.holding.get(host) ?? 1) - 1;
      if (left > 0) this.holding.set(host, left);
      else this.holding.delete(host);
      this.touch(host);
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

  /**
   * `host` was heard, and the caller's own committed write stored `at` as its lastSeenAt (a report
   * group writes it with the host's status): no write of its own for that, which would queue in
   * the write lane behind the reports and update the same rows again.
   */
  seenStored(host: string, at: number): void {
    this.lastHeard.set(host, Math.max(this.lastHeard.get(host) ?? at, at));
    if ((this.lastWritten.get(host) ?? -Infinity) < at) this.lastWritten.set(host, at);
    // An older value still to be written would move lastSeenAt back.
    const unwritten = this.unwritten.get(host);
    if (unwritten !== undefined && unwritten <= at) this.unwritten.delete(host);
  }

  /** A host's mode here may have changed: its claim is written in the next round if it differs from the published one. */
  private touch(host: string): void {
    if (!this.shared) return;
    if (this.localMode(host) === (this.published.get(host) ?? 'offline')) return;
    this.touched.add(host);
    this.startWriting();
  }

  private pending(): boolean {
    return this.unwritten.size > 0 || this.touched.size > 0 || this.heartbeatDue;
  }

  /** Resolves once every lastSeenAt and claim noted so far is written (or its write failed, which is logged). */
  async flush(): Promise<void> {
    while (this.writing !== null || this.pending()) {
      this.startWriting();
      await this.writing?.catch(() => undefined);
    }
  }

  private startWriting(): void {
    if (this.writing !== null || !this.pending()) return;
    const writing = this.write();
    this.writing = writing;
    runBackground(this.logger, 'presence write', () => writing);
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
    const batch = [...this.unwritten].map(([host, at]) => ({ host, at }));
    this.unwritten.clear();
    const claims = this.shared ? this.takeClaimWrite() : null;
    if (batch.length === 0 && claims === null) return;
    const { store } = this;
    const now = this.clock.now();
    try {
      // In the write lane: report groups update the same hosts rows (see write-lane.ts).
      await inWriteLane(store, () =>
        store.transaction(async (tx) => {
          // A few statements per turn, not one per host (a round trip each on PostgreSQL), each
          // prepared once per row count: a turn's polls and reports were a fresh drizzle build.
          await writeLastSeen(store, batch);
          if (claims !== null) await writeClaims(tx, store, now, claims);
        }),
      );
    } catch (error) {
      if (claims !== null) {
        // Written again on the next heartbeat (not at once: the database may be down).
        for (const host of [...claims.held.keys(), ...claims.released]) this.published.set(host, 'unknown');
        if (claims.forgetEarlier) this.forgetEarlier = true;
      }
      throw error;
    }
  }

  /**
   * The claims that changed since published (on a heartbeat: all of them, where polls turn stale
   * and claims are asserted again), taken as published: a failed write marks them unknown again.
   */
  private takeClaimWrite(): ClaimWrite | null {
    const heartbeat = this.heartbeatDue;
    this.heartbeatDue = false;
    const candidates = heartbeat ? new Set([...this.touched, ...this.published.keys()]) : new Set(this.touched);
    this.touched.clear();
    const held = new Map<string, HeldMode>();
    const released: string[] = [];
    for (const host of candidates) {
      const mode = this.localMode(host);
      const was = this.published.get(host);
      if (mode === 'offline') {
        if (was === undefined) continue;
        released.push(host);
        this.published.delete(host);
      } else if (heartbeat || mode !== was) {
        held.set(host, mode);
        this.published.set(host, mode);
      }
    }
    const forgetEarlier = this.forgetEarlier;
    if (held.size === 0 && released.length === 0 && !heartbeat && !forgetEarlier) return null;
    this.forgetEarlier = false;
    return { held, released, heartbeat, forgetEarlier };
  }

  /** The later of the stored lastSeenAt and what this process heard since. */
  lastSeen(host: string, stored: number | null): number | null {
    const heard = this.lastHeard.get(host);
    if (heard === undefined) return stored;
    return stored === null ? heard : Math.max(stored, heard);
  }

  /** How the host is connected: to this replica, else (PostgreSQL) to another one whose heartbeat is fresh. */
  mode(host: string): ConnectionMode {
    const local = this.localMode(host);
    if (local !== 'offline') return local;
    const claim = this.remote.get(host);
    if (claim !== undefined && this.clock.now() - claim.replicaSeenAt <= STALE_AFTER_MS) return claim.mode;
    return 'offline';
  }

  private localMode(host: string): ConnectionMode {
    if (this.websockets.has(host)) return 'websocket';
    if (this.holding.has(host)) return 'polling';
    const polled = this.lastPoll.get(host);
    if (polled !== undefined && this.clock.now() - polled <= 3 * this.pollIntervalMs) return 'polling';
    return 'offline';
  }
}

/** Last-seen times, one update from the rows' values per chunk (db/chunked.ts). */
const writeLastSeen = chunkedStatement<{ host: string; at: number }>('hosts_last_seen', (q, { hosts }, size) => {
  const v = rowValues({ host: 'text', at: 'bigint' }, size);
  return q.update(hosts).set({ lastSeenAt: v.of.at }).from(v.from).where(v.joins(hosts.name, 'host'));
});
