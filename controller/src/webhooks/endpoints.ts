import { randomBytes } from 'node:crypto';
import { and, count, desc, eq, lt, max } from 'drizzle-orm';
import {
  DEFAULT_WEBHOOK_EVENTS,
  WebhookEventType,
  type CreateWebhookRequest,
  type WebhookCreated,
  type WebhookDelivery,
  type WebhookDeliveryState,
  type WebhookSummary,
} from '../../../shared/src/webhook-api.js';
import { iso, isoOrNull, type Clock } from '../clock.js';
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { generateWebhookSecret } from './sign.js';

async function counts(store: Store, webhookId: string): Promise<{ pending: number; failed: number }> {
  const { webhookDeliveries } = store.t;
  const rows = await store.q
    .select({ state: webhookDeliveries.state, n: count() })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.webhookId, webhookId))
    .groupBy(webhookDeliveries.state);
  const of = (state: string) => rows.find((r) => r.state === state)?.n ?? 0;
  return { pending: of('pending'), failed: of('failed') };
}

/** Deliveries of all webhooks waiting to be sent or retried (a metrics gauge). */
export async function pendingDeliveries(store: Store): Promise<number> {
  const { webhookDeliveries } = store.t;
  return (await store.q.select({ n: count() }).from(webhookDeliveries).where(eq(webhookDeliveries.state, 'pending')))[0]?.n ?? 0;
}

async function summary(store: Store, row: WebhookRow): Promise<WebhookSummary> {
  return {
    id: row.id,
    url: row.url,
    events: row.events as WebhookEventType[],
    description: row.description,
    createdAt: iso(row.createdAt),
    createdBy: row.createdBy,
    ...(await counts(store, row.id)),
    state: row.deadSince === null ? 'active' : 'dead',
    deadSince: row.deadSince === null ? null : iso(row.deadSince),
    deadReason: row.deadReason,
  };
}

/**
 * Registers an endpoint. It hears only events written from now on: its cursor starts at the
 * newest event, so a new endpoint is not flooded with history.
 */
export async function createWebhook(store: Store, clock: Clock, request: CreateWebhookRequest, actor: string): Promise<WebhookCreated> {
  const { events, webhooks } = store.t;
  const types = !request.events ? [...DEFAULT_WEBHOOK_EVENTS] : request.events.includes('*') ? [...WebhookEventType.options] : [...new Set(request.events)];
  const secret = request.secret ?? generateWebhookSecret();
  const row = await store.transaction(async (tx) => {
    const newest = (await tx.select({ id: max(events.id) }).from(events))[0]?.id ?? 0;
    const values: WebhookRow = {
      id: `wh-${randomBytes(6).toString('hex')}`,
      url: request.url,
      secret,
      events: types as string[],
      description: request.description,
      cursorEventId: newest,
      createdAt: clock.now(),
      createdBy: actor,
      deadSince: null,
      deadReason: null,
    };
    await tx.insert(webhooks).values(values);
    return values;
  });
  return { ...(await summary(store, row)), secret };
}

export async function listWebhooks(store: Store): Promise<WebhookSummary[]> {
  const { webhooks } = store.t;
  const rows = await store.q.select().from(webhooks).orderBy(webhooks.createdAt);
  const summaries: WebhookSummary[] = [];
  for (const row of rows) summaries.push(await summary(store, row));
  return summaries;
}

export async function readWebhook(store: Store, id: string): Promise<WebhookSummary | null> {
  const { webhooks } = store.t;
  const [row] = await store.q.select().from(webhooks).where(eq(webhooks.id, id)).limit(1);
  return row ? summary(store, row) : null;
}

/** Deletes the endpoint and its deliveries (pending ones are never sent). */
export async function deleteWebhook(store: Store, id: string): Promise<boolean> {
  const { webhooks } = store.t;
  return store.transaction(async (tx) => store.affected(await tx.delete(webhooks).where(eq(webhooks.id, id))) > 0);
}

export function toDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    webhookId: row.webhookId,
    eventId: row.eventId,
    type: row.type as WebhookEventType,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.state === 'pending' ? iso(row.nextAttemptAt) : null,
    lastAttemptAt: isoOrNull(row.lastAttemptAt),
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    deliveredAt: isoOrNull(row.deliveredAt),
    createdAt: iso(row.createdAt),
  };
}

/** Newest first; `beforeEventId` pages further back. */
export async function listDeliveries(
  store: Store,
  webhookId: string,
  options: { limit: number; beforeEventId?: number; state?: WebhookDeliveryState },
): Promise<WebhookDelivery[]> {
  const { webhookDeliveries } = store.t;
  const conditions = [eq(webhookDeliveries.webhookId, webhookId)];
  if (options.beforeEventId !== undefined) conditions.push(lt(webhookDeliveries.eventId, options.beforeEventId));
  if (options.state) conditions.push(eq(webhookDeliveries.state, options.state));
  const rows = await store.q
    .select()
    .from(webhookDeliveries)
    .where(and(...conditions))
    .orderBy(desc(webhookDeliveries.eventId))
    .limit(options.limit);
  return rows.map(toDelivery);
}

/** Where an endpoint is and the secret its deliveries are signed with; null when it does not exist. */
export async function webhookSecret(store: Store, id: string): Promise<{ url: string; secret: string } | null> {
  const { webhooks } = store.t;
  const [row] = await store.q.select({ url: webhooks.url, secret: webhooks.secret }).from(webhooks).where(eq(webhooks.id, id)).limit(1);
  return row ?? null;
}
