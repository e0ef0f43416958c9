import { createHmac, randomBytes } from 'node:crypto';

/**
 * `sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` (the exact body bytes), keyed with the
 * endpoint's secret. The timestamp (unix seconds, also sent as X-Shoal-Timestamp) is inside the
 * MAC, so a receiver that refuses old timestamps cannot be fed a captured request again.
 */
export function webhookSignature(secret: string, timestampSeconds: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest('hex')}`;
}

export function generateWebhookSecret(): string {
  return randomBytes(32).toString('base64url');
}
