import type { Report } from '../../../shared/src/protocol.js';
import { TERMINAL_PHASES } from '../../../shared/src/phases.js';
import type { Logger } from '../../../shared/src/logger.js';
import { runBackground } from '../background.js';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { inWriteLane } from '../db/write-lane.js';
import { appendEvents, type NewEvent } from '../events.js';
import { releaseRebootLeases } from '../hosts/reboot-grants.js';
import type { HostReport, ReportOutcome } from '../rollouts/report.js';
import { writeHostStatus } from './host-status.js';
import { insertReports, reportKey } from './insert.js';

export interface StoreOutcome {
  ackedSeqs: number[];
  stored: number;
  /** Rollouts whose hosts these reports moved; to be advanced after commit. */
  rollouts: string[];
  /** When the host's status was written with these reports, the lastSeenAt stored with it; else null. */
  seenAt: number | null;
}

/**
 * Sees the newly stored reports of a group inside the storing transaction (the rollout engine
 * counts results here, exactly once): each host's in seq order, one outcome per report. Its
 * queries join that transaction through `store.q`; the events it returns are logged with the
 * reports' own.
 */
export type ReportObserver = (reports: readonly HostReport[], now: number) => Promise<readonly ReportOutcome[]>;

interface Batch {
  host: string;
  batch: readonly Report[];
}

/** A report of the group to store: the first copy of its (host, seq), and the batch it came in. */
interface Candidate extends HostReport {
  from: number;
}

/**
 * Stores a group of batches inside the transaction open on `store`, set-based: a statement per
 * step and chunk for the whole group, not several per report (on PostgreSQL each statement is a
 * round trip). Each (host, seq) is stored and logged once: a batch the agent resends because our
 * answer was lost (here or to another replica) is acknowledged again but neither stored nor logged
 * twice. A host's status follows its highest seq, so a late, older report cannot roll it back; its
 * events follow seq order. A host removed meanwhile fails the whole group (a foreign key); the
 * caller then stores each batch on its own. One outcome per batch, in order.
 */
async function storeBatches(store: Store, now: number, batches: readonly Batch[], observer: ReportObserver | undefined): Promise<StoreOutcome[]> {
  const candidates = new Map<string, Candidate>();
  const newest = new Map<string, Report>();
  batches.forEach(({ host, batch }, from) => {
    for (const report of batch) {
      const key = reportKey(host, report.seq);
      if (!candidates.has(key)) candidates.set(key, { host, report, from });
      if (report.seq > (newest.get(host)?.seq ?? 0)) newest.set(host, report);
    }
  });
  // A host removed meanwhile fails this statement (a foreign key): then the group is stored batch by batch (reportWriter).
  const inserted = await insertReports(store, now, [...candidates.values()]);
  // What is new, each host's in seq order (hosts in arrival order): the order its effects and events take.
  const order = new Map([...newest.keys()].map((name, i) => [name, i]));
  const fresh = [...candidates.values()]
    .filter(({ host, report }) => inserted.has(reportKey(host, report.seq)))
    .sort((a, b) => order.get(a.host)! - order.get(b.host)! || a.report.seq - b.report.seq);

  const releasing = await releasedBy(store, fresh);
  const observed = observer && fresh.length > 0 ? await observer(fresh, now) : [];
  const events: NewEvent[] = [];
  const outcomes = batches.map(({ batch }): StoreOutcome => ({ ackedSeqs: batch.map((report) => report.seq), stored: 0, rollouts: [], seenAt: null }));
  fresh.forEach((candidate, i) => {
    const { host, report, from } = candidate;
    const actor = `agent:${host}`;
    if (releasing.has(candidate)) {
      events.push({ host, at: now, kind: 'reboot-released', actor, data: { manifestVersion: report.manifestVersion, phase: report.phase } });
    }
    const outcome = outcomes[from]!;
    outcome.stored += 1;
    const rollout = observed[i];
    if (rollout) {
      events.push(...rollout.events);
      if (rollout.rolloutId && !outcome.rollouts.includes(rollout.rolloutId)) outcome.rollouts.push(rollout.rolloutId);
    }
    events.push({
      host,
      at: now,
      kind: 'report',
      actor,
      data: { seq: report.seq, phase: report.phase, manifestVersion: report.manifestVersion, storePath: report.storePath, currentSystem: report.currentSystem, reportedAt: report.at, detail: report.detail },
    });
  });
  await appendEvents(store, events);

  const written = await writeHostStatus(store, now, newest);
  batches.forEach(({ host }, i) => {
    if (written.has(host)) outcomes[i]!.seenAt = now;
  });
  return outcomes;
}

/**
 * A host that reached the end of a manifest no longer holds the fleet reboot lock for it. Ends
 * the leases the group's terminal reports end, and returns the report that ended each: the
 * host's first terminal one on the lease's version or a later one, as if stored one by one.
 */
async function releasedBy(store: Store, fresh: readonly Candidate[]): Promise<Set<Candidate>> {
  const terminal = fresh.filter(({ report }) => TERMINAL_PHASES.has(report.phase) && report.manifestVersion !== null);
  if (terminal.length === 0) return new Set();
  const upTo = new Map<string, number>();
  for (const { host, report } of terminal) upTo.set(host, Math.max(upTo.get(host) ?? 0, report.manifestVersion!));
  const released = await releaseRebootLeases(store, upTo);
  const releasing = new Set<Candidate>();
  for (const [host, version] of released) {
    const by = terminal.find((c) => c.host === host && c.report.manifestVersion! >= version);
    if (by) releasing.add(by);
  }
  return releasing;
}

/** Stores one host's batch in a transaction of its own (see `storeBatches`). */
export async function storeReports(store: Store, clock: Clock, host: string, batch: readonly Report[], observer?: ReportObserver): Promise<StoreOutcome> {
  const now = clock.now();
  const [outcome] = await store.transaction(() => storeBatches(store, now, [{ host, batch }], observer));
  return outcome!;
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
 * within `windowMs`) are stored in one transaction, set-based (`storeBatches`). A commit per
 * request cost more than the statements it committed; shared by a turn's requests it is paid once.
 * Should the group transaction fail (a host removed meanwhile, a statement refused, the retries
 * after serialization conflicts spent), every batch of the group is stored in a transaction of its
 * own, so that one fails only its own request: a batch cannot fail another.
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
    let outcomes: StoreOutcome[];
    try {
      // A serialization conflict (PostgreSQL) runs the whole body again, as it does any transaction.
      outcomes = await store.transaction(() => storeBatches(store, now, group, observer));
    } catch {
      // Nothing of the group stands: each batch on its own, so that whatever failed fails only its own request.
      for (const entry of group) await storeAlone(entry);
      return;
    }
    group.forEach((entry, i) => entry.resolve(outcomes[i]!));
  };

  // Concurrent writers (PostgreSQL): at most one group is being stored at a time; what arrives
  // meanwhile waits for it and then goes as the next group. Two groups of one replica in flight at
  // once conflicted with each other (SERIALIZABLE) for nothing. One writer (SQLite): the next group
  // forms while one commits; the writer lock runs them one after the other anyway, and the scale
  // benchmark ingested faster so.
  const oneAtATime = store.concurrentWriters;
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
