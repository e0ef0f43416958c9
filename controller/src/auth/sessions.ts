import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { TtlMap } from '../ttl-map.js';

export const SESSION_TTL_MS = 3600_000;

/**
 * Agent sessions live in memory only: a restarted controller forgets them and agents simply
 * answer a fresh challenge.
 */
export class SessionStore {
  /** Token → host. */
  private readonly sessions: TtlMap<string, string>;
  private readonly revokedListeners = new Set<(host: string) => void>();

  constructor(clock: Clock, ttlMs = SESSION_TTL_MS) {
    this.sessions = new TtlMap(clock, ttlMs);
  }

  create(host: string): { token: string; expiresAt: number } {
    this.sessions.sweepExpired();
    const token = `shoal_s_${randomBytes(32).toString('base64url')}`;
    const expiresAt = this.sessions.set(token, host);
    return { token, expiresAt };
  }

  /** The host a session belongs to, or null when it is unknown or expired. */
  hostOf(token: string): string | null {
    return this.sessions.get(token) ?? null;
  }

  /**
   * Ends a host's access at once (removed, or re-keyed): its sessions are forgotten and listeners
   * (the websocket hub) close its live connection. Its next login is checked against the database.
   */
  revokeHost(host: string): void {
    this.sessions.deleteWhere((sessionHost) => sessionHost === host);
    for (const listener of this.revokedListeners) listener(host);
  }

  onHostRevoked(listener: (host: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }
}
