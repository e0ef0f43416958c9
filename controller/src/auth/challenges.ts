import { randomBytes } from 'node:crypto';
import { eq, lte } from 'drizzle-orm';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { TtlMap } from '../ttl-map.js';
import { AdmissionCounter, DEFAULT_ADMISSION, type AdmissionLimits } from './admission.js';

export const CHALLENGE_TTL_MS = 60_000;

export type NonceCheck = { ok: true } | { ok: false; reason: 'unknown-nonce' | 'expired-nonce' | 'wrong-host' };

export type IssuedChallenge =
  | { ok: true; nonce: string; expiresAt: number }
  | { ok: false; scope: 'total' | 'address'; limit: number };

/**
 * Nonces for the challenge handshake: in the database (agent_challenges), so that a nonce asked
 * for on one replica may be answered on another; single-use and short-lived.
 *
 * The admission caps (in total and per source address) are counted here, in this replica's
 * memory, before anything reaches the database: counting rows per address in the database would
 * add a read to every challenge and, on PostgreSQL, make concurrent challenges from one address
 * conflict and retry. Each replica admits at most `limits.total` pending nonces, so the table holds
 * at most replicas × total live rows, plus expired ones until the sweep. A slot is freed when its
 * nonce is answered on this replica or expires; a nonce answered on another replica keeps its slot
 * here until it would have expired (at worst the TTL), which only makes the cap stricter.
 */
export class ChallengeStore {
  /** Nonce → its admission slot's release; a forgotten nonce gives the slot back. */
  private readonly slots: TtlMap<string, () => void>;
  private readonly admission: AdmissionCounter;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    ttlMs = CHALLENGE_TTL_MS,
    limits: AdmissionLimits = DEFAULT_ADMISSION.pendingChallenges,
  ) {
    this.slots = new TtlMap(clock, ttlMs, (_nonce, release) => release());
    this.admission = new AdmissionCounter(limits);
  }

  /** `source` is the caller's sourceKey(): pending nonces are counted against it. */
  async issue(host: string, source = 'unknown'): Promise<IssuedChallenge> {
    this.slots.sweepExpired();
    const slot = this.admission.acquire(source);
    if (!slot.ok) return slot;
    const nonce = randomBytes(24).toString('base64url');
    const expiresAt = this.slots.set(nonce, slot.release);
    try {
      await this.store.transaction(async (tx) => {
        await tx.insert(this.store.t.agentChallenges).values({ nonce, host, expiresAt });
      });
    } catch (error) {
      this.slots.delete(nonce);
      throw error;
    }
    return { ok: true, nonce, expiresAt };
  }

  /**
   * Checks and forgets the nonce, whatever the result: a nonce is never good twice. The delete
   * decides: of two replicas answering the same nonce at once, only the one whose delete removed
   * the row sees it.
   */
  async consume(host: string, nonce: string): Promise<NonceCheck> {
    this.slots.delete(nonce);
    const { agentChallenges } = this.store.t;
    const [row] = await this.store.transaction(async (tx) =>
      tx.delete(agentChallenges).where(eq(agentChallenges.nonce, nonce)).returning({ host: agentChallenges.host, expiresAt: agentChallenges.expiresAt }),
    );
    if (!row) return { ok: false, reason: 'unknown-nonce' };
    if (row.host !== host) return { ok: false, reason: 'wrong-host' };
    if (row.expiresAt <= this.clock.now()) return { ok: false, reason: 'expired-nonce' };
    return { ok: true };
  }

  /** Deletes nonces expired before now (asked for and never answered); returns how many. */
  async sweepExpired(): Promise<number> {
    const { agentChallenges } = this.store.t;
    const now = this.clock.now();
    return this.store.transaction(async (tx) => this.store.affected(await tx.delete(agentChallenges).where(lte(agentChallenges.expiresAt, now))));
  }

  /** Nonces this replica issued that are still pending (answered nowhere yet, as far as it knows). */
  get size(): number {
    return this.slots.size;
  }

  pendingFrom(source: string): number {
    return this.admission.heldBy(source);
  }
}
