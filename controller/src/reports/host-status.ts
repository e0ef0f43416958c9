import { and, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import type { Store } from '../db/store.js';

/*
 * The status columns of hosts that reports set, written for a whole report group at once (a
 * statement per chunk of hosts, not a read and a write per batch), in the storing transaction.
 */

interface Update {
  host: string;
  newest: Report;
  lastError: string | null | undefined;
}

/** Hosts per statement: a few parameters each, far below either engine's limit. */
const HOSTS_PER_STATEMENT = 500;

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

/**
 * Sets each host's status from its report in `newest` (host name to its newest report of the
 * group) where that is newer than the report the status came from (last_report_seq), so a late,
 * older report cannot roll it back: checked in the statement, no read before it. The newest
 * report of a group is always a new one (one stored before has a seq at or below
 * last_report_seq). Sets `lastSeenAt` to `now` too.
 */
export async function writeHostStatus(store: Store, now: number, newest: ReadonlyMap<string, Report>): Promise<void> {
  const { hosts } = store.t;
  const updates = [...newest].map(([host, report]) => ({ host, newest: report, lastError: lastErrorAfter(report) }));
  for (let i = 0; i < updates.length; i += HOSTS_PER_STATEMENT) {
    const chunk = updates.slice(i, i + HOSTS_PER_STATEMENT);
    // Each host its own value: a `case` on the name, typed (PostgreSQL cannot infer a parameter's type there).
    const typed = (type: 'bigint' | 'text', value: unknown): SQL => sql`cast(${value} as ${sql.raw(type)})`;
    const byHost = (value: (u: Update) => SQL): SQL =>
      chunk.length === 1 ? value(chunk[0]!) : sql`case ${hosts.name} ${sql.join(chunk.map((u) => sql`when ${u.host} then ${value(u)}`), sql` `)} end`;
    await store.q
      .update(hosts)
      .set({
        lastReportSeq: byHost((u) => typed('bigint', u.newest.seq)),
        phase: byHost((u) => typed('text', u.newest.phase)),
        reportedVersion: byHost((u) => typed('bigint', u.newest.manifestVersion)),
        lastError: byHost((u) => (u.lastError === undefined ? sql`${hosts.lastError}` : typed('text', u.lastError))),
        lastSeenAt: now,
        // A report that does not know the running system leaves the recorded one alone.
        currentSystem: sql`coalesce(${byHost((u) => typed('text', u.newest.currentSystem))}, ${hosts.currentSystem})`,
      })
      .where(and(inArray(hosts.name, chunk.map((u) => u.host)), lt(sql`coalesce(${hosts.lastReportSeq}, 0)`, byHost((u) => typed('bigint', u.newest.seq)))));
  }
}
