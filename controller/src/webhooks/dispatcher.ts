import { runBackground } from '../background.js';
import { and, asc, eq } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import { WebhookHeaders } from '../../../shared/src/webhook-api.js';
import type { Clock } from '../clock.js';
import type { Db } from '../db/open.js';
import { webhookDeliveries, webhooks, type WebhookDeliveryRow } from '../db/schema.js';
import type { DestinationGuard } from './destination.js';
import { enqueueDeliveries } from './enqueue.js';
import { guardedSend, type SendWebhook } from './send.js';
import { webhookSignature } from './sign.js';

export interface WebhookOptions {
  /** How often new audit events are looked for and due retries sent (rollout changes also wake it at once). */
  pollIntervalMs?: number;
  /** Per attempt; a receiver slower than this counts as failed. */
  timeoutMs?: number;
  /** The wait after the first failure; it doubles after each further one, up to backoffMaxMs. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** After this many failed attempts a delivery is marked failed, and the endpoint's next one goes. */
  maxAttempts?: number;
}

export type AttemptResult = 'delivered' | 'retry' | 'failed';

export interface DispatcherDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** Which addresses deliveries may connect to (checked at every attempt, after resolution). */
  webhookDestinations: DestinationGuard;
  /** Tests may replace the network; default: guardedSend(webhookDestinations). */
  send?: SendWebhook;
  onAttempt?: (result: AttemptResult) => void;
}

export const WEBHOOK_DEFAULTS: Required<WebhookOptions> = {
  pollIntervalMs: 1000,
  timeoutMs: 10_000,
  backoffBaseMs: 1000,
  backoffMaxMs: 3600_000,
  maxAttempts: 15,
};

export function backoffMs(options: Required<WebhookOptions>, failedAttempts: number): number {
  return Math.min(options.backoffBaseMs * 2 ** Math.max(0, failedAttempts - 1), options.backoffMaxMs);
}

/** What operators see of a failed attempt (API, dashboard): the receiver's words, cut short. */
export const MAX_ERROR_CHARS = 300;

export function truncateError(text: string): string {
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS)}… (truncated, ${text.length} characters)`;
}

function describe(error: unknown, timeoutMs: number): string {
  const e = error as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = e.cause?.code ?? e.cause?.message ?? (e.code && !e.message.includes(e.code) ? e.code : undefined);
  return cause ? `${e.message}: ${cause}` : e.message;
}

/**
 * Sends webhook deliveries from the database: per endpoint one at a time, oldest event first, so an
 * endpoint sees a rollout's events in order; a failed delivery holds back the later ones of its
 * endpoint until it succeeds or is given up. Everything is in the deliveries table, so a restarted
 * controller continues where this one stopped (a delivery cut off by shutdown is sent again: at
 * least once, deduplicate by X-Shoal-Delivery).
 */
export class WebhookDispatcher {
  private readonly options: Required<WebhookOptions>;
  private readonly sending = new Map<string, Promise<void>>();
  private readonly shutdown = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private network: SendWebhook | null = null;

  constructor(
    private readonly deps: DispatcherDeps,
    options: WebhookOptions = {},
  ) {
    this.options = { ...WEBHOOK_DEFAULTS, ...options };
  }

  start(): void {
    this.timer = setInterval(() => runBackground(this.deps.logger, 'webhook dispatch', () => this.wake()), this.options.pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  /** Enqueues new events and starts sending for every endpoint that is not already busy. */
  wake(): void {
    if (this.stopped) return;
    try {
      enqueueDeliveries(this.deps.db, this.deps.clock.now());
    } catch (error) {
      this.deps.logger.error({ err: error }, 'webhook enqueue failed');
      return;
    }
    for (const { id } of this.deps.db.select({ id: webhooks.id }).from(webhooks).all()) {
      if (this.sending.has(id)) continue;
      const run = this.drain(id)
        .catch((error: unknown) => this.deps.logger.error({ err: error, webhookId: id }, 'webhook delivery failed unexpectedly'))
        .finally(() => this.sending.delete(id));
      this.sending.set(id, run);
    }
  }

  /** Stops sending; an attempt in flight is cut off and stays pending. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.shutdown.abort();
    await Promise.allSettled([...this.sending.values()]);
  }

  private async drain(webhookId: string): Promise<void> {
    const { db, clock } = this.deps;
    while (!this.stopped) {
      const head = db
        .select()
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.state, 'pending')))
        .orderBy(asc(webhookDeliveries.eventId))
        .limit(1)
        .get();
      if (!head || head.nextAttemptAt > clock.now()) return;
      const hook = db.select({ url: webhooks.url, secret: webhooks.secret }).from(webhooks).where(eq(webhooks.id, webhookId)).get();
      if (!hook) return;
      await this.attempt(hook, head);
    }
  }

  private async attempt(hook: { url: string; secret: string }, delivery: WebhookDeliveryRow): Promise<void> {
    const { db, clock, logger } = this.deps;
    const send = this.deps.send ?? (this.network ??= guardedSend(this.deps.webhookDestinations));
    let status: number | null = null;
    let error: string | null = null;
    // Per attempt: a retry is a new request, signed afresh, so receivers' replay windows can be short.
    const timestamp = Math.floor(clock.now() / 1000);
    try {
      const response = await send(hook.url, {
        headers: {
          'content-type': 'application/json',
          'user-agent': 'shoal-controller',
          [WebhookHeaders.signature]: webhookSignature(hook.secret, timestamp, delivery.payload),
          [WebhookHeaders.timestamp]: String(timestamp),
          [WebhookHeaders.delivery]: delivery.id,
          [WebhookHeaders.event]: delivery.type,
        },
        body: delivery.payload,
        signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.options.timeoutMs)]),
      });
      status = response.status;
      // A redirect is not a delivery: the signed body must not follow it elsewhere (it is not followed).
      if (status < 200 || status > 299) error = truncateError(`HTTP ${status}${response.text ? `: ${response.text}` : ''}`);
    } catch (caught) {
      if (this.stopped) return;
      error = truncateError(describe(caught, this.options.timeoutMs));
    }
    const now = clock.now();
    const attempts = delivery.attempts + 1;
    const common = { attempts, lastAttemptAt: now, lastStatus: status, lastError: error };
    let result: AttemptResult;
    if (error === null) {
      result = 'delivered';
      db.update(webhookDeliveries).set({ ...common, state: 'delivered', deliveredAt: now }).where(eq(webhookDeliveries.id, delivery.id)).run();
    } else if (attempts >= this.options.maxAttempts) {
      result = 'failed';
      db.update(webhookDeliveries).set({ ...common, state: 'failed' }).where(eq(webhookDeliveries.id, delivery.id)).run();
      logger.warn({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error }, 'webhook delivery given up');
    } else {
      result = 'retry';
      const nextAttemptAt = now + backoffMs(this.options, attempts);
      db.update(webhookDeliveries).set({ ...common, nextAttemptAt }).where(eq(webhookDeliveries.id, delivery.id)).run();
      logger.info({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error, retryInMs: nextAttemptAt - now }, 'webhook delivery failed; will retry');
    }
    this.deps.onAttempt?.(result);
  }
}
