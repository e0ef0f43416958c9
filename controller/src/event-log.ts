import { and, asc, gt, inArray, lte, max } from 'drizzle-orm';
import type { EventKind } from '../../shared/src/operator-api.js';
import type { Logger } from '../../shared/src/logger.js';
import type { Store } from './db/store.js';
import { runBackground } from './background.js';

/**
 * The controller's log of what it did, from the audit log after commit (a rolled-back transaction
 * leaves no log line that lies): every manifest issued and a rollout's lifecycle at info, renewals
 * at debug (at 1,000 hosts they are most of the lines and say nothing new).
 */
const INFO: readonly EventKind[] = [
  'desired-set',
  'manifest-issued',
  // A wave's manifests: one event per host says what manifest-issued would.
  'rollout-host-issued',
  'manifest-withheld',
  'rollout-started',
  'rollout-wave-started',
  'rollout-waiting-approval',
  'rollout-approved',
  'rollout-paused',
  'rollout-resumed',
  'rollout-host-failed',
  'rollout-host-skipped',
  'rollout-halted',
  'rollout-rolling-back',
  'rollout-rolled-back',
  'rollout-succeeded',
  'rollout-aborted',
];
const DEBUG: readonly EventKind[] = ['manifest-renewed', 'rollout-host-healthy', 'rollout-wave-baking'];
/** Events read per query. */
const BATCH = 500;

export class EventLog {
  /** Null until the newest id at start is known: only what happens from then on is logged. */
  private cursor: number | null = null;
  private readonly started: Promise<void>;
  private timer: NodeJS.Timeout | null = null;
  /** One flush at a time (the timer's and stop()'s), so no event is logged twice. */
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {
    // Only what happens from now on: a restart does not replay history into the log.
    this.started = this.newestEvent().then((id) => {
      this.cursor = id;
    });
    // A failure shows at the first flush, which awaits this again.
    this.started.catch(() => {});
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => runBackground(this.logger, 'event log', () => this.flush()), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushNow());
    // The next flush runs whether or not this one failed; the failure goes to this caller.
    this.flushing = next.catch(() => {});
    return next;
  }

  private async newestEvent(): Promise<number> {
    const { events } = this.store.t;
    return (await this.store.q.select({ id: max(events.id) }).from(events))[0]?.id ?? 0;
  }

  private async flushNow(): Promise<void> {
    await this.started;
    const { events } = this.store.t;
    const debug = this.logger.isLevelEnabled('debug');
    // Up to the newest id now, read first: one committed while this pass reads is the next pass's.
    const newest = await this.newestEvent();
    while (this.cursor! < newest) {
      const rows = await this.store.q
        .select()
        .from(events)
        .where(and(gt(events.id, this.cursor!), lte(events.id, newest), inArray(events.kind, debug ? [...INFO, ...DEBUG] : [...INFO])))
        .orderBy(asc(events.id))
        .limit(BATCH);
      for (const row of rows) {
        const fields = { event: row.kind, eventId: row.id, actor: row.actor, ...(row.host ? { host: row.host } : {}), ...(row.rolloutId ? { rolloutId: row.rolloutId } : {}), ...logged(row.data) };
        if ((DEBUG as string[]).includes(row.kind)) this.logger.debug(fields, row.kind);
        else if (row.kind === 'rollout-host-failed' || row.kind === 'rollout-halted' || row.kind === 'manifest-withheld') this.logger.warn(fields, row.kind);
        else this.logger.info(fields, row.kind);
      }
      // A full batch may have left matching events behind it; otherwise everything up to `newest` is seen (kinds not logged too).
      this.cursor = rows.length === BATCH ? rows.at(-1)!.id : newest;
    }
  }
}

/** The event's data without bulky parts (a spec, a host list): a log line, not a copy of the audit log. */
function logged(data: Record<string, unknown>): Record<string, unknown> {
  const { spec: _spec, hosts, statement: _statement, ...rest } = data;
  return { ...rest, ...(Array.isArray(hosts) ? { hosts: hosts.length } : hosts === undefined ? {} : { hosts }) };
}
