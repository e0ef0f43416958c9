import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { DestinationGuard } from './destination.js';

/** How much of a receiver's answer is read: enough for an error message, never a memory hazard. */
export const MAX_RESPONSE_BYTES = 16 * 1024;

export interface WebhookRequest {
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

export interface WebhookResponse {
  status: number;
  /** At most MAX_RESPONSE_BYTES of the body, decoded as UTF-8. */
  text: string;
}

/** How the dispatcher sends one delivery; tests may replace the network. */
export type SendWebhook = (url: string, request: WebhookRequest) => Promise<WebhookResponse>;

/**
 * POSTs over node:http(s) with the guard's lookup, so the connection goes only to addresses the
 * guard accepted (fetch cannot pin what it resolves). Redirects are not followed: the signed body
 * must not be sent elsewhere.
 */
export function guardedSend(guard: DestinationGuard): SendWebhook {
  return (url, { headers, body, signal }) => {
    const target = new URL(url);
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0) {
      const checked = guard.check(host);
      if (!checked.ok) return Promise.reject(Object.assign(new Error(`refused destination: ${checked.message}`), { code: 'EDESTINATION' }));
    }
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<WebhookResponse>((resolve, reject) => {
      const fail = (error: unknown) => reject(signal.aborted ? signal.reason : error);
      const request = send(
        target,
        { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup: guard.lookup as never, signal, agent: false },
        (response: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const done = () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          response.on('data', (chunk: Buffer) => {
            if (size >= MAX_RESPONSE_BYTES) return;
            chunks.push(chunk.subarray(0, MAX_RESPONSE_BYTES - size));
            size += chunk.length;
            if (size >= MAX_RESPONSE_BYTES) {
              done();
              response.destroy();
            }
          });
          response.on('end', done);
          response.on('error', fail);
        },
      );
      request.on('error', fail);
      request.end(body);
    });
  };
}
