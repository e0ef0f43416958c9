import type { WebhookEventType, WebhookPayload } from '../../../shared/src/webhook-api.js';
import { iso } from '../clock.js';
import type { EventRow } from '../db/schema.js';

/** The body of a delivery, built once when it is enqueued and stored as sent (retries resend the same bytes). */
export function webhookPayload(event: EventRow, release: string | null): string {
  const payload: WebhookPayload = {
    id: event.id,
    type: event.kind as WebhookEventType,
    at: iso(event.at),
    rollout: { id: event.rolloutId!, release },
    host: event.host,
    data: event.data,
  };
  return JSON.stringify(payload);
}
