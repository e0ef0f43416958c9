import { and, eq, inArray, isNotNull, lt, ne, sql } from 'drizzle-orm';
import type { Store, StoreTx } from '../db/store.js';

// Presence shared between replicas (issue 16, PostgreSQL only): each replica records in the hosts
// row which hosts it holds (a websocket, a long-poll, recent polls) and how, and refreshes one
// heartbeat row of its own. Another replica believes such a claim while the claiming replica's
// heartbeat is fresh, so the hosts of a replica that died without cleaning up turn offline
// everywhere within STALE_AFTER_MS. Claims are written when a host's mode changes on the replica
// that holds it, never per poll; the heartbeat is one row per replica, not one per host.

/** How often a replica refreshes its heartbeat and reads the other replicas' claims. */
export const HEARTBEAT_MS = 5_000;
/** A replica whose heartbeat is older than this is taken for dead: its hosts count as offline. */
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;
/** Heartbeat rows of replicas gone this long are deleted (their hosts' claims then match no replica). */
const FORGET_REPLICA_MS = 24 * 3600_000;
/** Hosts per UPDATE statement. */
const CHUNK = 500;

export type HeldMode = 'websocket' | 'polling';

/** A host another replica claims, with that replica's last heartbeat. */
export interface RemoteClaim {
  mode: HeldMode;
  replicaSeenAt: number;
}

export interface ClaimWrite {
  /** Per host: how this replica now holds it, or null when it no longer does. */
  changes: Map<string, HeldMode | null>;
  /** Refresh this replica's heartbeat row (and forget long-dead replicas). */
  heartbeat: boolean;
  /** Drop every claim an earlier process with this replica id left behind (its first write). */
  forgetEarlier: boolean;
}

/** Writes this replica's claims inside `tx`. */
export async function writeClaims(tx: StoreTx, store: Store, now: number, write: ClaimWrite): Promise<void> {
  const { hosts, replicaHeartbeats } = store.t;
  const me = store.replicaId;
  if (write.forgetEarlier) {
    await tx.update(hosts).set({ connectedReplica: null, connectionMode: null }).where(eq(hosts.connectedReplica, me));
  }
  if (write.heartbeat) {
    await tx
      .insert(replicaHeartbeats)
      .values({ replicaId: me, seenAt: now })
      .onConflictDoUpdate({ target: replicaHeartbeats.replicaId, set: { seenAt: now } });
    await tx.delete(replicaHeartbeats).where(lt(replicaHeartbeats.seenAt, now - FORGET_REPLICA_MS));
  }
  const held = [...write.changes].filter((change): change is [string, HeldMode] => change[1] !== null);
  const released = [...write.changes].filter(([, mode]) => mode === null).map(([host]) => host);
  for (let i = 0; i < held.length; i += CHUNK) {
    const chunk = held.slice(i, i + CHUNK);
    const modes = sql.join(chunk.map(([host, mode]) => sql`when ${host} then ${mode}`), sql` `);
    await tx
      .update(hosts)
      .set({ connectedReplica: me, connectionMode: sql`case ${hosts.name} ${modes} end` })
      .where(inArray(hosts.name, chunk.map(([host]) => host)));
  }
  for (let i = 0; i < released.length; i += CHUNK) {
    // Only this replica's own claim: the host may already be held by another replica.
    await tx
      .update(hosts)
      .set({ connectedReplica: null, connectionMode: null })
      .where(and(inArray(hosts.name, released.slice(i, i + CHUNK)), eq(hosts.connectedReplica, me)));
  }
}

/** Every host another replica claims, with that replica's heartbeat (null: none recorded, i.e. long gone). */
export async function readOtherClaims(store: Store): Promise<Map<string, RemoteClaim | null>> {
  const { hosts, replicaHeartbeats } = store.t;
  const rows = await store.db
    .select({ name: hosts.name, mode: hosts.connectionMode, seenAt: replicaHeartbeats.seenAt })
    .from(hosts)
    .leftJoin(replicaHeartbeats, eq(replicaHeartbeats.replicaId, hosts.connectedReplica))
    .where(and(isNotNull(hosts.connectedReplica), ne(hosts.connectedReplica, store.replicaId)));
  const claims = new Map<string, RemoteClaim | null>();
  for (const row of rows) {
    claims.set(row.name, row.mode !== null && row.seenAt !== null ? { mode: row.mode, replicaSeenAt: row.seenAt } : null);
  }
  return claims;
}

/** A replica shutting down: the others see its hosts offline at once rather than after STALE_AFTER_MS. */
export async function dropHeartbeat(store: Store): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.delete(store.t.replicaHeartbeats).where(eq(store.t.replicaHeartbeats.replicaId, store.replicaId));
  });
}
