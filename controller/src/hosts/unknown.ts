import { and, asc, eq, lt, sql } from 'drizzle-orm';
import { fromBase64, keyFingerprint } from '../../../shared/src/keys.js';
import type { UnknownHost } from '../../../shared/src/operator-api.js';
import type { AgentWatermark } from '../../../shared/src/protocol.js';
import { iso, type Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { unknownHosts } from '../db/schema.js';

/**
 * Logins by hosts this controller does not know, kept so an operator can adopt one (the usual case:
 * an enrolled fleet whose controller lost its database). Only a login whose signature verifies
 * under the key it presents is recorded, so each row names a key someone holds; but anyone can
 * make keys, so the table is bounded: rows unseen for a week are dropped, and past the limit new
 * (name, key) pairs are not recorded (already recorded ones keep being updated).
 */

export const MAX_UNKNOWN_HOSTS = 1000;
export const UNKNOWN_HOST_RETENTION_MS = 7 * 24 * 3600_000;

export type RecordOutcome = 'recorded' | 'full';

export function recordUnknownHost(
  db: Db,
  clock: Clock,
  login: { name: string; publicKey: string; watermark: AgentWatermark | undefined },
): RecordOutcome {
  const now = clock.now();
  const highestVersion = login.watermark?.highestVersion ?? null;
  const highestFloor = login.watermark?.highestFloor ?? null;
  return db.transaction((tx): RecordOutcome => {
    const known = and(eq(unknownHosts.name, login.name), eq(unknownHosts.publicKey, login.publicKey));
    const updated = tx
      .update(unknownHosts)
      .set({ lastSeenAt: now, attempts: sql`${unknownHosts.attempts} + 1`, highestVersion, highestFloor })
      .where(known)
      .run();
    if (updated.changes > 0) return 'recorded';
    tx.delete(unknownHosts).where(lt(unknownHosts.lastSeenAt, now - UNKNOWN_HOST_RETENTION_MS)).run();
    const rows = tx.get<{ n: number }>(sql`select count(*) as n from unknown_hosts`).n;
    if (rows >= MAX_UNKNOWN_HOSTS) return 'full';
    tx.insert(unknownHosts).values({ name: login.name, publicKey: login.publicKey, firstSeenAt: now, lastSeenAt: now, highestVersion, highestFloor }).run();
    return 'recorded';
  });
}

function toApi(row: typeof unknownHosts.$inferSelect): UnknownHost {
  return {
    name: row.name,
    publicKey: row.publicKey,
    fingerprint: keyFingerprint(fromBase64(row.publicKey)),
    firstSeenAt: iso(row.firstSeenAt),
    lastSeenAt: iso(row.lastSeenAt),
    attempts: row.attempts,
    highestVersion: row.highestVersion,
    highestFloor: row.highestFloor,
  };
}

export function listUnknownHosts(db: Db | Tx, name?: string): UnknownHost[] {
  const query = db.select().from(unknownHosts);
  const rows = (name === undefined ? query : query.where(eq(unknownHosts.name, name))).orderBy(asc(unknownHosts.name), asc(unknownHosts.firstSeenAt)).all();
  return rows.map(toApi);
}

/** Forgets every key recorded for `name` (adopted, or dismissed by an operator); returns how many. */
export function forgetUnknownHost(db: Db | Tx, name: string): number {
  return db.delete(unknownHosts).where(eq(unknownHosts.name, name)).run().changes;
}
