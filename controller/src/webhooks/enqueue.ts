import { randomBytes } from 'node:crypto';
import { and, asc, eq, gt, inArray, isNotNull, lte, max } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import { webhookPayload } from './payload.js';

/** Events turned into deliveries per endpoint per pass; the rest waits for the next pass. */
const BATCH = 500;

/**
 * Turns audit events newer than each endpoint's cursor into pending deliveries, and moves the
 * cursor, in one transaction: after a crash either both happened or neither, so no event is lost
 * or enqueued twice (and (webhook, event) is unique besides). Returns how many were enqueued.
 */
export async function enqueueDeliveries(store: Store, now: number): Promise<number> {
  const { events, rollouts, webhookDeliveries, webhooks } = store.t;
  return store.transaction(async (tx) => {
    const newest = (await tx.select({ id: max(events.id) }).from(events))[0]?.id ?? 0;
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
      if (hook.cursor >= newest) continue;
      // A dead endpoint queues nothing: a backlog of hours would arrive at once when it comes back.
      if (hook.deadSince !== null) {
        await tx.update(webhooks).set({ cursorEventId: newest }).where(eq(webhooks.id, hook.id));
        continue;
      }
      const rows = await tx
        .select()
        .from(events)
        .where(and(gt(events.id, hook.cursor), lte(events.id, newest), isNotNull(events.rolloutId), inArray(events.kind, hook.events)))
        .orderBy(asc(events.id))
        .limit(BATCH);
      // A full batch may have left matching events behind it; otherwise everything up to `newest` is seen.
      const cursor = rows.length === BATCH ? rows[rows.length - 1]!.id : newest;
      for (const event of rows) {
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
      await tx.update(webhooks).set({ cursorEventId: cursor }).where(eq(webhooks.id, hook.id));
    }
    return enqueued;
  });
}
