import { eq, sql } from 'drizzle-orm';
import type { Report } from '../../../shared/src/protocol.js';
import type { Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { prepared } from '../db/prepared.js';
import { hosts, reports } from '../db/schema.js';
import { appendEvent } from '../events.js';

export interface StoreOutcome {
  ackedSeqs: number[];
  stored: number;
  /** Rollouts whose hosts these reports moved; to be advanced after commit. */
  rollouts: string[];
}

/** Sees each newly stored report inside the storing transaction (the rollout engine counts results here, exactly once). */
export type ReportObserver = (tx: Tx, host: string, report: Report) => string | null;

const FAILURE_PHASES = new Set(['refused', 'rolled-back', 'failed']);
const SUCCESS_PHASES = new Set(['healthy', 'pending-reboot', 'dry-activated', 'reconciled']);

function errorOf(report: Report): string {
  const { detail } = report;
  if (detail.reason) return detail.reason;
  if (detail.refusal) return `refused: ${detail.refusal}`;
  if (detail.failure) return `${detail.failure.command} failed (exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'})`;
  return report.phase;
}

/**
 * The statements every report runs, prepared once on the database handle (building a drizzle query
 * costs about as much as running it several times over). Prepared on `db`, they run inside whatever
 * transaction is open on that connection.
 */
function statements(db: Db) {
  return {
    insert: prepared(db, 'reports.insert', () =>
      db
        .insert(reports)
        .values({ host: sql.placeholder('host'), seq: sql.placeholder('seq'), receivedAt: sql.placeholder('receivedAt'), body: sql.placeholder('body') })
        .onConflictDoNothing()
        .prepare(),
    ),
    hostStatus: prepared(db, 'reports.hostStatus', () =>
      db
        .select({ lastReportSeq: hosts.lastReportSeq, lastError: hosts.lastError })
        .from(hosts)
        .where(eq(hosts.name, sql.placeholder('host')))
        .prepare(),
    ),
    updateHost: prepared(db, 'reports.updateHost', () =>
      db
        .update(hosts)
        .set({
          lastReportSeq: sql`${sql.placeholder('seq')}`,
          phase: sql`${sql.placeholder('phase')}`,
          reportedVersion: sql`${sql.placeholder('reportedVersion')}`,
          lastError: sql`${sql.placeholder('lastError')}`,
          lastSeenAt: sql`${sql.placeholder('now')}`,
          // A report that does not know the running system leaves the recorded one alone.
          currentSystem: sql`coalesce(${sql.placeholder('currentSystem')}, ${hosts.currentSystem})`,
        })
        .where(eq(hosts.name, sql.placeholder('host')))
        .prepare(),
    ),
  };
}

/**
 * Stores a batch in one transaction. Each (host, seq) is stored once: a batch the agent resends
 * because our answer was lost is acknowledged again but neither stored nor logged twice. The host's
 * status follows the highest seq, so a late, older report cannot roll the status back.
 */
export function storeReports(
  db: Db,
  clock: Clock,
  host: string,
  batch: readonly Report[],
  observer?: ReportObserver,
): StoreOutcome {
  const now = clock.now();
  const run = statements(db);
  return db.transaction((tx) => {
    let stored = 0;
    const touched = new Set<string>();
    let newest: Report | null = null;
    for (const report of [...batch].sort((a, b) => a.seq - b.seq)) {
      const inserted = run.insert.run({ host, seq: report.seq, receivedAt: now, body: report });
      if (inserted.changes === 0) continue;
      stored += 1;
      newest = report;
      const rolloutId = observer?.(tx, host, report);
      if (rolloutId) touched.add(rolloutId);
      // On `db`, not `tx`: statements are cached per handle, and a tx handle lives for one batch only.
      appendEvent(db, {
        host,
        at: now,
        kind: 'report',
        actor: `agent:${host}`,
        data: { seq: report.seq, phase: report.phase, manifestVersion: report.manifestVersion, storePath: report.storePath, currentSystem: report.currentSystem, reportedAt: report.at, detail: report.detail },
      });
    }
    const row = run.hostStatus.get({ host });
    if (!row) throw new Error(`storeReports: host ${host} vanished inside its own session`);
    if (newest && newest.seq > (row.lastReportSeq ?? 0)) {
      let lastError = row.lastError;
      if (FAILURE_PHASES.has(newest.phase)) lastError = errorOf(newest);
      else if (SUCCESS_PHASES.has(newest.phase)) lastError = null;
      run.updateHost.run({
        host,
        seq: newest.seq,
        phase: newest.phase,
        reportedVersion: newest.manifestVersion,
        lastError,
        now,
        currentSystem: newest.currentSystem,
      });
    }
    return { ackedSeqs: batch.map((report) => report.seq), stored, rollouts: [...touched] };
  });
}
