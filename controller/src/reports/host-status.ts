import { and, lt, sql } from 'drizzle-orm';
import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import { chunkedStatement, rowValues, shared } from '../db/chunked.js';
import type { Store } from '../db/store.js';

/*
 * The status columns of hosts that reports set, written for a whole report group at once (a few
 * statements, not a read and a write per batch), in the storing transaction.
 */

function errorOf(report: Report): string {
  const { detail } = report;
  if (detail.reason) return detail.reason;
  if (detail.refusal) return `refused: ${detail.refusal}`;
  if (detail.failure) return `${detail.failure.command} failed (exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'})`;
  return report.phase;
}

/**
 * What the host's newest report makes of its last error: a degraded host shows why until it
 * recovers. `undefined`: it stays as it is.
 */
function lastErrorAfter(newest: Report): string | null | undefined {
  if (TROUBLE_PHASES.has(newest.phase)) return errorOf(newest);
  if (SETTLED_PHASES.has(newest.phase)) return null;
  return undefined;
}

const VALUE_TYPES = { host: 'text', seq: 'bigint', phase: 'text', version: 'bigint', keepError: 'bigint', lastError: 'text', currentSystem: 'text' } as const;

type StatusRow = { [Field in keyof typeof VALUE_TYPES]: unknown } & { now: number };

const writeChunks = chunkedStatement<StatusRow, { host: string }>('reports_host_status', (q, { hosts }, size) => {
  // Each host's values joined by name (db/chunked.ts rowValues).
  const values = rowValues(VALUE_TYPES, size);
  const v = values.of;
  const returns = { host: hosts.name };
  return {
    query: q
      .update(hosts)
      .set({
        lastReportSeq: v.seq,
        phase: v.phase,
        reportedVersion: v.version,
        lastError: sql`case when ${v.keepError} = 1 then ${hosts.lastError} else ${v.lastError} end`,
        lastSeenAt: sql`${shared('now')}`,
        // A report that does not know the running system leaves the recorded one alone.
        currentSystem: sql`coalesce(${v.currentSystem}, ${hosts.currentSystem})`,
      })
      .from(values.from)
      .where(and(values.joins(hosts.name, 'host'), lt(sql`coalesce(${hosts.lastReportSeq}, 0)`, v.seq)))
      .returning(returns),
    returns,
  };
});

/**
 * Sets each host's status from its report in `newest` (host name to its newest report of the
 * group) where that is newer than the report the status came from (last_report_seq), so a late,
 * older report cannot roll it back: checked in the statement, no read before it. The newest
 * report of a group is always a new one (one stored before has a seq at or below
 * last_report_seq). Sets `lastSeenAt` to `now` too, and returns the hosts it wrote (their
 * lastSeenAt is then stored). A few statements for any number of hosts (db/chunked.ts).
 */
export async function writeHostStatus(store: Store, now: number, newest: ReadonlyMap<string, Report>): Promise<Set<string>> {
  const rows = [...newest].map(([host, report]): StatusRow => {
    const lastError = lastErrorAfter(report);
    return {
      host,
      seq: report.seq,
      phase: report.phase,
      version: report.manifestVersion,
      keepError: lastError === undefined ? 1 : 0,
      lastError: lastError ?? null,
      currentSystem: report.currentSystem,
      now,
    };
  });
  return new Set((await writeChunks(store, rows)).map(({ host }) => host));
}
