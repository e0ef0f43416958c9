import { asc, desc, eq, inArray } from 'drizzle-orm';
import type { HostEvent, EventKind } from '../../../shared/src/operator-api.js';
import { ACTIVE_ROLLOUT_STATES, type RolloutStatus } from '../../../shared/src/rollout-api.js';
import { iso } from '../clock.js';
import type { Store } from '../db/store.js';
import { rolloutStatus } from '../rollouts/status.js';

/** The newest `limit` events of a host, newest first. */
export async function recentHostEvents(store: Store, host: string, limit = 150): Promise<HostEvent[]> {
  const { events } = store.t;
  const rows = await store.q.select().from(events).where(eq(events.host, host)).orderBy(desc(events.id)).limit(limit);
  return rows.map((row) => ({ id: row.id, host, rolloutId: row.rolloutId, at: iso(row.at), kind: row.kind as EventKind, actor: row.actor, data: row.data }));
}

export interface Generation {
  version: number;
  storePath: string;
  action: string;
  rolloutId: string | null;
  issuedAt: string;
}

/** Every manifest the host was given, newest first: its generations as the controller asked for them. */
export async function hostGenerations(store: Store, host: string, limit = 50): Promise<Generation[]> {
  const { manifests } = store.t;
  const rows = await store.q
    .select({ version: manifests.version, storePath: manifests.storePath, action: manifests.action, rolloutId: manifests.rolloutId, issuedAt: manifests.issuedAt })
    .from(manifests)
    .where(eq(manifests.host, host))
    .orderBy(desc(manifests.version))
    .limit(limit);
  return rows.map((row) => ({ ...row, issuedAt: iso(row.issuedAt) }));
}

export { latestFailure, type FailureReport } from '../reports/latest-failure.js';

export interface EventSubject {
  rolloutId: string | null;
  host: string | null;
}

/** The rollout and host of each event id: what a webhook delivery was about (deliveries keep only the event id). */
export async function eventSubjects(store: Store, ids: number[]): Promise<Map<number, EventSubject>> {
  if (ids.length === 0) return new Map();
  const { events } = store.t;
  const rows = await store.q.select({ id: events.id, rolloutId: events.rolloutId, host: events.host }).from(events).where(inArray(events.id, ids));
  return new Map(rows.map((row) => [row.id, { rolloutId: row.rolloutId, host: row.host }]));
}

/** Every rollout that still owns its hosts (running, waiting for approval, paused, rolling back), oldest first: the fleet page's strip. */
export async function activeRollouts(store: Store, now: number): Promise<RolloutStatus[]> {
  const { rollouts } = store.t;
  const rows = await store.q.select({ id: rollouts.id }).from(rollouts).where(inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])).orderBy(asc(rollouts.createdAt));
  const statuses: RolloutStatus[] = [];
  for (const row of rows) {
    const status = await rolloutStatus(store, row.id, now);
    if (status) statuses.push(status);
  }
  return statuses;
}
