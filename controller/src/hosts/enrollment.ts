import { and, asc, desc, eq, isNull, sql } from 'drizzle-orm';
import type { EnrollmentTokenInfo } from '../../../shared/src/operator-api.js';
import { iso, isoOrNull, type Clock } from '../clock.js';
import type { Db } from '../db/open.js';
import { enrollmentTokens, hosts } from '../db/schema.js';
import { appendEvent } from '../events.js';
import { newId, newSecret, sha256Hex } from '../secrets.js';

export interface EnrollmentTokenSpec {
  ttlMs: number;
  maxUses: number | null;
  tags: string[];
}

export function createEnrollmentToken(db: Db, clock: Clock, spec: EnrollmentTokenSpec) {
  const token = newSecret('shoal_enroll');
  const id = newId();
  const now = clock.now();
  const row = { id, hash: sha256Hex(token), expiresAt: now + spec.ttlMs, maxUses: spec.maxUses, tags: spec.tags, createdAt: now };
  db.insert(enrollmentTokens).values(row).run();
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
export function enrollHost(db: Db, clock: Clock, request: { host: string; publicKey: string; token: string }): EnrollOutcome {
  const now = clock.now();
  return db.transaction((tx): EnrollOutcome => {
    const token = tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.hash, sha256Hex(request.token))).get();
    if (!token || token.revokedAt !== null) {
      return { ok: false, reason: 'invalid-enrollment-token', message: 'enrollment token is not known to this controller or was revoked' };
    }
    const existing = tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.host)).get();
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
    const spent = tx
      .update(enrollmentTokens)
      .set({ uses: sql`${enrollmentTokens.uses} + 1` })
      .where(sql`${enrollmentTokens.id} = ${token.id} and (${enrollmentTokens.maxUses} is null or ${enrollmentTokens.uses} < ${enrollmentTokens.maxUses})`)
      .run();
    if (spent.changes === 0) {
      return { ok: false, reason: 'enrollment-token-used-up', message: `enrollment token was already used ${token.uses} time(s), its limit` };
    }
    tx.insert(hosts).values({ name: request.host, publicKey: request.publicKey, tags: token.tags, enrolledAt: now }).run();
    appendEvent(tx, { host: request.host, at: now, kind: 'host-enrolled', actor: `agent:${request.host}`, data: { tokenId: token.id, tags: token.tags } });
    return { ok: true, created: true };
  });
}

export type RegisterOutcome = { ok: true; created: boolean } | { ok: false; reason: 'host-key-conflict'; message: string };

/** An operator vouches for a host's key ahead of time; the host then authenticates without an enrollment token. */
export function registerHost(
  db: Db,
  clock: Clock,
  request: { name: string; publicKey: string; tags: string[]; actor: string },
): RegisterOutcome {
  const now = clock.now();
  return db.transaction((tx): RegisterOutcome => {
    const existing = tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, request.name)).get();
    if (existing) {
      if (existing.publicKey === request.publicKey) return { ok: true, created: false };
      return { ok: false, reason: 'host-key-conflict', message: `host ${JSON.stringify(request.name)} is already registered with a different public key` };
    }
    tx.insert(hosts).values({ name: request.name, publicKey: request.publicKey, tags: request.tags, enrolledAt: now }).run();
    appendEvent(tx, { host: request.name, at: now, kind: 'host-registered', actor: request.actor, data: { tags: request.tags } });
    return { ok: true, created: true };
  });
}

/** Every enrollment token, newest first, with what it can still do; never the token (only its hash is stored). */
export function listEnrollmentTokens(db: Db, clock: Clock): EnrollmentTokenInfo[] {
  const now = clock.now();
  return db
    .select()
    .from(enrollmentTokens)
    .orderBy(desc(enrollmentTokens.createdAt), asc(enrollmentTokens.id))
    .all()
    .map((t) => ({
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
export function revokeEnrollmentToken(db: Db, clock: Clock, id: string): boolean {
  return db.update(enrollmentTokens).set({ revokedAt: clock.now() }).where(and(eq(enrollmentTokens.id, id), isNull(enrollmentTokens.revokedAt))).run().changes > 0;
}
