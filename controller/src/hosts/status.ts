import { and, asc, eq } from 'drizzle-orm';
import type { HostStatus } from '../../../shared/src/operator-api.js';
import { isoOrNull } from '../clock.js';
import type { HostRow, ManifestRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { toSummary } from '../manifests/issue.js';
import { hostDrift } from './drift.js';
import { latestFailure } from '../reports/latest-failure.js';
import type { Presence } from './presence.js';

async function toStatus(store: Store, host: HostRow, desired: ManifestRow | null, presence: Presence): Promise<HostStatus> {
  return {
    name: host.name,
    tags: host.tags,
    enrolledAt: isoOrNull(host.enrolledAt),
    lastSeenAt: isoOrNull(presence.lastSeen(host.name, host.lastSeenAt)),
    connection: presence.mode(host.name),
    desired: desired ? toSummary(desired) : null,
    currentSystem: host.currentSystem,
    phase: host.phase,
    reportedVersion: host.reportedVersion,
    lastError: host.lastError,
    drift: await hostDrift(store, { ...host, desired }),
    // Only a host whose newest result is a failure has one to show (the report scan is skipped for the rest).
    failure: host.lastError === null ? null : await latestFailure(store, host.name, null),
    agentVersion: host.agentVersion,
    paused: host.paused,
  };
}

function query(store: Store) {
  const { hosts, manifests } = store.t;
  return store.q
    .select()
    .from(hosts)
    .leftJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)));
}

export async function listHostStatuses(store: Store, presence: Presence): Promise<HostStatus[]> {
  const rows = await query(store).orderBy(asc(store.t.hosts.name));
  const statuses: HostStatus[] = [];
  for (const row of rows) statuses.push(await toStatus(store, row.hosts, row.manifests, presence));
  return statuses;
}

export async function hostStatus(store: Store, presence: Presence, name: string): Promise<HostStatus | null> {
  const [row] = await query(store).where(eq(store.t.hosts.name, name)).limit(1);
  return row ? toStatus(store, row.hosts, row.manifests, presence) : null;
}
