import * as z from 'zod';
import { RolloutEventKind } from './operator-api.js';
import { HostName, IsoTime } from './protocol.js';

/** Webhooks over the operator API, and the body every delivery carries. */

/** Rollout audit events an endpoint may subscribe to (the event kinds of the audit log). */
export const WebhookEventType = RolloutEventKind;
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/** What an endpoint gets when it names no events: everything but the per-host issued/healthy chatter. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEventType[] = WebhookEventType.options.filter(
  (type) => type !== 'rollout-host-issued' && type !== 'rollout-host-healthy',
);

export const WebhookHeaders = {
  /** `sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>", keyed with the endpoint's secret>` */
  signature: 'X-Shoal-Signature',
  /** Unix seconds when this attempt was sent; signed with the body, so receivers can refuse old (replayed) requests. */
  timestamp: 'X-Shoal-Timestamp',
  /** Unique per delivery; the same on every retry of it (receivers deduplicate with it). */
  delivery: 'X-Shoal-Delivery',
  event: 'X-Shoal-Event',
} as const;

export const CreateWebhookRequest = z
  .object({
    url: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }),
    /** Generated (and returned once) when absent. */
    secret: z.string().min(16, 'must be at least 16 characters').max(256).optional(),
    /** `["*"]` for every type; absent for DEFAULT_WEBHOOK_EVENTS. */
    events: z.array(z.union([WebhookEventType, z.literal('*')])).min(1).optional(),
    description: z.string().max(200).default(''),
  })
  .strict();
export type CreateWebhookRequest = z.infer<typeof CreateWebhookRequest>;

export const WebhookSummary = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(WebhookEventType),
  description: z.string(),
  createdAt: IsoTime,
  createdBy: z.string(),
  pending: z.number().int(),
  failed: z.number().int(),
  /** 'dead': given up after hours without an answer; nothing is sent or queued until a test reaches it. */
  state: z.enum(['active', 'dead']).default('active'),
  deadSince: IsoTime.nullable().default(null),
  deadReason: z.string().nullable().default(null),
});
export type WebhookSummary = z.infer<typeof WebhookSummary>;

/** The create answer is the only place the secret is ever shown. */
export const WebhookCreated = WebhookSummary.extend({ secret: z.string() });
export type WebhookCreated = z.infer<typeof WebhookCreated>;

export const WebhookList = z.object({ webhooks: z.array(WebhookSummary) });
export type WebhookList = z.infer<typeof WebhookList>;

export const WebhookDeliveryState = z.enum(['pending', 'delivered', 'failed']);
export type WebhookDeliveryState = z.infer<typeof WebhookDeliveryState>;

/** What one delivery attempt came to (the metrics' `result` label): failed = given up. */
export const WebhookAttemptResult = z.enum(['delivered', 'retry', 'failed']);
export type WebhookAttemptResult = z.infer<typeof WebhookAttemptResult>;

export const WebhookDelivery = z.object({
  id: z.string(),
  webhookId: z.string(),
  eventId: z.number().int(),
  type: WebhookEventType,
  state: WebhookDeliveryState,
  attempts: z.number().int(),
  nextAttemptAt: IsoTime.nullable(),
  lastAttemptAt: IsoTime.nullable(),
  /** HTTP status of the last attempt; null when it got no answer (refused, timed out). */
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  deliveredAt: IsoTime.nullable(),
  createdAt: IsoTime,
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveries = z.object({ deliveries: z.array(WebhookDelivery) });
export type WebhookDeliveries = z.infer<typeof WebhookDeliveries>;

/** The JSON body of a delivery. */
export const WebhookPayload = z.object({
  /**
   * The event as one line for people. Chat tools take it as is: Slack and Mattermost incoming
   * webhooks, Matrix (hookshot generic webhooks) and Discord (its `/slack` webhook URL) post `text`.
   */
  text: z.string(),
  /** The audit event's id: increasing, the same for every endpoint. */
  id: z.number().int(),
  type: WebhookEventType,
  at: IsoTime,
  rollout: z.object({ id: z.string(), release: z.string().nullable() }),
  host: HostName.nullable(),
  data: z.record(z.string(), z.unknown()),
});
export type WebhookPayload = z.infer<typeof WebhookPayload>;

/** What `POST /v1/webhooks/:id/test` answers: whether a signed `ping` reached the endpoint. */
export const WebhookTestResult = z.object({
  delivered: z.boolean(),
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  /** True when the endpoint was dead and this test brought it back. */
  revived: z.boolean(),
});
export type WebhookTestResult = z.infer<typeof WebhookTestResult>;

/** The body of a test delivery (X-Shoal-Event: ping); not an audit event, so no id or rollout. */
export interface WebhookPing {
  type: 'ping';
  at: string;
  webhookId: string;
  text: string;
}

export const WebhookRoutes = {
  webhooks: '/v1/webhooks',
  webhook: (id: string) => `/v1/webhooks/${encodeURIComponent(id)}`,
  deliveries: (id: string) => `/v1/webhooks/${encodeURIComponent(id)}/deliveries`,
  test: (id: string) => `/v1/webhooks/${encodeURIComponent(id)}/test`,
} as const;
