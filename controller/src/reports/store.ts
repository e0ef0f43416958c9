import type Database from 'better-sqlite3';
import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TERMINAL_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import type { Logger } from '../../../shared/src/logger.js';
import { runBackground } from '../background.js';
import type { Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { statement } from '../db/prepared.js';
import { appendEvent } from '../events.js';
import { releaseRebootLease } from '../hosts/reboot-grants.js';

export interface StoreOutcome {
  ackedSeqs: number[];
  stored: number;
  /** Rollouts whose hosts these reports moved; to be advanced after commit. */
  rollouts: string[];
}

/** Sees each newly stored report inside the storing transaction (the rollout engine counts results here, exactly once). */
export type ReportObserver = (tx: Tx, host: string, report: Report) => string | null;


function errorOf(report: Report): string {
  const { detail } = report;
  if (detail.reason) return detail.reason;
  if (detail.refusal) return `refused: ${detail.refusal}`;
  if (detail.failure) return `${detail.failure.command} failed (exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'})`;
  return report.phase;
}

/**
 * The statements every report runs: plain better-sqlite3 statements prepared once per database
 * (drizzle's placeholder filling and row mapping cost more than SQLite's work here). Prepared on
 * `db`, they run inside whatever transaction is open on that connection.
 */
function statements(db: Db) {
  return {
    insert: statement(db, 'insert into reports (host, seq, received_at, body) values (?, ?, ?, ?) on conflict do nothing'),
    hostStatus: statement(db, 'select last_report_seq as lastReportSeq, last_error as lastError from hosts where name = ?'),
    // A report that does not know the running system leaves the recorded one alone.
    updateHost: statement(
      db,
      `update hosts set last_report_seq = ?, phase = ?, reported_version = ?, last_error = ?, last_seen_at = ?,
         current_system = coalesce(?, current_system) where name = ?`,
    ),
  };
}

type Statements = ReturnType<typeof statements>;

/**
 * Stores one host's batch inside the transaction open on `db`'s connection. Each (host, seq) is
 * stored once: a batch the agent resends because our answer was lost is acknowledged again but
 * neither stored nor logged twice. The host's status follows the highest seq, so a late, older
 * report cannot roll the status back.
 */
function storeInTransaction(
  db: Db,
  tx: Tx,
  run: Statements,
  now: number,
  host: string,
  batch: readonly Report[],
  observer: ReportObserver | undefined,
): StoreOutcome {
  let stored = 0;
  const touched = new Set<string>();
  let newest: Report | null = null;
  for (const report of [...batch].sort((a, b) => a.seq - b.seq)) {
    const inserted = run.insert.run(host, report.seq, now, JSON.stringify(report));
    if (inserted.changes === 0) continue;
    stored += 1;
    newest = report;
    // A host that reached the end of a manifest no longer holds the fleet reboot lock for it.
    if (TERMINAL_PHASES.has(report.phase) && report.manifestVersion !== null && releaseRebootLease(db, host, report.manifestVersion)) {
      appendEvent(db, { host, at: now, kind: 'reboot-released', actor: `agent:${host}`, data: { manifestVersion: report.manifestVersion, phase: report.phase } });
    }
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
  const row = run.hostStatus.get(host) as { lastReportSeq: number | null; lastError: string | null } | undefined;
  if (!row) throw new Error(`storeReports: host ${host} vanished inside its own session`);
  if (newest && newest.seq > (row.lastReportSeq ?? 0)) {
    let lastError = row.lastError;
    // A degraded host shows why until it recovers.
    if (TROUBLE_PHASES.has(newest.phase)) lastError = errorOf(newest);
    else if (SETTLED_PHASES.has(newest.phase)) lastError = null;
    run.updateHost.run(newest.seq, newest.phase, newest.manifestVersion, lastError, now, newest.currentSystem, host);
  }
  return { ackedSeqs: batch.map((report) => report.seq), stored, rollouts: [...touched] };
}

/** Stores one host's batch in a transaction of its own (see `storeInTransaction`). */
export function storeReports(
  db: Db,
  clock: Clock,
  host: string,
  batch: readonly Report[],
  observer?: ReportObserver,
): StoreOutcome {
  const now = clock.now();
  const run = statements(db);
  return db.transaction((tx) => storeInTransaction(db, tx, run, now, host, batch, observer));
}

interface Pending {
  host: string;
  batch: readonly Report[];
  resolve(outcome: StoreOutcome): void;
  reject(error: unknown): void;
}

export interface ReportWriter {
  /** Resolves once the batch is committed (an ack still means stored); rejects with what failed for this host alone. */
  store(host: string, batch: readonly Report[]): Promise<StoreOutcome>;
}

/**
 * Group commit: the batches of all requests that reach `store` in the same event-loop turn (or
 * within `windowMs`) are stored in one transaction, each host's batch under a savepoint of its own,
 * in arrival order. A commit per request cost more than the statements it committed; shared by
 * a turn's requests it is paid once. A batch that throws (its host deleted meanwhile) rolls back
 * to its savepoint and fails only its own request. Should the group transaction itself fail, every
 * batch of the group is retried in a transaction of its own, so one cannot fail another.
 */
export function reportWriter(db: Db, clock: Clock, logger: Logger, observer?: ReportObserver, options: { windowMs?: number } = {}): ReportWriter {
  const windowMs = options.windowMs ?? 0;
  const client = (db as Db & { $client?: Database.Database }).$client;
  if (!client || typeof client.transaction !== 'function') throw new Error('reportWriter: the database handle has no better-sqlite3 client');
  let queue: Pending[] = [];
  let scheduled = false;

  const storeGroup = (group: Pending[]): void => {
    const now = clock.now();
    const run = statements(db);
    const results: ({ ok: true; outcome: StoreOutcome } | { ok: false; error: unknown })[] = [];
    try {
      db.transaction((tx) => {
        // Nested inside the open transaction, better-sqlite3 runs this under a savepoint (rolled back and released on a throw).
        const underSavepoint = client.transaction((entry: Pending) => storeInTransaction(db, tx, run, now, entry.host, entry.batch, observer));
        for (const entry of group) {
          try {
            results.push({ ok: true, outcome: underSavepoint(entry) });
          } catch (error) {
            // SQLite may have ended the whole transaction (I/O error, disk full): then nothing of the group stands.
            if (!client.inTransaction) throw error;
            results.push({ ok: false, error });
          }
        }
      });
    } catch {
      for (const entry of group) {
        try {
          entry.resolve(storeReports(db, clock, entry.host, entry.batch, observer));
        } catch (error) {
          entry.reject(error);
        }
      }
      return;
    }
    group.forEach((entry, i) => {
      const result = results[i]!;
      if (result.ok) entry.resolve(result.outcome);
      else entry.reject(result.error);
    });
  };

  const storeAll = (group: Pending[]): void => {
    if (group.length === 1) {
      const [entry] = group;
      try {
        entry!.resolve(storeReports(db, clock, entry!.host, entry!.batch, observer));
      } catch (error) {
        entry!.reject(error);
      }
      return;
    }
    storeGroup(group);
  };

  // No request awaits the timer itself: what escapes the group's own handling (a statement that
  // cannot be prepared) fails the group's requests and is logged, instead of ending the process
  // and leaving those requests unanswered.
  const flush = (): void =>
    runBackground(logger, 'report store flush', () => {
      scheduled = false;
      const group = queue;
      queue = [];
      try {
        storeAll(group);
      } catch (error) {
        for (const entry of group) entry.reject(error);
        throw error;
      }
    });

  return {
    store(host, batch) {
      return new Promise<StoreOutcome>((resolve, reject) => {
        queue.push({ host, batch, resolve, reject });
        if (scheduled) return;
        scheduled = true;
        if (windowMs > 0) setTimeout(flush, windowMs);
        else setImmediate(flush);
      });
    },
  };
}
