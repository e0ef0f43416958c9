import { randomBytes } from 'node:crypto';
import { and, eq, lte, sql } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import type { Clock } from '../clock.js';
import { perHandle } from '../db/per-handle.js';
import { chunkedStatement, placeholderRow, rowIndexes } from '../db/chunked.js';
import type { Queryable, Store, Tables } from '../db/store.js';
import { turnBatch, type TurnBatch } from '../db/turn-batch.js';
import { newSecret, sha256Hex } from '../secrets.js';

export const SESSION_TTL_MS = 3600_000;
/**
 * How long a replica trusts a session it validated without asking the database again. Revocation
 * clears the cache at once on the replica that revokes and, by notification, on every other one;
 * this bounds what a lost notification (the listen connection down) can leave valid.
 */
export const SESSION_CACHE_MS = 5_000;
/** Entries kept at most: a fleet's worth; the oldest go first. */
const SESSION_CACHE_MAX = 50_000;
/** Payload `<instance>:<host>`: each replica applies revocations made elsewhere; its own it applied already. */
const REVOKED_CHANNEL = 'shoal_agent_revoked';

interface NewSession {
  tokenHash: string;
  host: string;
  expiresAt: number;
}

const SESSION_FIELDS = ['tokenHash', 'host', 'expiresAt'] as const;

// Every login writes a session: the logins of a turn share one statement per chunk (db/chunked.ts).
const insertSessions = chunkedStatement<NewSession>(
  'agent_sessions_insert',
  (q, { agentSessions }, size) => q.insert(agentSessions).values(rowIndexes(size).map((i) => placeholderRow(SESSION_FIELDS, i))),
);
// Every uncached request reads one: built once per handle (db/per-handle.ts).
const sessionQuery = perHandle((q: Queryable, { agentSessions }: Tables) =>
  q
    .select({ host: agentSessions.host, expiresAt: agentSessions.expiresAt })
    .from(agentSessions)
    .where(eq(agentSessions.tokenHash, sql.placeholder('tokenHash')))
    .prepare('agent_sessions_lookup'),
);

interface Cached {
  host: string;
  expiresAt: number;
  cachedUntil: number;
}

/**
 * Agent sessions, in the database (agent_sessions) so that a host that logged in on one replica
 * may talk to any other. The token is shown once; only its sha256 is stored. Validation is one
 * lookup by primary key, skipped for a session this replica validated in the last few seconds.
 */
export class SessionStore {
  private readonly revokedListeners = new Set<(host: string) => void>();
  private readonly cache = new Map<string, Cached>();
  /** Bumped by every revocation: a lookup that raced one does not cache what it read before it. */
  private generation = 0;
  /** The cache is used only while revocations from other replicas reach this one. */
  private listening = false;
  private readonly instance = randomBytes(8).toString('hex');
  private readonly subscribed: Promise<void>;
  /** The logins of one event-loop turn commit their sessions together: one commit, not one per agent, when a fleet reconnects. */
  private readonly inserts: TurnBatch<NewSession>;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly ttlMs = SESSION_TTL_MS,
  ) {
    this.inserts = turnBatch(store, (sessions) => insertSessions(store, sessions));
    this.subscribed = store.notifications
      .subscribe(REVOKED_CHANNEL, (payload) => this.revokedElsewhere(payload), { onResync: () => this.forgetCache() })
      .then(() => {
        this.listening = true;
      })
      .catch((error: unknown) => this.logger.error({ err: error }, 'cannot listen for session revocations; every session is checked in the database'));
  }

  /** Resolves once revocations made on other replicas reach this one (or listening failed: then nothing is cached). */
  ready(): Promise<void> {
    return this.subscribed;
  }

  async create(host: string): Promise<{ token: string; expiresAt: number }> {
    const token = newSecret('shoal_s');
    const tokenHash = sha256Hex(token);
    const expiresAt = this.clock.now() + this.ttlMs;
    const generation = this.generation;
    await this.inserts.add({ tokenHash, host, expiresAt });
    this.remember(tokenHash, host, expiresAt, generation);
    return { token, expiresAt };
  }

  /** The host a session belongs to, or null when it is unknown, expired or revoked. */
  async hostOf(token: string): Promise<string | null> {
    const tokenHash = sha256Hex(token);
    const now = this.clock.now();
    const cached = this.cache.get(tokenHash);
    if (cached && cached.cachedUntil > now && cached.expiresAt > now) return cached.host;
    if (cached) this.cache.delete(tokenHash);
    const generation = this.generation;
    const { agentSessions } = this.store.t;
    const [row] = await sessionQuery(this.store).execute({ tokenHash });
    if (!row) return null;
    if (row.expiresAt <= now) {
      // Pruned on use; the periodic sweep gets those never presented again.
      await this.store.transaction(async (tx) => {
        await tx.delete(agentSessions).where(and(eq(agentSessions.tokenHash, tokenHash), lte(agentSessions.expiresAt, now)));
      });
      return null;
    }
    this.remember(tokenHash, row.host, row.expiresAt, generation);
    return row.host;
  }

  /**
   * Ends a host's access at once (removed, or re-keyed): its sessions are deleted and listeners
   * (the websocket hub) close its live connection, on this replica and, by notification, on every
   * other. Its next login is checked against the database.
   */
  async revokeHost(host: string): Promise<void> {
    const { agentSessions } = this.store.t;
    await this.store.transaction(async (tx) => {
      await tx.delete(agentSessions).where(eq(agentSessions.host, host));
      await this.store.notifications.publish(REVOKED_CHANNEL, `${this.instance}:${host}`);
    });
    this.revoked(host);
  }

  onHostRevoked(listener: (host: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /** Deletes sessions expired before now; returns how many. */
  async sweepExpired(): Promise<number> {
    const { agentSessions } = this.store.t;
    const now = this.clock.now();
    return this.store.transaction(async (tx) => this.store.affected(await tx.delete(agentSessions).where(lte(agentSessions.expiresAt, now))));
  }

  private remember(tokenHash: string, host: string, expiresAt: number, generation: number): void {
    if (!this.listening || generation !== this.generation) return;
    if (this.cache.size >= SESSION_CACHE_MAX) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(tokenHash, { host, expiresAt, cachedUntil: this.clock.now() + SESSION_CACHE_MS });
  }

  private revokedElsewhere(payload: string): void {
    const split = payload.indexOf(':');
    if (split < 0 || payload.slice(0, split) === this.instance) return;
    this.revoked(payload.slice(split + 1));
  }

  private revoked(host: string): void {
    this.generation += 1;
    for (const [tokenHash, cached] of this.cache) if (cached.host === host) this.cache.delete(tokenHash);
    for (const listener of this.revokedListeners) {
      try {
        listener(host);
      } catch (error) {
        this.logger.error({ err: error, host }, 'session revocation listener failed');
      }
    }
  }

  private forgetCache(): void {
    this.generation += 1;
    this.cache.clear();
  }
}
