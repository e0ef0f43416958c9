import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from '../../../shared/src/logger.js';
import { sql, type SQL } from 'drizzle-orm';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { pruneManifests } from './manifests.js';

/**
 * How long history is kept, in days (null: forever). The latest state of every host lives in the
 * hosts table and its newest report is always kept; the audit log (what rollouts caused and
 * operators did) is kept longer than the chatter of connections, reports and renewals.
 */
export interface RetentionOptions {
  reportsDays: number | null;
  /** Events neither caused by a rollout nor made by an operator: connected, report, manifest-renewed … */
  eventsDays: number | null;
  /** The audit log: events a rollout caused (never while it is unfinished) or an operator made. */
  auditEventsDays: number | null;
  /** Delivered and given-up deliveries; pending ones are never pruned. */
  webhookDeliveriesDays: number | null;
  /** Superseded manifests (renewals, old desired states); what a host or rollout may still need is kept (manifests.ts). */
  manifestsDays: number | null;
  pruneIntervalMs: number;
  /** Rows per transaction: each batch holds the event loop for a few milliseconds at most. */
  batchRows?: number;
}

export const DEFAULT_RETENTION = {
  reportsDays: 30,
  eventsDays: 30,
  auditEventsDays: 400,
  webhookDeliveriesDays: 30,
  manifestsDays: 90,
  pruneIntervalMs: 5 * 60_000,
  batchRows: 500,
} as const satisfies Required<RetentionOptions>;

const DAY_MS = 24 * 3600_000;

export type PruneCounts = { reports: number; events: number; auditEvents: number; webhookDeliveries: number; manifests: number };

const NOTHING_PRUNED: PruneCounts = { reports: 0, events: 0, auditEvents: 0, webhookDeliveries: 0, manifests: 0 };

/** An event is audit when a rollout caused it or an operator made it. */
const audit = (alias: string) => sql.raw(`(${alias}.rollout_id is not null or ${alias}.actor like 'operator:%')`);

/**
 * Events above the lowest webhook cursor are not delivered yet. No webhook: no bound, written as the
 * largest 64-bit integer (an integer on both engines; a float literal would compare as one).
 */
const UNDELIVERED = sql.raw(`coalesce((select min(cursor_event_id) from webhooks), 9223372036854775807)`);

/**
 * One DELETE per kind of history, each taking at most `limit` rows from the oldest end (by an index
 * on the time column, so a batch never scans the table), and returning one row per row deleted.
 * Portable SQL: row values rather than SQLite's rowid, parameters through drizzle's sql template.
 */
const STATEMENTS: Record<keyof PruneCounts, (cutoff: number, limit: number) => SQL> = {
  // The host's newest report (the one its status columns come from) stays, however old.
  reports: (cutoff, limit) => sql`delete from reports where (host, seq) in (
      select r.host, r.seq from reports r where r.received_at < ${cutoff}
        and not exists (select 1 from hosts h where h.name = r.host and h.last_report_seq = r.seq)
      order by r.received_at limit ${limit})
    returning seq`,
  // Events a webhook has not turned into deliveries yet are kept (id above the lowest cursor).
  events: (cutoff, limit) => sql`delete from events where id in (
      select e.id from events e where e.at < ${cutoff} and not ${audit('e')}
        and e.id <= ${UNDELIVERED}
      order by e.at limit ${limit})
    returning id`,
  auditEvents: (cutoff, limit) => sql`delete from events where id in (
      select e.id from events e where e.at < ${cutoff} and ${audit('e')}
        and e.id <= ${UNDELIVERED}
        and not exists (select 1 from rollouts r where r.id = e.rollout_id and r.finished_at is null)
      order by e.at limit ${limit})
    returning id`,
  webhookDeliveries: (cutoff, limit) => sql`delete from webhook_deliveries where id in (
      select d.id from webhook_deliveries d where d.created_at < ${cutoff} and d.state != 'pending' order by d.created_at limit ${limit})
    returning id`,
  manifests: pruneManifests,
};

type Kind = keyof PruneCounts;
const AGE: Record<Kind, keyof RetentionOptions> = {
  reports: 'reportsDays',
  events: 'eventsDays',
  auditEvents: 'auditEventsDays',
  webhookDeliveries: 'webhookDeliveriesDays',
  manifests: 'manifestsDays',
};

/** Deletes at most `batchRows` expired rows of one kind, in one transaction; returns how many. */
export async function pruneBatch(store: Store, kind: Kind, now: number, options: RetentionOptions): Promise<number> {
  const days = options[AGE[kind]] as number | null;
  if (days === null) return 0;
  const statement = STATEMENTS[kind](now - days * DAY_MS, options.batchRows ?? DEFAULT_RETENTION.batchRows);
  return store.transaction(async () => (await store.rows(statement)).length);
}

/**
 * Prunes everything expired, batch by batch, yielding to the event loop between batches so agents'
 * requests and pushes interleave with the deletes. Returns what it deleted.
 */
export async function pruneAll(store: Store, clock: Clock, options: RetentionOptions, stopped: () => boolean = () => false): Promise<PruneCounts> {
  const counts: PruneCounts = { ...NOTHING_PRUNED };
  const batch = options.batchRows ?? DEFAULT_RETENTION.batchRows;
  for (const kind of Object.keys(counts) as Kind[]) {
    for (;;) {
      if (stopped()) return counts;
      const deleted = await pruneBatch(store, kind, clock.now(), options);
      counts[kind] += deleted;
      if (deleted < batch) break;
      await nextTurn();
    }
  }
  return counts;
}

export interface Pruning {
  /** One pass now (tests, benches); resolves with what it deleted. */
  runNow(): Promise<PruneCounts>;
  stop(): Promise<void>;
}

/** Prunes on a timer; a pass never overlaps the previous one, and errors are logged, never thrown. */
export function startPruning(deps: { store: Store; clock: Clock; logger: Logger }, options: RetentionOptions): Pruning {
  const logger = deps.logger.child({ component: 'retention' });
  let stopped = false;
  let running: Promise<PruneCounts> | null = null;
  const runNow = (): Promise<PruneCounts> => {
    running ??= pruneAll(deps.store, deps.clock, options, () => stopped)
      .then((counts) => {
        if (Object.values(counts).some((n) => n > 0)) logger.info(counts, 'pruned old history');
        return counts;
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'pruning old history failed; will retry at the next interval');
        return { ...NOTHING_PRUNED };
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => void runNow(), options.pruneIntervalMs);
  timer.unref();
  return {
    runNow,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
