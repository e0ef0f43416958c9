import { randomBytes } from 'node:crypto';
import { and, asc, eq, inArray, isNotNull, max } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import { eventCursorAt, readEvents, settledThrough, type EventCursor } from '../events-cursor.js';
import { webhookPayload } from './payload.js';

/** Events turned into deliveries per endpoint per pass; the rest waits for the next pass. */
const BATCH = 500;

/**
 * Each endpoint's place in the audit log with its open gaps (events-cursor.ts), kept between
 * passes by the dispatcher. Only a saving: the durable cursor (webhooks.cursor_event_id) is the
 * settled position, and a pass without this memory (a restart, another replica taking over) reads
 * again from there, where the (webhook, event) key turns what was enqueued already into nothing.
 */
export type EnqueueCursors = Map<string, EventCursor>;

export interface EnqueueOptions {
  /** How long an id skipped over may still appear (events-cursor.ts); tests shorten it. */
  gapGraceMs?: number;
}

/**
 * Turns audit events newer than each endpoint's cursor into pending deliveries, and moves the
 * cursor, in one transaction: after a crash either both happened or neither, so no event is lost
 * or enqueued twice (and (webhook, event) is unique besides). Events whose transactions committed
 * out of id order are enqueued when they appear, so a lane may get them out of id order. Returns
 * how many were enqueued.
 */
export async function enqueueDeliveries(store: Store, now: number, cursors: EnqueueCursors = new Map(), options: EnqueueOptions = {}): Promise<number> {
  const { events, rollouts, webhookDeliveries, webhooks } = store.t;
  // Kept only once the transaction committed: PostgreSQL may run the body again.
  const moved = new Map<string, EventCursor>();
  const enqueued = await store.transaction(async (tx) => {
    moved.clear();
    // Per run of the body: PostgreSQL may run it again, and must not see a previous run's reads.
    const releases = new Map<string, string | null>();
    const releaseOf = async (rolloutId: string) => {
      if (!releases.has(rolloutId)) {
        const [row] = await tx.select({ release: rollouts.release }).from(rollouts).where(eq(rollouts.id, rolloutId)).limit(1);
        releases.set(rolloutId, row?.release ?? null);
      }
      return releases.get(rolloutId)!;
    };
    let enqueued = 0;
    for (const hook of await tx.select({ id: webhooks.id, events: webhooks.events, cursor: webhooks.cursorEventId, deadSince: webhooks.deadSince }).from(webhooks)) {
      // A dead endpoint queues nothing: a backlog of hours would arrive at once when it comes back.
      if (hook.deadSince !== null) {
        const newest = (await tx.select({ id: max(events.id) }).from(events))[0]?.id ?? 0;
        if (hook.cursor < newest) await tx.update(webhooks).set({ cursorEventId: newest }).where(eq(webhooks.id, hook.id));
        moved.set(hook.id, eventCursorAt(Math.max(hook.cursor, newest)));
        continue;
      }
      // The memory holds only if the durable cursor is where it left it (else another replica, or a
      // rolled-back pass, moved it): then start from the durable one.
      const known = cursors.get(hook.id);
      const cursor = known !== undefined && settledThrough(known) === hook.cursor ? known : eventCursorAt(hook.cursor);
      const read = await readEvents(store, cursor, {
        batch: BATCH,
        now,
        ...(options.gapGraceMs === undefined ? {} : { graceMs: options.gapGraceMs }),
        rows: (ids, limit) =>
          tx
            .select()
            .from(events)
            .where(and(ids, isNotNull(events.rolloutId), inArray(events.kind, hook.events)))
            .orderBy(asc(events.id))
            .limit(limit),
      });
      for (const event of read.rows) {
        const inserted = await tx
          .insert(webhookDeliveries)
          .values({
            id: `whd-${randomBytes(8).toString('hex')}`,
            webhookId: hook.id,
            eventId: event.id,
            type: event.kind,
            payload: webhookPayload(event, await releaseOf(event.rolloutId!)),
            state: 'pending',
            nextAttemptAt: now,
            createdAt: now,
          })
          .onConflictDoNothing();
        enqueued += store.affected(inserted);
      }
      const settled = settledThrough(read.cursor);
      if (settled !== hook.cursor) await tx.update(webhooks).set({ cursorEventId: settled }).where(eq(webhooks.id, hook.id));
      moved.set(hook.id, read.cursor);
    }
    return enqueued;
  });
  // Endpoints deleted meanwhile are forgotten with the rest.
  cursors.clear();
  for (const [id, cursor] of moved) cursors.set(id, cursor);
  return enqueued;
}
