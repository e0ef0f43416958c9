import { and, eq, inArray, isNotNull, lt, ne, sql } from 'drizzle-orm';
import { chunkedStatement, rowValues, shared } from '../db/chunked.js';
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
  /**
   * Hosts this replica holds, and how: their rows are written where they say otherwise (on a
   * heartbeat all of them, so a claim another replica wrote over or cleared is set right again).
   */
  held: Map<string, HeldMode>;
  /** Hosts this replica no longer holds: its claims on them are dropped. */
  released: string[];
  /** Refresh this replica's heartbeat row (and forget long-dead replicas). */
  heartbeat: boolean;
  /** Drop every claim an earlier process with this replica id left behind (its first write). */
  forgetEarlier: boolean;
}

/**
 * Claims on held hosts, a statement prepared once per size (db/chunked.ts): a heartbeat states
 * every held host's claim again, and a `case` over 500 names built by drizzle for each chunk was
 * most of the heartbeat's cost on both sides. Rows that already say so are left alone: a heartbeat
 * rewrites nothing while the claims stand.
 */
const writeHeld = chunkedStatement<{ host: string; mode: HeldMode; me: string }>('hosts_claims', (q, { hosts }, size) => {
  const v = rowValues({ host: 'text', mode: 'text' }, size);
  const me = shared('me');
  const differs = sql`not (coalesce(${hosts.connectedReplica}, '') = ${me} and coalesce(${hosts.connectionMode}, '') = ${v.of.mode})`;
  return q
    .update(hosts)
    .set({ connectedReplica: sql`${me}`, connectionMode: v.of.mode })
    .from(v.from)
    .where(and(v.joins(hosts.name, 'host'), differs));
});

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
  await writeHeld(store, [...write.held].map(([host, mode]) => ({ host, mode, me })));
  const { released } = write;
  for (let i = 0; i < released.length; i += CHUNK) {
    // Only this replica's own claim: the host may already be held by another replica.
    await tx
      .update(hosts)
      .set({ connectedReplica: null, connectionMode: null })
      .where(and(inArray(hosts.name, released.slice(i, i + CHUNK)), eq(hosts.connectedReplica, me)));
  }
}

/** Every host another replica claims while that replica has a heartbeat row (freshness is judged when asked). */
export async function readOtherClaims(store: Store): Promise<Map<string, RemoteClaim>> {
  const { hosts, replicaHeartbeats } = store.t;
  const rows = await store.db
    .select({ name: hosts.name, mode: hosts.connectionMode, seenAt: replicaHeartbeats.seenAt })
    .from(hosts)
    .innerJoin(replicaHeartbeats, eq(replicaHeartbeats.replicaId, hosts.connectedReplica))
    .where(and(isNotNull(hosts.connectedReplica), ne(hosts.connectedReplica, store.replicaId)));
  const claims = new Map<string, RemoteClaim>();
  for (const row of rows) {
    if (row.mode !== null) claims.set(row.name, { mode: row.mode, replicaSeenAt: row.seenAt });
  }
  return claims;
}

/** A replica shutting down: the others see its hosts offline at once rather than after STALE_AFTER_MS. */
export async function dropHeartbeat(store: Store): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.delete(store.t.replicaHeartbeats).where(eq(store.t.replicaHeartbeats.replicaId, store.replicaId));
  });
}
