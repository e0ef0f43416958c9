import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { AdmissionCounter, DEFAULT_ADMISSION, type AdmissionLimits } from './admission.js';

export const CHALLENGE_TTL_MS = 60_000;

export type NonceCheck = { ok: true } | { ok: false; reason: 'unknown-nonce' | 'expired-nonce' | 'wrong-host' };

export type IssuedChallenge =
  | { ok: true; nonce: string; expiresAt: number }
  | { ok: false; scope: 'total' | 'address'; limit: number };

interface Pending {
  host: string;
  expiresAt: number;
  release: () => void;
}

/**
 * Nonces for the challenge handshake: in memory, single-use, short-lived, and bounded (in total
 * and per source address) so that asking for challenges without answering them cannot grow memory.
 */
export class ChallengeStore {
  /** Insertion order is expiry order (one TTL for all), so expired nonces are swept from the front. */
  private readonly nonces = new Map<string, Pending>();
  private readonly admission: AdmissionCounter;

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = CHALLENGE_TTL_MS,
    limits: AdmissionLimits = DEFAULT_ADMISSION.pendingChallenges,
  ) {
    this.admission = new AdmissionCounter(limits);
  }

  /** `source` is the caller's sourceKey(): pending nonces are counted against it. */
  issue(host: string, source = 'unknown'): IssuedChallenge {
    this.sweepExpired();
    const slot = this.admission.acquire(source);
    if (!slot.ok) return slot;
    const nonce = randomBytes(24).toString('base64url');
    const expiresAt = this.clock.now() + this.ttlMs;
    this.nonces.set(nonce, { host, expiresAt, release: slot.release });
    return { ok: true, nonce, expiresAt };
  }

  /** Checks and forgets the nonce, whatever the result: a nonce is never good twice. */
  consume(host: string, nonce: string): NonceCheck {
    const entry = this.nonces.get(nonce);
    if (!entry) return { ok: false, reason: 'unknown-nonce' };
    this.forget(nonce, entry);
    if (entry.host !== host) return { ok: false, reason: 'wrong-host' };
    if (entry.expiresAt <= this.clock.now()) return { ok: false, reason: 'expired-nonce' };
    return { ok: true };
  }

  get size(): number {
    return this.nonces.size;
  }

  pendingFrom(source: string): number {
    return this.admission.heldBy(source);
  }

  /**
   * Amortised O(1): stops at the first live nonce. (If the wall clock stepped back, a later entry
   * may outlive an earlier one; it is then swept a little late, still within the caps.)
   */
  private sweepExpired(): void {
    const now = this.clock.now();
    for (const [nonce, entry] of this.nonces) {
      if (entry.expiresAt > now) return;
      this.forget(nonce, entry);
    }
  }

  private forget(nonce: string, entry: Pending): void {
    this.nonces.delete(nonce);
    entry.release();
  }
}
