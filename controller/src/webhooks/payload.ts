import { rolloutEventText } from '../../../shared/src/event-text.js';
import type { WebhookEventType, WebhookPayload } from '../../../shared/src/webhook-api.js';
import { iso } from '../clock.js';
import type { EventRow } from '../db/schema.js';

/** The body of a delivery, built once when it is enqueued and stored as sent (retries resend the same bytes). */
export function webhookPayload(event: EventRow, release: string | null): string {
  const at = iso(event.at);
  const payload: WebhookPayload = {
    id: event.id,
    type: event.kind as WebhookEventType,
    at,
    // One line for chat tools: "Shoal rollout ro-1a2b (release v42): halted: 1 host(s) failed; …"
    text: `Shoal rollout ${event.rolloutId!}${release ? ` (release ${release})` : ''}: ${rolloutEventText({ id: event.id, host: event.host, rolloutId: event.rolloutId, at, kind: event.kind as WebhookEventType, actor: event.actor, data: event.data })}`,
    rollout: { id: event.rolloutId!, release },
    host: event.host,
    data: event.data,
  };
  return JSON.stringify(payload);
}
