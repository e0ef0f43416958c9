import { inArray, sql, type SQL } from 'drizzle-orm';
import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import type { Store } from '../db/store.js';

/*
 * The status columns of hosts that reports set, read and written for a whole report group at once
 * (a statement per chunk of hosts, not two per batch), in the storing transaction.
 */

/** Hosts per statement: a few parameters each, far below either engine's limit. */
const HOSTS_PER_STATEMENT = 500;

export interface HostStatus {
  lastReportSeq: number | null;
  lastError: string | null;
}

/** The status of each of `names` that exists; a host missing from the answer was removed. */
export async function readHostStatus(store: Store, names: readonly string[]): Promise<Map<string, HostStatus>> {
  const { hosts } = store.t;
  const found = new Map<string, HostStatus>();
  for (let i = 0; i < names.length; i += HOSTS_PER_STATEMENT) {
    const rows = await store.q
      .select({ name: hosts.name, lastReportSeq: hosts.lastReportSeq, lastError: hosts.lastError })
      .from(hosts)
      .where(inArray(hosts.name, names.slice(i, i + HOSTS_PER_STATEMENT)));
    for (const { name, ...status } of rows) found.set(name, status);
  }
  return found;
}

function errorOf(report: Report): string {
  const { detail } = report;
  if (detail.reason) return detail.reason;
  if (detail.refusal) return `refused: ${detail.refusal}`;
  if (detail.failure) return `${detail.failure.command} failed (exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'})`;
  return report.phase;
}

/** What the host's newest report makes of its last error: a degraded host shows why until it recovers. */
export function lastErrorAfter(status: HostStatus, newest: Report): string | null {
  if (TROUBLE_PHASES.has(newest.phase)) return errorOf(newest);
  if (SETTLED_PHASES.has(newest.phase)) return null;
  return status.lastError;
}

export interface StatusUpdate {
  host: string;
  /** The newest report stored for the host, above the seq its status came from. */
  newest: Report;
  lastError: string | null;
}

/** Sets each host's status from its newest report; `lastSeenAt` to `now`. */
export async function writeHostStatus(store: Store, now: number, updates: readonly StatusUpdate[]): Promise<void> {
  const { hosts } = store.t;
  for (let i = 0; i < updates.length; i += HOSTS_PER_STATEMENT) {
    const chunk = updates.slice(i, i + HOSTS_PER_STATEMENT);
    // Each host its own value: a `case` on the name, typed (PostgreSQL cannot infer a parameter's type there).
    const byHost = (type: 'bigint' | 'text', value: (u: StatusUpdate) => unknown): SQL =>
      chunk.length === 1
        ? sql`cast(${value(chunk[0]!)} as ${sql.raw(type)})`
        : sql`case ${hosts.name} ${sql.join(
            chunk.map((u) => sql`when ${u.host} then cast(${value(u)} as ${sql.raw(type)})`),
            sql` `,
          )} end`;
    await store.q
      .update(hosts)
      .set({
        lastReportSeq: byHost('bigint', (u) => u.newest.seq),
        phase: byHost('text', (u) => u.newest.phase),
        reportedVersion: byHost('bigint', (u) => u.newest.manifestVersion),
        lastError: byHost('text', (u) => u.lastError),
        lastSeenAt: now,
        // A report that does not know the running system leaves the recorded one alone.
        currentSystem: sql`coalesce(${byHost('text', (u) => u.newest.currentSystem)}, ${hosts.currentSystem})`,
      })
      .where(inArray(hosts.name, chunk.map((u) => u.host)));
  }
}
