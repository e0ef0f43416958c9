import { and, asc, gt, inArray, max } from 'drizzle-orm';
import type { EventKind } from '../../shared/src/operator-api.js';
import type { Logger } from '../../shared/src/logger.js';
import type { Db } from './db/open.js';
import { events } from './db/schema.js';
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

export class EventLog {
  private cursor: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {
    // Only what happens from now on: a restart does not replay history into the log.
    this.cursor = db.select({ id: max(events.id) }).from(events).get()?.id ?? 0;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => runBackground(this.logger, 'event log', () => this.flush()), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.flush();
  }

  flush(): void {
    const debug = this.logger.isLevelEnabled('debug');
    for (;;) {
      const rows = this.db
        .select()
        .from(events)
        .where(and(gt(events.id, this.cursor), inArray(events.kind, debug ? [...INFO, ...DEBUG] : [...INFO])))
        .orderBy(asc(events.id))
        .limit(500)
        .all();
      for (const row of rows) {
        const fields = { event: row.kind, eventId: row.id, actor: row.actor, ...(row.host ? { host: row.host } : {}), ...(row.rolloutId ? { rolloutId: row.rolloutId } : {}), ...logged(row.data) };
        if ((DEBUG as string[]).includes(row.kind)) this.logger.debug(fields, row.kind);
        else if (row.kind === 'rollout-host-failed' || row.kind === 'rollout-halted' || row.kind === 'manifest-withheld') this.logger.warn(fields, row.kind);
        else this.logger.info(fields, row.kind);
      }
      if (rows.length < 500) {
        // Past what was logged (and past kinds not logged): nothing before this id is looked at again.
        this.cursor = Math.max(this.cursor, this.db.select({ id: max(events.id) }).from(events).get()?.id ?? 0, rows.at(-1)?.id ?? 0);
        return;
      }
      this.cursor = rows.at(-1)!.id;
    }
  }
}

/** The event's data without bulky parts (a spec, a host list): a log line, not a copy of the audit log. */
function logged(data: Record<string, unknown>): Record<string, unknown> {
  const { spec: _spec, hosts, statement: _statement, ...rest } = data;
  return { ...rest, ...(Array.isArray(hosts) ? { hosts: hosts.length } : hosts === undefined ? {} : { hosts }) };
}
