import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';

export const CHALLENGE_TTL_MS = 60_000;

export type NonceCheck = { ok: true } | { ok: false; reason: 'unknown-nonce' | 'expired-nonce' | 'wrong-host' };

/** Nonces for the challenge handshake: in memory, single-use, short-lived. */
export class ChallengeStore {
  private readonly nonces = new Map<string, { host: string; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = CHALLENGE_TTL_MS,
  ) {}

  issue(host: string): { nonce: string; expiresAt: number } {
    this.sweepIfLarge();
    const nonce = randomBytes(24).toString('base64url');
    const expiresAt = this.clock.now() + this.ttlMs;
    this.nonces.set(nonce, { host, expiresAt });
    return { nonce, expiresAt };
  }

  /** Checks and forgets the nonce, whatever the result: a nonce is never good twice. */
  consume(host: string, nonce: string): NonceCheck {
    const entry = this.nonces.get(nonce);
    if (!entry) return { ok: false, reason: 'unknown-nonce' };
    this.nonces.delete(nonce);
    if (entry.host !== host) return { ok: false, reason: 'wrong-host' };
    if (entry.expiresAt <= this.clock.now()) return { ok: false, reason: 'expired-nonce' };
    return { ok: true };
  }

  get size(): number {
    return this.nonces.size;
  }

  private sweepIfLarge(): void {
    if (this.nonces.size < 1024) return;
    const now = this.clock.now();
    for (const [nonce, entry] of this.nonces) if (entry.expiresAt <= now) this.nonces.delete(nonce);
  }
}
