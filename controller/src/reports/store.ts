import type { Report } from '../../../shared/src/protocol.js';
import { SETTLED_PHASES, TERMINAL_PHASES, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import type { Logger } from '../../../shared/src/logger.js';
import { runBackground } from '../background.js';
import type { Clock } from '../clock.js';
import { sqliteWriter } from '../db/sqlite-store.js';
import { retryableConflict } from '../db/store-errors.js';
import type { Queryable, Store, Tables } from '../db/store.js';
import { inWriteLane } from '../db/write-lane.js';
import { appendEvent } from '../events.js';
import { releaseRebootLease } from '../hosts/reboot-grants.js';
import { eq, sql } from 'drizzle-orm';
import { perHandle } from '../db/per-handle.js';

export interface StoreOutcome {
  ackedSeqs: number[];
  stored: number;
  /** Rollouts whose hosts these reports moved; to be advanced after commit. */
  rollouts: string[];
}

/**
 * Sees each newly stored report inside the storing transaction (the rollout engine counts results
 * here, exactly once); its queries join that transaction through `store.q`.
 */
export type ReportObserver = (host: string, report: Report) => string | null | Promise<string | null>;

function errorOf(report: Report): string {
  const { detail } = report;
  if (detail.reason) return detail.reason;
  if (detail.refusal) return `refused: ${detail.refusal}`;
  if (detail.failure) return `${detail.failure.command} failed (exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'})`;
  return report.phase;
}

/**
 * The statements every batch runs, built once per transaction handle: building a drizzle query
 * costs far more than SQLite's own work for it (~250 µs against ~10 µs), and the ingest path runs
 * them for every batch. SQLite hands every transaction the same handle, so they are built once per
 * store; PostgreSQL gets a new handle per transaction (once per group), and the names make
 * node-postgres prepare them once per connection.
 */

function build(q: Queryable, { reports, hosts }: Tables) {
  return {
    insert: q
      .insert(reports)
      .values({ host: sql.placeholder('host'), seq: sql.placeholder('seq'), receivedAt: sql.placeholder('receivedAt'), body: sql.placeholder('body') })
      .onConflictDoNothing()
      .prepare('reports_insert'),
    hostStatus: q
      .select({ lastReportSeq: hosts.lastReportSeq, lastError: hosts.lastError })
      .from(hosts)
      .where(eq(hosts.name, sql.placeholder('host')))
      .prepare('reports_host_status'),
    updateHost: q
      .update(hosts)
      .set({
        lastReportSeq: sql`${sql.placeholder('seq')}`,
        phase: sql`${sql.placeholder('phase')}`,
        reportedVersion: sql`${sql.placeholder('version')}`,
        lastError: sql`${sql.placeholder('lastError')}`,
        lastSeenAt: sql`${sql.placeholder('now')}`,
        // A report that does not know the running system leaves the recorded one alone.
        currentSystem: sql`coalesce(${sql.placeholder('currentSystem')}, ${hosts.currentSystem})`,
      })
      .where(eq(hosts.name, sql.placeholder('host')))
      .prepare('reports_update_host'),
  };
}

const statements = perHandle(build);

/**
 * Stores one host's batch inside the transaction open on `store`. Each (host, seq) is stored once:
 * a batch the agent resends because our answer was lost is acknowledged again but neither stored
 * nor logged twice. The host's status follows the highest seq, so a late, older report cannot roll
 * the status back.
 */
async function storeInTransaction(store: Store, now: number, host: string, batch: readonly Report[], observer: ReportObserver | undefined): Promise<StoreOutcome> {
  const run = statements(store);
  let stored = 0;
  const touched = new Set<string>();
  let newest: Report | null = null;
  for (const report of [...batch].sort((a, b) => a.seq - b.seq)) {
    const inserted = await run.insert.execute({ host, seq: report.seq, receivedAt: now, body: report });
    if (store.affected(inserted) === 0) continue;
    stored += 1;
    newest = report;
    // A host that reached the end of a manifest no longer holds the fleet reboot lock for it.
    if (TERMINAL_PHASES.has(report.phase) && report.manifestVersion !== null && (await releaseRebootLease(store, host, report.manifestVersion))) {
      await appendEvent(store, { host, at: now, kind: 'reboot-released', actor: `agent:${host}`, data: { manifestVersion: report.manifestVersion, phase: report.phase } });
    }
    const rolloutId = await observer?.(host, report);
    if (rolloutId) touched.add(rolloutId);
    await appendEvent(store, {
      host,
      at: now,
      kind: 'report',
      actor: `agent:${host}`,
      data: { seq: report.seq, phase: report.phase, manifestVersion: report.manifestVersion, storePath: report.storePath, currentSystem: report.currentSystem, reportedAt: report.at, detail: report.detail },
    });
  }
  const [row] = await run.hostStatus.execute({ host });
  if (!row) throw new Error(`storeReports: host ${host} vanished inside its own session`);
  if (newest && newest.seq > (row.lastReportSeq ?? 0)) {
    let lastError = row.lastError;
    // A degraded host shows why until it recovers.
    if (TROUBLE_PHASES.has(newest.phase)) lastError = errorOf(newest);
    else if (SETTLED_PHASES.has(newest.phase)) lastError = null;
    await run.updateHost.execute({ seq: newest.seq, phase: newest.phase, version: newest.manifestVersion, lastError, now, currentSystem: newest.currentSystem, host });
  }
  return { ackedSeqs: batch.map((report) => report.seq), stored, rollouts: [...touched] };
}

/** Stores one host's batch in a transaction of its own (see `storeInTransaction`). */
export async function storeReports(store: Store, clock: Clock, host: string, batch: readonly Report[], observer?: ReportObserver): Promise<StoreOutcome> {
  const now = clock.now();
  return store.transaction(() => storeInTransaction(store, now, host, batch, observer));
}

/** Whether the transaction around a failed savepoint still stands (SQLite ends it on I/O errors and a full disk). */
function transactionStands(store: Store): boolean {
  return store.engine !== 'sqlite' || sqliteWriter(store).sqlite.inTransaction;
}

interface Pending {
  host: string;
  batch: readonly Report[];
  resolve(outcome: StoreOutcome): void;
  reject(error: unknown): void;
}

type Result = { ok: true; outcome: StoreOutcome } | { ok: false; error: unknown };

export interface ReportWriter {
  /** Resolves once the batch is committed (an ack still means stored); rejects with what failed for this host alone. */
  store(host: string, batch: readonly Report[]): Promise<StoreOutcome>;
}

/**
 * Group commit: the batches of all requests that reach `store` in the same event-loop turn (or
 * within `windowMs`) are stored in one transaction, each host's batch under a savepoint of its own,
 * in arrival order. A commit per request cost more than the statements it committed; shared by
 * a turn's requests it is paid once. A batch that throws (its host deleted meanwhile) rolls back
 * to its savepoint and fails only its own request (on PostgreSQL the savepoint is also what keeps
 * the transaction usable after a failed statement); a serialization conflict (PostgreSQL) is no
 * batch's fault, so it re-runs the whole group, as a conflict does any transaction. Should the group transaction itself fail,
 * every batch of the group is retried in a transaction of its own, so one cannot fail another.
 */
export function reportWriter(store: Store, clock: Clock, logger: Logger, observer?: ReportObserver, options: { windowMs?: number } = {}): ReportWriter {
  const windowMs = options.windowMs ?? 0;
  let queue: Pending[] = [];
  let scheduled = false;

  const storeAlone = async (entry: Pending): Promise<void> => {
    try {
      entry.resolve(await storeReports(store, clock, entry.host, entry.batch, observer));
    } catch (error) {
      entry.reject(error);
    }
  };

  const storeGroup = async (group: Pending[]): Promise<void> => {
    const now = clock.now();
    let results: Result[];
    try {
      results = await store.transaction(async (tx) => {
        // Built afresh by every run of the body (PostgreSQL runs it again after a conflict).
        const done: Result[] = [];
        for (const entry of group) {
          try {
            done.push({ ok: true, outcome: await tx.transaction(() => storeInTransaction(store, now, entry.host, entry.batch, observer)) });
          } catch (error) {
            // Then nothing of the group stands: the fallback below stores each batch on its own.
            // A serialization conflict (PostgreSQL) is not this batch's failure: the whole group runs again.
            if (!transactionStands(store) || retryableConflict(error)) throw error;
            done.push({ ok: false, error });
          }
        }
        return done;
      });
    } catch {
      for (const entry of group) await storeAlone(entry);
      return;
    }
    group.forEach((entry, i) => {
      const result = results[i]!;
      if (result.ok) entry.resolve(result.outcome);
      else entry.reject(result.error);
    });
  };

  // PostgreSQL: at most one group is being stored at a time; what arrives meanwhile waits for it
  // and then goes as the next group. Two groups of one replica in flight at once conflicted with
  // each other (SERIALIZABLE) for nothing. SQLite keeps forming the next group while one commits:
  // its writer lock runs them one after the other anyway, and the scale benchmark ingested faster so.
  const oneAtATime = store.engine === 'postgres';
  let storing = false;

  const schedule = (delayMs: number): void => {
    if (scheduled || (storing && oneAtATime)) return;
    scheduled = true;
    if (delayMs > 0) setTimeout(flush, delayMs);
    else setImmediate(flush);
  };

  // No request awaits the timer itself: what escapes the group's own handling fails the group's
  // requests and is logged, instead of ending the process and leaving those requests unanswered.
  const flush = (): void =>
    runBackground(logger, 'report store flush', async () => {
      scheduled = false;
      const group = queue;
      queue = [];
      storing = true;
      try {
        await inWriteLane(store, async () => {
          if (group.length === 1) await storeAlone(group[0]!);
          else await storeGroup(group);
        });
      } catch (error) {
        for (const entry of group) entry.reject(error);
        throw error;
      } finally {
        storing = false;
        // Those waited a whole group already: no window on top.
        if (oneAtATime && queue.length > 0) schedule(0);
      }
    });

  return {
    store(host, batch) {
      return new Promise<StoreOutcome>((resolve, reject) => {
        queue.push({ host, batch, resolve, reject });
        schedule(windowMs);
      });
    },
  };
}
