import type { Store } from '../db/store.js';
import type { HostReport } from '../rollouts/report.js';

/** Reports per insert: four parameters each, far below either engine's limit. */
const ROWS_PER_STATEMENT = 500;

/** Identifies one report: each (host, seq) is stored once. */
export function reportKey(host: string, seq: number): string {
  return `${host}\u0000${seq}`;
}

/**
 * Inserts reports not stored yet, a statement per chunk, and returns the keys (reportKey) of those
 * it stored: a (host, seq) already there (a batch sent again) is left as it was, and not returned.
 * The keys must be distinct and the hosts must exist.
 */
export async function insertReports(store: Store, now: number, reports: readonly HostReport[]): Promise<Set<string>> {
  const { reports: table } = store.t;
  const inserted = new Set<string>();
  for (let i = 0; i < reports.length; i += ROWS_PER_STATEMENT) {
    const rows = await store.q
      .insert(table)
      .values(reports.slice(i, i + ROWS_PER_STATEMENT).map(({ host, report }) => ({ host, seq: report.seq, receivedAt: now, body: report })))
      .onConflictDoNothing()
      .returning({ host: table.host, seq: table.seq });
    for (const { host, seq } of rows) inserted.add(reportKey(host, seq));
  }
  return inserted;
}
