import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';

export const SESSION_TTL_MS = 3600_000;

/**
 * Agent sessions live in memory only: a restarted controller forgets them and agents simply
 * answer a fresh challenge.
 */
export class SessionStore {
  private readonly sessions = new Map<string, { host: string; expiresAt: number }>();
  private readonly revokedListeners = new Set<(host: string) => void>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = SESSION_TTL_MS,
  ) {}

  create(host: string): { token: string; expiresAt: number } {
    this.sweepIfLarge();
    const token = `shoal_s_${randomBytes(32).toString('base64url')}`;
    const expiresAt = this.clock.now() + this.ttlMs;
    this.sessions.set(token, { host, expiresAt });
    return { token, expiresAt };
  }

  /** The host a session belongs to, or null when it is unknown or expired. */
  hostOf(token: string): string | null {
    const entry = this.sessions.get(token);
    if (!entry) return null;
    if (entry.expiresAt <= this.clock.now()) {
      this.sessions.delete(token);
      return null;
    }
    return entry.host;
  }

  /**
   * Ends a host's access at once (removed, or re-keyed): its sessions are forgotten and listeners
   * (the websocket hub) close its live connection. Its next login is checked against the database.
   */
  revokeHost(host: string): void {
    for (const [token, entry] of this.sessions) if (entry.host === host) this.sessions.delete(token);
    for (const listener of this.revokedListeners) listener(host);
  }

  onHostRevoked(listener: (host: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  private sweepIfLarge(): void {
    // Hosts re-authenticate every hour; sweep when the map has room for more than a fleet's worth.
    if (this.sessions.size < 20_000) return;
    const now = this.clock.now();
    for (const [token, entry] of this.sessions) if (entry.expiresAt <= now) this.sessions.delete(token);
  }
}
