import { randomBytes } from 'node:crypto';
import { and, asc, eq, gt, inArray, isNotNull, lte, max } from 'drizzle-orm';
import type { Db } from '../db/open.js';
import { events, rollouts, webhookDeliveries, webhooks } from '../db/schema.js';
import { webhookPayload } from './payload.js';

/** Events turned into deliveries per endpoint per pass; the rest waits for the next pass. */
const BATCH = 500;

/**
 * Turns audit events newer than each endpoint's cursor into pending deliveries, and moves the
 * cursor, in one transaction: after a crash either both happened or neither, so no event is lost
 * or enqueued twice (and (webhook, event) is unique besides). Returns how many were enqueued.
 */
export function enqueueDeliveries(db: Db, now: number): number {
  return db.transaction((tx) => {
    const newest = tx.select({ id: max(events.id) }).from(events).get()?.id ?? 0;
    const releases = new Map<string, string | null>();
    const releaseOf = (rolloutId: string) => {
      if (!releases.has(rolloutId)) {
        releases.set(rolloutId, tx.select({ release: rollouts.release }).from(rollouts).where(eq(rollouts.id, rolloutId)).get()?.release ?? null);
      }
      return releases.get(rolloutId)!;
    };
    let enqueued = 0;
    for (const hook of tx.select({ id: webhooks.id, events: webhooks.events, cursor: webhooks.cursorEventId, deadSince: webhooks.deadSince }).from(webhooks).all()) {
      if (hook.cursor >= newest) continue;
      // A dead endpoint queues nothing: a backlog of hours would arrive at once when it comes back.
      if (hook.deadSince !== null) {
        tx.update(webhooks).set({ cursorEventId: newest }).where(eq(webhooks.id, hook.id)).run();
        continue;
      }
      const rows = tx
        .select()
        .from(events)
        .where(and(gt(events.id, hook.cursor), lte(events.id, newest), isNotNull(events.rolloutId), inArray(events.kind, hook.events)))
        .orderBy(asc(events.id))
        .limit(BATCH)
        .all();
      // A full batch may have left matching events behind it; otherwise everything up to `newest` is seen.
      const cursor = rows.length === BATCH ? rows[rows.length - 1]!.id : newest;
      for (const event of rows) {
        const inserted = tx
          .insert(webhookDeliveries)
          .values({
            id: `whd-${randomBytes(8).toString('hex')}`,
            webhookId: hook.id,
            eventId: event.id,
            type: event.kind,
            payload: webhookPayload(event, releaseOf(event.rolloutId!)),
            state: 'pending',
            nextAttemptAt: now,
            createdAt: now,
          })
          .onConflictDoNothing()
          .run();
        enqueued += inserted.changes;
      }
      tx.update(webhooks).set({ cursorEventId: cursor }).where(eq(webhooks.id, hook.id)).run();
    }
    return enqueued;
  });
}
