import { and, asc, count, eq, lt, sql } from 'drizzle-orm';
import { fromBase64, keyFingerprint } from '../../../shared/src/keys.js';
import type { UnknownHost } from '../../../shared/src/operator-api.js';
import type { AgentWatermark } from '../../../shared/src/protocol.js';
import { iso, type Clock } from '../clock.js';
import type { Store, Tables } from '../db/store.js';

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

export async function recordUnknownHost(
  store: Store,
  clock: Clock,
  login: { name: string; publicKey: string; watermark: AgentWatermark | undefined },
): Promise<RecordOutcome> {
  const { unknownHosts } = store.t;
  const now = clock.now();
  const highestVersion = login.watermark?.highestVersion ?? null;
  const highestFloor = login.watermark?.highestFloor ?? null;
  return store.transaction(async (tx): Promise<RecordOutcome> => {
    const known = and(eq(unknownHosts.name, login.name), eq(unknownHosts.publicKey, login.publicKey));
    const updated = await tx
      .update(unknownHosts)
      .set({ lastSeenAt: now, attempts: sql`${unknownHosts.attempts} + 1`, highestVersion, highestFloor })
      .where(known);
    if (store.affected(updated) > 0) return 'recorded';
    await tx.delete(unknownHosts).where(lt(unknownHosts.lastSeenAt, now - UNKNOWN_HOST_RETENTION_MS));
    const [{ rows } = { rows: 0 }] = await tx.select({ rows: count() }).from(unknownHosts);
    if (rows >= MAX_UNKNOWN_HOSTS) return 'full';
    await tx.insert(unknownHosts).values({ name: login.name, publicKey: login.publicKey, firstSeenAt: now, lastSeenAt: now, highestVersion, highestFloor });
    return 'recorded';
  });
}

function toApi(row: Tables['unknownHosts']['$inferSelect']): UnknownHost {
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

export async function listUnknownHosts(store: Store, name?: string): Promise<UnknownHost[]> {
  const { unknownHosts } = store.t;
  const query = store.q.select().from(unknownHosts);
  const rows = await (name === undefined ? query : query.where(eq(unknownHosts.name, name))).orderBy(asc(unknownHosts.name), asc(unknownHosts.firstSeenAt));
  return rows.map(toApi);
}

/** Forgets every key recorded for `name` (adopted, or dismissed by an operator); returns how many. */
export async function forgetUnknownHost(store: Store, name: string): Promise<number> {
  const { unknownHosts } = store.t;
  return store.transaction(async (tx) => store.affected(await tx.delete(unknownHosts).where(eq(unknownHosts.name, name))));
}
