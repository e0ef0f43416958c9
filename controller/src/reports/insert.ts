import { chunkedWrite, placeholderRow, rowIndexes } from '../db/chunked.js';
import type { Store } from '../db/store.js';
import type { HostReport } from '../rollouts/report.js';

/** Identifies one report: each (host, seq) is stored once. */
export function reportKey(host: string, seq: number): string {
  return `${host}\u0000${seq}`;
}

const FIELDS = ['host', 'seq', 'receivedAt', 'body'] as const;

const insertChunks = chunkedWrite<HostReport & { now: number }>(
  'reports_insert',
  (q, { reports }, size) =>
    q
      .insert(reports)
      .values(rowIndexes(size).map((i) => placeholderRow(FIELDS, i)))
      .onConflictDoNothing()
      .returning({ host: reports.host, seq: reports.seq }),
  ({ host, report, now }, i, params) => {
    params[`host${i}`] = host;
    params[`seq${i}`] = report.seq;
    params[`receivedAt${i}`] = now;
    params[`body${i}`] = report;
  },
);

/**
 * Inserts reports not stored yet, a few statements for any number (db/chunked.ts), and returns
 * the keys (reportKey) of those it stored: a (host, seq) already there (a batch sent again) is
 * left as it was, and not returned. The keys must be distinct.
 */
export async function insertReports(store: Store, now: number, reports: readonly HostReport[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  const results = await insertChunks(store, reports.map((r) => ({ ...r, now })));
  for (const rows of results as Array<Array<{ host: string; seq: number }>>) {
    for (const { host, seq } of rows) inserted.add(reportKey(host, seq));
  }
  return inserted;
}
