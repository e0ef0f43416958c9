import { and, eq, inArray, sql } from 'drizzle-orm';
import type { WebhookDeliveryRow } from '../db/schema.js';
import type { Store } from '../db/store.js';

/**
 * The head of each lane of an endpoint: its oldest pending delivery per rollout (every webhook
 * event belongs to one), oldest first. Only heads are ever sent, so a rollout's events arrive in
 * order while rollouts do not wait for each other.
 */
export async function laneHeads(store: Store, webhookId: string): Promise<WebhookDeliveryRow[]> {
  const { webhookDeliveries } = store.t;
  const heads = await store.rows<{ id: string }>(sql`
    select d.id as id from webhook_deliveries d
    where d.webhook_id = ${webhookId} and d.state = 'pending' and d.event_id in (
      select min(p.event_id) from webhook_deliveries p join events e on e.id = p.event_id
      where p.webhook_id = ${webhookId} and p.state = 'pending'
      group by e.rollout_id)
    order by d.event_id`);
  if (heads.length === 0) return [];
  return store.q
    .select()
    .from(webhookDeliveries)
    .where(inArray(webhookDeliveries.id, heads.map((h) => h.id)))
    .orderBy(webhookDeliveries.eventId);
}

/** 4xx other than 408 (timeout) and 429 (slow down): the receiver refused this body; resending it will not help. */
export function refusedByReceiver(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** Gives an endpoint up: it gets nothing more (not even new events) until a test reaches it. Inside the caller's transaction. */
export async function markDead(store: Store, webhookId: string, now: number, reason: string): Promise<void> {
  const { webhookDeliveries, webhooks } = store.t;
  await store.q.update(webhooks).set({ deadSince: now, deadReason: reason }).where(eq(webhooks.id, webhookId));
  await store.q
    .update(webhookDeliveries)
    .set({ state: 'failed', lastError: `not sent: the endpoint was given up as dead (${reason})` })
    .where(and(eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.state, 'pending')));
}

/** Brings a dead endpoint back (after a successful test); events from now on are delivered again. */
export async function revive(store: Store, webhookId: string): Promise<void> {
  const { webhooks } = store.t;
  await store.transaction(async (tx) => {
    await tx.update(webhooks).set({ deadSince: null, deadReason: null }).where(eq(webhooks.id, webhookId));
  });
}
