import { chunkedStatement, placeholderRow, rowIndexes } from '../db/chunked.js';
import type { Store } from '../db/store.js';
import type { HostReport } from '../rollouts/report.js';

/** Identifies one report: each (host, seq) is stored once. */
export function reportKey(host: string, seq: number): string {
  return `${host}\u0000${seq}`;
}

const FIELDS = ['host', 'seq', 'receivedAt', 'body'] as const;

const insertChunks = chunkedStatement<Record<(typeof FIELDS)[number], unknown>, { host: string; seq: number }>('reports_insert', (q, { reports }, size) => {
  const returns = { host: reports.host, seq: reports.seq };
  return {
    query: q
      .insert(reports)
      .values(rowIndexes(size).map((i) => placeholderRow(FIELDS, i)))
      .onConflictDoNothing()
      .returning(returns),
    returns,
  };
});

/**
 * Inserts reports not stored yet, a few statements for any number (db/chunked.ts), and returns
 * the keys (reportKey) of those it stored: a (host, seq) already there (a batch sent again) is
 * left as it was, and not returned. The keys must be distinct.
 */
export async function insertReports(store: Store, now: number, reports: readonly HostReport[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  const rows = reports.map(({ host, report }) => ({ host, seq: report.seq, receivedAt: now, body: report }));
  for (const { host, seq } of await insertChunks(store, rows)) inserted.add(reportKey(host, seq));
  return inserted;
}
