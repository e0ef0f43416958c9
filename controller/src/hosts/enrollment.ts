import { and, asc, desc, eq, isNull, sql } from 'drizzle-orm';
import type { EnrollmentTokenInfo } from '../../../shared/src/operator-api.js';
import { iso, isoOrNull, type Clock } from '../clock.js';
import { AsyncLock } from '../db/async-lock.js';
import type { Store } from '../db/store.js';
import { appendEvent } from '../events.js';
import { newId, newSecret, sha256Hex } from '../secrets.js';

export interface EnrollmentTokenSpec {
  ttlMs: number;
  maxUses: number | null;
  tags: string[];
}

export async function createEnrollmentToken(store: Store, clock: Clock, spec: EnrollmentTokenSpec) {
  const { enrollmentTokens } = store.t;
  const token = newSecret('shoal_enroll');
  const id = newId();
  const now = clock.now();
  const row = { id, hash: sha256Hex(token), expiresAt: now + spec.ttlMs, maxUses: spec.maxUses, tags: spec.tags, createdAt: now };
  await store.transaction(async (tx) => {
    await tx.insert(enrollmentTokens).values(row);
  });
  return { id, token, expiresAt: row.expiresAt, maxUses: spec.maxUses };
}

export type EnrollOutcome =
  | { ok: true; created: boolean }
  | {
      ok: false;
      reason: 'invalid-enrollment-token' | 'enrollment-token-expired' | 'enrollment-token-used-up' | 'host-key-conflict';
      message: string;
    };

type Refused = Extract<EnrollOutcome, { ok: false }>;

/**
 * Enrollments through one store run one at a time: a batch enrolling at once through one replica
 * would otherwise hold a pooled connection per host, each waiting for the token's row lock, and
 * starve every other request of connections. The replicas then take turns on that row (below).
 */
const enrollmentQueues = new WeakMap<Store, AsyncLock>();

/**
 * Admits a host with its public key. Re-enrolling with the same key is a no-op (the agent may
 * retry after a lost answer) and does not spend a use; another key for a known host is refused,
 * since accepting it would let anyone holding a token take over that host's identity.
 */
export async function enrollHost(store: Store, clock: Clock, request: { host: string; publicKey: string; token: string }): Promise<EnrollOutcome> {
  let queue = enrollmentQueues.get(store);
  if (!queue) enrollmentQueues.set(store, (queue = new AsyncLock()));
  return queue.run(() => enrollInTransaction(store, clock, request));
}

/** A refusal decided after the transaction wrote the host: thrown so that those writes roll back. */
class RefusedAfterWrites extends Error {
  constructor(readonly outcome: Refused) {
    super(outcome.message);
  }
}

/**
 * Every enrollment with a token spends a use of that token's one row, and a fleet provisioned
 * together enrolls through every replica at once. SERIALIZABLE made the replicas fail each other's
 * transactions on that row and retry until a host ran out of retries (500; seen enrolling 10,000
 * hosts through two replicas). So this transaction runs at READ COMMITTED (store.ts Isolation):
 * the spend is one conditional UPDATE whose WHERE states every condition of admitting one more
 * host (not revoked, not expired, below the cap), and PostgreSQL has a replica that meets the row
 * locked wait, then re-checks that WHERE on the row as committed: the cap holds exactly, and the
 * replicas take turns instead of failing. The UPDATE comes last, so the row stays locked only
 * until the commit right after it. The rest is safe without serial execution:
 * - the first read of the token only refuses early, and each refusal stays true once true
 *   (revocation is final, the expiry fixed, uses only grow); admission is the UPDATE's decision;
 * - a host row is claimed by its primary key: an insert meeting a concurrent enrollment of the same
 *   name waits for it and inserts nothing if it committed, and the host is then read as committed;
 * - the event is an append.
 * One alternative was a row per use, counted: checking the cap still reads every use, so capped
 * tokens would conflict the same way.
 */
async function enrollInTransaction(store: Store, clock: Clock, request: { host: string; publicKey: string; token: string }): Promise<EnrollOutcome> {
  const { enrollmentTokens, hosts } = store.t;
  const now = clock.now();
  try {
    return await store.transaction(
      async (tx): Promise<EnrollOutcome> => {
        const [token] = await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.hash, sha256Hex(request.token))).limit(1);
        if (!token || token.revokedAt !== null) return invalidToken();
        const [existing] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.host)).limit(1);
        if (existing) return asEnrolled(request, existing.publicKey);
        if (token.expiresAt <= now) return expired(token.expiresAt);
        if (token.maxUses !== null && token.uses >= token.maxUses) return usedUp(token.uses);

        const inserted = await tx
          .insert(hosts)
          .values({ name: request.host, publicKey: request.publicKey, tags: token.tags, enrolledAt: now })
          .onConflictDoNothing({ target: hosts.name });
        if (store.affected(inserted) === 0) {
          // The same name enrolled through another replica and committed meanwhile; nothing is written yet.
          const [committed] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.host)).limit(1);
          if (!committed) throw new Error(`host ${JSON.stringify(request.host)} was enrolled and removed while this enrollment ran; enroll again`);
          return asEnrolled(request, committed.publicKey);
        }
        await appendEvent(store, { host: request.host, at: now, kind: 'host-enrolled', actor: `agent:${request.host}`, data: { tokenId: token.id, tags: token.tags } });

        const spent = await tx
          .update(enrollmentTokens)
          .set({ uses: sql`${enrollmentTokens.uses} + 1` })
          .where(
            sql`${enrollmentTokens.id} = ${token.id} and ${enrollmentTokens.revokedAt} is null and ${enrollmentTokens.expiresAt} > ${now}
              and (${enrollmentTokens.maxUses} is null or ${enrollmentTokens.uses} < ${enrollmentTokens.maxUses})`,
          );
        if (store.affected(spent) === 0) {
          // Revoked, or its last use spent, since the first read: this statement sees that commit.
          const [latest] = await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, token.id)).limit(1);
          throw new RefusedAfterWrites(!latest || latest.revokedAt !== null ? invalidToken() : latest.expiresAt <= now ? expired(latest.expiresAt) : usedUp(latest.uses));
        }
        return { ok: true, created: true };
      },
      { isolation: 'read-committed' },
    );
  } catch (error) {
    if (error instanceof RefusedAfterWrites) return error.outcome;
    throw error;
  }
}

function asEnrolled(request: { host: string; publicKey: string }, enrolledKey: string): EnrollOutcome {
  if (enrolledKey === request.publicKey) return { ok: true, created: false };
  return { ok: false, reason: 'host-key-conflict', message: `host ${JSON.stringify(request.host)} is already enrolled with a different public key` };
}

function invalidToken(): Refused {
  return { ok: false, reason: 'invalid-enrollment-token', message: 'enrollment token is not known to this controller or was revoked' };
}

function expired(expiresAt: number): Refused {
  return { ok: false, reason: 'enrollment-token-expired', message: `enrollment token expired at ${new Date(expiresAt).toISOString()}` };
}

function usedUp(uses: number): Refused {
  return { ok: false, reason: 'enrollment-token-used-up', message: `enrollment token was already used ${uses} time(s), its limit` };
}

export type RegisterOutcome = { ok: true; created: boolean } | { ok: false; reason: 'host-key-conflict'; message: string };

/** An operator vouches for a host's key ahead of time; the host then authenticates without an enrollment token. */
export async function registerHost(
  store: Store,
  clock: Clock,
  request: { name: string; publicKey: string; tags: string[]; actor: string },
): Promise<RegisterOutcome> {
  const { hosts } = store.t;
  const now = clock.now();
  return store.transaction(async (tx): Promise<RegisterOutcome> => {
    const [existing] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.name)).limit(1);
    if (existing) {
      if (existing.publicKey === request.publicKey) return { ok: true, created: false };
      return { ok: false, reason: 'host-key-conflict', message: `host ${JSON.stringify(request.name)} is already registered with a different public key` };
    }
    await tx.insert(hosts).values({ name: request.name, publicKey: request.publicKey, tags: request.tags, enrolledAt: now });
    await appendEvent(store, { host: request.name, at: now, kind: 'host-registered', actor: request.actor, data: { tags: request.tags } });
    return { ok: true, created: true };
  });
}

/** Every enrollment token, newest first, with what it can still do; never the token (only its hash is stored). */
export async function listEnrollmentTokens(store: Store, clock: Clock): Promise<EnrollmentTokenInfo[]> {
  const { enrollmentTokens } = store.t;
  const now = clock.now();
  const rows = await store.q.select().from(enrollmentTokens).orderBy(desc(enrollmentTokens.createdAt), asc(enrollmentTokens.id));
  return rows.map((t) => ({
    id: t.id,
    tags: t.tags,
    createdAt: iso(t.createdAt),
    expiresAt: iso(t.expiresAt),
    maxUses: t.maxUses,
    uses: t.uses,
    revokedAt: isoOrNull(t.revokedAt),
    state: t.revokedAt !== null ? 'revoked' : t.expiresAt <= now ? 'expired' : t.maxUses !== null && t.uses >= t.maxUses ? 'used-up' : 'active',
  }));
}

/**
 * Returns false when no unrevoked token has that id. Hosts already enrolled with it stay enrolled.
 * One conditional UPDATE, at READ COMMITTED like the enrollments it stops: an operator revokes a
 * token mid-batch exactly when its row is busiest, and waits for the row instead of losing retries.
 */
export async function revokeEnrollmentToken(store: Store, clock: Clock, id: string): Promise<boolean> {
  const { enrollmentTokens } = store.t;
  return store.transaction(
    async (tx) => {
      const revoked = await tx.update(enrollmentTokens).set({ revokedAt: clock.now() }).where(and(eq(enrollmentTokens.id, id), isNull(enrollmentTokens.revokedAt)));
      return store.affected(revoked) > 0;
    },
    { isolation: 'read-committed' },
  );
}
