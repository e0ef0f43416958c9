import { and, lt, sql, type SQL } from 'drizzle-orm';
import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import { byRowKey, chunkedWrite, rowKeysIn } from '../db/chunked.js';
import type { Store } from '../db/store.js';

/*
 * The status columns of hosts that reports set, written for a whole report group at once (a few
 * statements, not a read and a write per batch), in the storing transaction.
 */

interface Update {
  host: string;
  newest: Report;
  lastError: string | null | undefined;
}

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

const writeChunks = chunkedWrite<Update & { now: number }>(
  'reports_host_status',
  (q, { hosts }, size) => {
    const p = (field: string, i: number) => sql.placeholder(`${field}${i}`);
    // Each host its own value: a `case` on the name, typed (PostgreSQL cannot infer a parameter's type there).
    const byHost = (value: (i: number) => SQL): SQL => byRowKey(hosts.name, 'host', size, value);
    const typed = (field: string, type: 'bigint' | 'text') => (i: number) => sql`cast(${p(field, i)} as ${sql.raw(type)})`;
    return q
      .update(hosts)
      .set({
        lastReportSeq: byHost(typed('seq', 'bigint')),
        phase: byHost(typed('phase', 'text')),
        reportedVersion: byHost(typed('version', 'bigint')),
        lastError: byHost((i) => sql`case when cast(${p('keepError', i)} as bigint) = 1 then ${hosts.lastError} else cast(${p('lastError', i)} as text) end`),
        lastSeenAt: sql`${sql.placeholder('now')}`,
        // A report that does not know the running system leaves the recorded one alone.
        currentSystem: sql`coalesce(${byHost(typed('currentSystem', 'text'))}, ${hosts.currentSystem})`,
      })
      .where(and(rowKeysIn(hosts.name, 'host', size), lt(sql`coalesce(${hosts.lastReportSeq}, 0)`, byHost(typed('seq', 'bigint')))))
      .returning({ host: hosts.name });
  },
  ({ host, newest, lastError, now }, i, params) => {
    params.now = now;
    params[`host${i}`] = host;
    params[`seq${i}`] = newest.seq;
    params[`phase${i}`] = newest.phase;
    params[`version${i}`] = newest.manifestVersion;
    params[`keepError${i}`] = lastError === undefined ? 1 : 0;
    params[`lastError${i}`] = lastError ?? null;
    params[`currentSystem${i}`] = newest.currentSystem;
  },
);

/**
 * Sets each host's status from its report in `newest` (host name to its newest report of the
 * group) where that is newer than the report the status came from (last_report_seq), so a late,
 * older report cannot roll it back: checked in the statement, no read before it. The newest
 * report of a group is always a new one (one stored before has a seq at or below
 * last_report_seq). Sets `lastSeenAt` to `now` too, and returns the hosts it wrote (their
 * lastSeenAt is then stored). A few statements for any number of hosts (db/chunked.ts).
 */
export async function writeHostStatus(store: Store, now: number, newest: ReadonlyMap<string, Report>): Promise<Set<string>> {
  const results = await writeChunks(store, [...newest].map(([host, report]) => ({ host, newest: report, lastError: lastErrorAfter(report), now })));
  return new Set((results as Array<Array<{ host: string }>>).flatMap((rows) => rows.map(({ host }) => host)));
}
