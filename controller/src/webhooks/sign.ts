import { createHmac, randomBytes } from 'node:crypto';

/** `sha256=<hex>`: HMAC-SHA256 of the exact body bytes, keyed with the endpoint's secret (GitHub's scheme). */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

export function generateWebhookSecret(): string {
  return randomBytes(32).toString('base64url');
}
