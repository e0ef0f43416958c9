import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { TtlMap } from '../ttl-map.js';
import { AdmissionCounter, DEFAULT_ADMISSION, type AdmissionLimits } from './admission.js';

export const CHALLENGE_TTL_MS = 60_000;

export type NonceCheck = { ok: true } | { ok: false; reason: 'unknown-nonce' | 'expired-nonce' | 'wrong-host' };

export type IssuedChallenge =
  | { ok: true; nonce: string; expiresAt: number }
  | { ok: false; scope: 'total' | 'address'; limit: number };

interface Pending {
  host: string;
  release: () => void;
}

/**
 * Nonces for the challenge handshake: in memory, single-use, short-lived, and bounded (in total
 * and per source address) so that asking for challenges without answering them cannot grow memory.
 */
export class ChallengeStore {
  /** A forgotten nonce gives its admission slot back. */
  private readonly nonces: TtlMap<string, Pending>;
  private readonly admission: AdmissionCounter;

  constructor(clock: Clock, ttlMs = CHALLENGE_TTL_MS, limits: AdmissionLimits = DEFAULT_ADMISSION.pendingChallenges) {
    this.nonces = new TtlMap(clock, ttlMs, (_nonce, pending) => pending.release());
    this.admission = new AdmissionCounter(limits);
  }

  /** `source` is the caller's sourceKey(): pending nonces are counted against it. */
  issue(host: string, source = 'unknown'): IssuedChallenge {
    this.nonces.sweepExpired();
    const slot = this.admission.acquire(source);
    if (!slot.ok) return slot;
    const nonce = randomBytes(24).toString('base64url');
    const expiresAt = this.nonces.set(nonce, { host, release: slot.release });
    return { ok: true, nonce, expiresAt };
  }

  /** Checks and forgets the nonce, whatever the result: a nonce is never good twice. */
  consume(host: string, nonce: string): NonceCheck {
    const taken = this.nonces.take(nonce);
    if (!taken) return { ok: false, reason: 'unknown-nonce' };
    if (taken.value.host !== host) return { ok: false, reason: 'wrong-host' };
    if (taken.expired) return { ok: false, reason: 'expired-nonce' };
    return { ok: true };
  }

  get size(): number {
    return this.nonces.size;
  }

  pendingFrom(source: string): number {
    return this.admission.heldBy(source);
  }
}
