import { randomBytes } from 'node:crypto';
import { and, desc, eq, lt, max, sql } from 'drizzle-orm';
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
import type { Db } from '../db/open.js';
import { events, webhookDeliveries, webhooks, type WebhookDeliveryRow, type WebhookRow } from '../db/schema.js';
import { generateWebhookSecret } from './sign.js';

function counts(db: Db, webhookId: string): { pending: number; failed: number } {
  const rows = db
    .select({ state: webhookDeliveries.state, n: sql<number>`count(*)` })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.webhookId, webhookId))
    .groupBy(webhookDeliveries.state)
    .all();
  const of = (state: string) => rows.find((r) => r.state === state)?.n ?? 0;
  return { pending: of('pending'), failed: of('failed') };
}

/** Deliveries of all webhooks waiting to be sent or retried (a metrics gauge). */
export function pendingDeliveries(db: Db): number {
  return db.select({ n: sql<number>`count(*)` }).from(webhookDeliveries).where(eq(webhookDeliveries.state, 'pending')).get()?.n ?? 0;
}

function summary(db: Db, row: WebhookRow): WebhookSummary {
  return {
    id: row.id,
    url: row.url,
    events: row.events as WebhookEventType[],
    description: row.description,
    createdAt: iso(row.createdAt),
    createdBy: row.createdBy,
    ...counts(db, row.id),
    state: row.deadSince === null ? 'active' : 'dead',
    deadSince: row.deadSince === null ? null : iso(row.deadSince),
    deadReason: row.deadReason,
  };
}

/**
 * Registers an endpoint. It hears only events written from now on: its cursor starts at the
 * newest event, so a new endpoint is not flooded with history.
 */
export function createWebhook(db: Db, clock: Clock, request: CreateWebhookRequest, actor: string): WebhookCreated {
  const types = !request.events ? [...DEFAULT_WEBHOOK_EVENTS] : request.events.includes('*') ? [...WebhookEventType.options] : [...new Set(request.events)];
  const secret = request.secret ?? generateWebhookSecret();
  const row = db.transaction((tx) => {
    const newest = tx.select({ id: max(events.id) }).from(events).get()?.id ?? 0;
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
    tx.insert(webhooks).values(values).run();
    return values;
  });
  return { ...summary(db, row), secret };
}

export function listWebhooks(db: Db): WebhookSummary[] {
  return db.select().from(webhooks).orderBy(webhooks.createdAt).all().map((row) => summary(db, row));
}

export function readWebhook(db: Db, id: string): WebhookSummary | null {
  const row = db.select().from(webhooks).where(eq(webhooks.id, id)).get();
  return row ? summary(db, row) : null;
}

/** Deletes the endpoint and its deliveries (pending ones are never sent). */
export function deleteWebhook(db: Db, id: string): boolean {
  return db.delete(webhooks).where(eq(webhooks.id, id)).run().changes > 0;
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
export function listDeliveries(
  db: Db,
  webhookId: string,
  options: { limit: number; beforeEventId?: number; state?: WebhookDeliveryState },
): WebhookDelivery[] {
  const conditions = [eq(webhookDeliveries.webhookId, webhookId)];
  if (options.beforeEventId !== undefined) conditions.push(lt(webhookDeliveries.eventId, options.beforeEventId));
  if (options.state) conditions.push(eq(webhookDeliveries.state, options.state));
  return db
    .select()
    .from(webhookDeliveries)
    .where(and(...conditions))
    .orderBy(desc(webhookDeliveries.eventId))
    .limit(options.limit)
    .all()
    .map(toDelivery);
}
