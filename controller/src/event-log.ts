import { and, asc, inArray } from 'drizzle-orm';
import type { EventKind } from '../../shared/src/operator-api.js';
import type { Logger } from '../../shared/src/logger.js';
import type { Store } from './db/store.js';
import { runBackground } from './background.js';
import { newestEventCursor, readEvents, type EventCursor } from './events-cursor.js';

/**
 * The controller's log of what it did, from the audit log after commit (a rolled-back transaction
 * leaves no log line that lies): every manifest issued and a rollout's lifecycle at info, renewals
 * at debug (at 1,000 hosts they are most of the lines and say nothing new).
 */
const INFO: readonly EventKind[] = [
  'desired-set',
  'manifest-issued',
  // A wave's manifests, one event per host: counted at info (see COUNTED), each host at debug.
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
/**
 * Kinds logged at info as one line per rollout and wave for each read ("rollout-host-issued
 * hosts=500"), each event on its own line at debug only: a 10,000-host wave wrote 10,000 info
 * lines, about a tenth of the event loop's time while the wave went out (bench/README.md), and the
 * audit log (`shoal events`, the rollout's page) already lists every host.
 */
const COUNTED: readonly EventKind[] = ['rollout-host-issued'];
/** Events read per query. */
const BATCH = 500;

export interface EventLogOptions {
  /** How long an id skipped over may still appear (events-cursor.ts); tests shorten it. */
  gapGraceMs?: number;
}

export class EventLog {
  /** Null until the newest id at start is known: only what happens from then on is logged. */
  private cursor: EventCursor | null = null;
  private readonly started: Promise<void>;
  private timer: NodeJS.Timeout | null = null;
  /** One flush at a time (the timer's and stop()'s), so no event is logged twice. */
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: EventLogOptions = {},
  ) {
    // Only what happens from now on: a restart does not replay history into the log.
    this.started = newestEventCursor(store).then((cursor) => {
      this.cursor = cursor;
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

  private async flushNow(): Promise<void> {
    await this.started;
    const { events } = this.store.t;
    const debug = this.logger.isLevelEnabled('debug');
    const kinds = debug ? [...INFO, ...DEBUG] : [...INFO];
    // Lines of events whose transactions committed out of id order come out of id order (events-cursor.ts).
    for (let more = true; more; ) {
      const read = await readEvents(this.store, this.cursor!, {
        batch: BATCH,
        now: Date.now(),
        ...(this.options.gapGraceMs === undefined ? {} : { graceMs: this.options.gapGraceMs }),
        rows: (ids, limit) => this.store.q.select().from(events).where(and(ids, inArray(events.kind, kinds))).orderBy(asc(events.id)).limit(limit),
      });
      const counted = new Map<string, CountedLine>();
      for (const row of read.rows) {
        const fields = () => ({ event: row.kind, eventId: row.id, actor: row.actor, ...(row.host ? { host: row.host } : {}), ...(row.rolloutId ? { rolloutId: row.rolloutId } : {}), ...logged(row.data) });
        if ((COUNTED as string[]).includes(row.kind)) {
          if (debug) this.logger.debug(fields(), row.kind);
          count(counted, row);
        } else if ((DEBUG as string[]).includes(row.kind)) this.logger.debug(fields(), row.kind);
        else if (row.kind === 'rollout-host-failed' || row.kind === 'rollout-halted' || row.kind === 'manifest-withheld') this.logger.warn(fields(), row.kind);
        else this.logger.info(fields(), row.kind);
      }
      for (const line of counted.values()) this.logger.info(line, line.event);
      this.cursor = read.cursor;
      more = read.more;
    }
  }
}

interface CountedLine {
  event: string;
  rolloutId: string | null;
  wave: unknown;
  hosts: number;
  /** The first and last of the events counted, for `shoal events` around them. */
  firstEventId: number;
  lastEventId: number;
}

/** Adds `row` to its rollout's and wave's line. */
function count(counted: Map<string, CountedLine>, row: { id: number; kind: string; rolloutId: string | null; data: Record<string, unknown> }): void {
  const key = `${row.kind} ${row.rolloutId} ${String(row.data.wave)}`;
  const line = counted.get(key);
  if (!line) {
    counted.set(key, { event: row.kind, rolloutId: row.rolloutId, wave: row.data.wave, hosts: 1, firstEventId: row.id, lastEventId: row.id });
    return;
  }
  line.hosts += 1;
  line.lastEventId = row.id;
}

/** The event's data without bulky parts (a spec, a host list): a log line, not a copy of the audit log. */
function logged(data: Record<string, unknown>): Record<string, unknown> {
  const { spec: _spec, hosts, statement: _statement, ...rest } = data;
  return { ...rest, ...(Array.isArray(hosts) ? { hosts: hosts.length } : hosts === undefined ? {} : { hosts }) };
}
