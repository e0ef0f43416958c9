import { and, desc, eq, gt, min } from 'drizzle-orm';
import type { HostFailure } from '../../../shared/src/operator-api.js';
import { diagnoseFailure } from '../../../shared/src/nix-failure.js';
import type { CommandFailure, Phase } from '../../../shared/src/protocol.js';
import { phaseIn, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import { iso } from '../clock.js';
import { chunkedStatement, rowKeysIn, shared } from '../db/chunked.js';
import type { Store } from '../db/store.js';

export type FailureReport = HostFailure;

/**
 * The host's latest failed report about `version` (any version when null), with the failing
 * command, its output tail and the classifier's plain-words diagnosis. The CLI, the API and the
 * dashboard all show this one.
 */
export async function latestFailure(store: Store, host: string, version: number | null): Promise<FailureReport | null> {
  const { events } = store.t;
  const rows = await store.q
    .select({ at: events.at, data: events.data })
    .from(events)
    .where(and(eq(events.host, host), eq(events.kind, 'report')))
    .orderBy(desc(events.id))
    .limit(50);
  for (const row of rows) {
    const failure = failureIn(row, version);
    if (failure) return failure;
  }
  return null;
}

/**
 * latestFailure for many failed members of rollout `rolloutId` at once, each about the version the
 * rollout issued it: one statement per chunk of hosts (db/chunked.ts) instead of one per member.
 * Only reports since the rollout began are read: a report about a version it issued cannot be
 * older. A rollout status of 10,000 failed hosts read each host's reports with a query of its own,
 * and held the event loop for over a second each time the CLI, the API or a watching dashboard
 * asked (bench/README.md).
 */
export async function rolloutFailures(store: Store, rolloutId: string, members: ReadonlyArray<{ host: string; version: number }>): Promise<Map<string, FailureReport>> {
  const found = new Map<string, FailureReport>();
  if (members.length === 0) return found;
  const { events } = store.t;
  // The rollout's first event; when retention has pruned it (audit events kept for less time than
  // reports), every report of these hosts is read instead.
  const [started] = await store.q
    .select({ id: min(events.id) })
    .from(events)
    .where(and(eq(events.rolloutId, rolloutId), eq(events.kind, 'rollout-started')));
  const after = started?.id ?? 0;
  const wanted = new Map(members.map((member) => [member.host, member.version]));
  // Newest first: each host's first failure about its version is its latest.
  for (const row of await selectReportsSince(store, [...wanted.keys()].map((host) => ({ host, after })))) {
    if (found.has(row.host)) continue;
    const failure = failureIn(row, wanted.get(row.host)!);
    if (failure) found.set(row.host, failure);
  }
  return found;
}

const selectReportsSince = chunkedStatement<{ host: string; after: number }, { host: string; at: number; data: unknown }>(
  'events_reports_since',
  (q, { events }, size) => {
    const returns = { host: events.host, at: events.at, data: events.data };
    const query = q
      .select(returns)
      .from(events)
      .where(and(rowKeysIn(events.host, 'host', size), eq(events.kind, 'report'), gt(events.id, shared('after'))))
      .orderBy(desc(events.id));
    return { query, returns };
  },
);

/** The failure a report event tells of, when it is a trouble phase about `version` (any version when null). */
function failureIn(row: { at: number; data: unknown }, version: number | null): FailureReport | null {
  const data = row.data as { phase?: string; manifestVersion?: number | null; detail?: { reason?: string; failure?: CommandFailure } };
  if (!data.phase || !phaseIn(TROUBLE_PHASES, data.phase)) return null;
  if (version !== null && data.manifestVersion !== version) return null;
  const failure = data.detail?.failure ?? null;
  return {
    at: iso(row.at),
    phase: data.phase,
    version: data.manifestVersion ?? null,
    reason: data.detail?.reason ?? null,
    failure,
    diagnosis: failure ? diagnoseFailure(failure) : null,
  };
}
