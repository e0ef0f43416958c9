import { and, asc, desc, eq, isNull, sql } from 'drizzle-orm';
import type { EnrollmentTokenInfo } from '../../../shared/src/operator-api.js';
import { iso, isoOrNull, type Clock } from '../clock.js';
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

/**
 * Admits a host with its public key. Re-enrolling with the same key is a no-op (the agent may
 * retry after a lost answer) and does not spend a use; another key for a known host is refused,
 * since accepting it would let anyone holding a token take over that host's identity.
 */
export async function enrollHost(store: Store, clock: Clock, request: { host: string; publicKey: string; token: string }): Promise<EnrollOutcome> {
  const { enrollmentTokens, hosts } = store.t;
  const now = clock.now();
  return store.transaction(async (tx): Promise<EnrollOutcome> => {
    const [token] = await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.hash, sha256Hex(request.token))).limit(1);
    if (!token || token.revokedAt !== null) {
      return { ok: false, reason: 'invalid-enrollment-token', message: 'enrollment token is not known to this controller or was revoked' };
    }
    const [existing] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.host)).limit(1);
    if (existing) {
      if (existing.publicKey === request.publicKey) return { ok: true, created: false };
      return {
        ok: false,
        reason: 'host-key-conflict',
        message: `host ${JSON.stringify(request.host)} is already enrolled with a different public key`,
      };
    }
    if (token.expiresAt <= now) {
      return { ok: false, reason: 'enrollment-token-expired', message: `enrollment token expired at ${new Date(token.expiresAt).toISOString()}` };
    }
    const spent = await tx
      .update(enrollmentTokens)
      .set({ uses: sql`${enrollmentTokens.uses} + 1` })
      .where(sql`${enrollmentTokens.id} = ${token.id} and (${enrollmentTokens.maxUses} is null or ${enrollmentTokens.uses} < ${enrollmentTokens.maxUses})`);
    if (store.affected(spent) === 0) {
      return { ok: false, reason: 'enrollment-token-used-up', message: `enrollment token was already used ${token.uses} time(s), its limit` };
    }
    await tx.insert(hosts).values({ name: request.host, publicKey: request.publicKey, tags: token.tags, enrolledAt: now });
    await appendEvent(store, { host: request.host, at: now, kind: 'host-enrolled', actor: `agent:${request.host}`, data: { tokenId: token.id, tags: token.tags } });
    return { ok: true, created: true };
  });
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

/** Returns false when no unrevoked token has that id. Hosts already enrolled with it stay enrolled. */
export async function revokeEnrollmentToken(store: Store, clock: Clock, id: string): Promise<boolean> {
  const { enrollmentTokens } = store.t;
  return store.transaction(async (tx) => {
    const revoked = await tx.update(enrollmentTokens).set({ revokedAt: clock.now() }).where(and(eq(enrollmentTokens.id, id), isNull(enrollmentTokens.revokedAt)));
    return store.affected(revoked) > 0;
  });
}
