import { and, asc, eq } from 'drizzle-orm';
import type { HostStatus } from '../../../shared/src/operator-api.js';
import type { Phase } from '../../../shared/src/protocol.js';
import { isoOrNull } from '../clock.js';
import type { Db } from '../db/open.js';
import { hosts, manifests, type HostRow, type ManifestRow } from '../db/schema.js';
import { toSummary } from '../manifests/issue.js';
import { hostDrift } from './drift.js';
import { latestFailure } from '../reports/latest-failure.js';
import type { Presence } from './presence.js';

function toStatus(db: Db, host: HostRow, desired: ManifestRow | null, presence: Presence): HostStatus {
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
    drift: hostDrift(db, { ...host, desired }),
    // Only a host whose newest result is a failure has one to show (the report scan is skipped for the rest).
    failure: host.lastError === null ? null : latestFailure(db, host.name, null),
    agentVersion: host.agentVersion,
    paused: host.paused,
  };
}

function query(db: Db) {
  return db
    .select()
    .from(hosts)
    .leftJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)));
}

export function listHostStatuses(db: Db, presence: Presence): HostStatus[] {
  return query(db)
    .orderBy(asc(hosts.name))
    .all()
    .map((row) => toStatus(db, row.hosts, row.manifests, presence));
}

export function hostStatus(db: Db, presence: Presence, name: string): HostStatus | null {
  const row = query(db).where(eq(hosts.name, name)).get();
  return row ? toStatus(db, row.hosts, row.manifests, presence) : null;
}
