import { and, asc, between, count, gt, inArray, lte, max, or, type SQL } from 'drizzle-orm';
import type { Store } from './db/store.js';

/**
 * A reader's position in the audit log (`events`), for readers that follow it by id: the event
 * log, the metrics fold, webhook enqueue, the dashboard's change feed, a rollout's event stream.
 *
 * "Everything with an id above the last one seen" is only right when ids become visible in id
 * order. SQLite has one writer, so they do. PostgreSQL hands out identity values when a row is
 * inserted, not when its transaction commits: T1 takes 100, T2 takes 101 and commits first; a
 * reader that saw 101 and moved past it would never see 100. Several replicas write events at
 * once, and one replica runs transactions concurrently, so this happens.
 *
 * The fix chosen: remember the gaps. Ids skipped over are kept as open gaps and looked for again on
 * every later read until they appear (delivered then, once, out of id order) or the gap is older
 * than a grace period (the transaction that held them rolled back or ran again under a new id:
 * a permanent gap). The alternatives: a safe horizon from transaction ids (an `xid8` column
 * written with `pg_current_xact_id()`, read below `pg_snapshot_xmin(pg_current_snapshot())`)
 * needs a column on one engine only; serialising id allocation with a lock puts every writing
 * transaction of every replica in one line. This costs nothing on SQLite (no gap stays open there,
 * grace 0) and one small query per read on PostgreSQL while a gap is open.
 *
 * A cursor is a value: a read returns the next one and the caller keeps it only once what it did
 * with the rows is done (committed, logged), so a retried transaction or two overlapping reads do
 * not move it twice. `settledThrough` is the durable form (every id at or below it was read or is
 * gone for good); a reader that restarts from it reads again what lies above, out-of-order
 * arrivals included, so a durable reader must be idempotent per event id (webhook deliveries are:
 * (webhook, event) is unique).
 */
export interface EventCursor {
  /** The highest id read past. */
  readonly above: number;
  /** Ids at or below `above` not seen yet, disjoint and ascending, each with the time it was first missed. */
  readonly gaps: readonly Gap[];
}

export interface Gap {
  readonly from: number;
  readonly to: number;
  /** When a read first found these ids missing (ms). */
  readonly since: number;
}

/** Ids listed per read when new ids have holes; more waits for the next read. */
const LIST = 10_000;
/** Gap ranges looked for per query. */
const RECHECK = 200;

export function eventCursorAt(id: number): EventCursor {
  return { above: id, gaps: [] };
}

/** A cursor past every event written so far: readers that start "from now". */
export async function newestEventCursor(store: Store): Promise<EventCursor> {
  const { events } = store.t;
  return eventCursorAt((await store.q.select({ id: max(events.id) }).from(events))[0]?.id ?? 0);
}

/** Every id at or below this was read or is gone for good: what a durable cursor stores. */
export function settledThrough(cursor: EventCursor): number {
  return cursor.gaps.length > 0 ? cursor.gaps[0]!.from - 1 : cursor.above;
}

export interface ReadEventsOptions<R> {
  /**
   * The reader's query: its events among those `ids` selects (a condition on events.id), in
   * ascending id order, at most `limit` of them. Ids it filters out (other kinds) still count as
   * seen: gaps are found from all ids, not from the reader's rows.
   */
  rows: (ids: SQL, limit: number) => Promise<R[]>;
  /** Rows per read above the cursor; a full batch leaves `more`. */
  batch: number;
  /** Milliseconds; the clock the gaps are aged by. */
  now: number;
  /** Default: store.idGapGraceMs. Tests shorten it. */
  graceMs?: number;
}

export interface EventsRead<R> {
  /** Gaps that filled first, then new rows, each ascending. Never a row the cursor had read. */
  rows: R[];
  cursor: EventCursor;
  /** Another read would find more at once (a batch was cut). */
  more: boolean;
  /** Events that became visible to this cursor, whether `rows` selected them or not: the change feed's "something happened". */
  arrived: number;
}

/**
 * The events after `cursor`, through `store.q` (inside a transaction, its snapshot). Reads: the
 * open gaps (only if any), the count and highest id above the cursor, the ids above it only if
 * that count shows holes, and the reader's rows.
 */
export async function readEvents<R extends { id: number }>(store: Store, cursor: EventCursor, options: ReadEventsOptions<R>): Promise<EventsRead<R>> {
  const { events } = store.t;
  const q = store.q;
  const graceMs = options.graceMs ?? store.idGapGraceMs;

  // Gaps that filled since the last read.
  const recovered: number[] = [];
  for (let i = 0; i < cursor.gaps.length; i += RECHECK) {
    const chunk = cursor.gaps.slice(i, i + RECHECK);
    const found = await q
      .select({ id: events.id })
      .from(events)
      .where(or(...chunk.map((gap) => between(events.id, gap.from, gap.to))))
      .orderBy(asc(events.id));
    recovered.push(...found.map((row) => row.id));
  }
  const rows: R[] = recovered.length > 0 ? await options.rows(inArray(events.id, recovered), recovered.length) : [];
  let gaps = without(cursor.gaps, recovered);
  let arrived = recovered.length;

  const [head] = await q.select({ newest: max(events.id), n: count() }).from(events).where(gt(events.id, cursor.above));
  const newest = head?.newest ?? cursor.above;
  let upper = newest;
  let more = false;
  // Null: every id in (above, upper] exists, as on SQLite nearly always.
  let listed: number[] | null = null;
  if (newest > cursor.above && head!.n !== newest - cursor.above) {
    listed = (
      await q
        .select({ id: events.id })
        .from(events)
        .where(and(gt(events.id, cursor.above), lte(events.id, newest)))
        .orderBy(asc(events.id))
        .limit(LIST)
    ).map((row) => row.id);
    if (listed.length === LIST) {
      upper = listed.at(-1)!;
      more = true;
    }
  }
  if (upper > cursor.above) {
    const fresh = await options.rows(and(gt(events.id, cursor.above), lte(events.id, upper))!, options.batch);
    if (fresh.length === options.batch) {
      upper = fresh.at(-1)!.id;
      more = true;
    }
    rows.push(...fresh);
    if (listed === null) arrived += upper - cursor.above;
    else {
      // A row committed between the listing and the rows query is seen too: it is no gap.
      const seen = [...new Set([...listed.filter((id) => id <= upper), ...fresh.map((row) => row.id)])].sort((a, b) => a - b);
      arrived += seen.length;
      gaps = [...gaps, ...holes(cursor.above, upper, seen, options.now)];
    }
  }
  // Old enough: the transaction that held these ids is over without them.
  gaps = gaps.filter((gap) => options.now - gap.since < graceMs);
  return { rows, cursor: { above: Math.max(upper, cursor.above), gaps }, more, arrived };
}

/** The ranges of (after, upper] that `seen` (ascending) does not contain. */
function holes(after: number, upper: number, seen: number[], since: number): Gap[] {
  const found: Gap[] = [];
  let last = after;
  for (const id of [...seen, upper + 1]) {
    if (id > last + 1) found.push({ from: last + 1, to: id - 1, since });
    last = id;
  }
  return found;
}

/** `gaps` with the ids in `filled` (ascending) taken out. */
function without(gaps: readonly Gap[], filled: number[]): Gap[] {
  if (filled.length === 0) return [...gaps];
  const result: Gap[] = [];
  for (const gap of gaps) {
    const inside = filled.filter((id) => id >= gap.from && id <= gap.to);
    for (const hole of holes(gap.from - 1, gap.to, inside, gap.since)) result.push(hole);
  }
  return result;
}
