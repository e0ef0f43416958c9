import { runBackground } from '../background.js';
import { eq, isNull } from 'drizzle-orm';
import { backoffCeiling } from '../../../shared/src/backoff.js';
import type { Logger } from '../../../shared/src/logger.js';
import { WebhookHeaders, type WebhookAttemptResult } from '../../../shared/src/webhook-api.js';
import type { Clock } from '../clock.js';
import type { WebhookDeliveryRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { DestinationGuard } from './destination.js';
import { enqueueDeliveries, type EnqueueCursors } from './enqueue.js';
import { laneHeads, markDead, refusedByReceiver } from './lanes.js';
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
  /**
   * After this many failed attempts (about three hours with the default backoff) a delivery is
   * given up and its lane's next one goes. When the last of them got no HTTP answer at all (refused,
   * unreachable, timed out), the endpoint counts as dead: every pending delivery is marked failed, and nothing more is queued
   * for it until `shoal webhook test` reaches it again.
   */
  maxAttempts?: number;
}

export type AttemptResult = WebhookAttemptResult;

export interface DispatcherDeps {
  store: Store;
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

export interface PostOutcome {
  /** HTTP status; null when no answer came (refused, timed out). */
  status: number | null;
  /** Why it does not count as delivered; null when it does. */
  error: string | null;
}

/**
 * One signed POST of a delivery's exact bytes; used by the dispatcher and by `shoal webhook test`.
 * Signed afresh per attempt (the timestamp is part of what is signed), so receivers can keep their
 * replay window short.
 */
export async function postDelivery(
  hook: { url: string; secret: string },
  delivery: { id: string; type: string; payload: string },
  options: { send: SendWebhook; now: number; timeoutMs: number; signal?: AbortSignal },
): Promise<PostOutcome> {
  let status: number | null = null;
  let error: string | null = null;
  const timestamp = Math.floor(options.now / 1000);
  try {
    const response = await options.send(hook.url, {
      headers: {
        'content-type': 'application/json',
        'user-agent': 'shoal-controller',
        [WebhookHeaders.signature]: webhookSignature(hook.secret, timestamp, delivery.payload),
        [WebhookHeaders.timestamp]: String(timestamp),
        [WebhookHeaders.delivery]: delivery.id,
        [WebhookHeaders.event]: delivery.type,
      },
      body: delivery.payload,
      signal: AbortSignal.any([...(options.signal ? [options.signal] : []), AbortSignal.timeout(options.timeoutMs)]),
    });
    status = response.status;
    // A redirect is not a delivery: the signed body must not follow it elsewhere (send never follows one).
    if (status < 200 || status > 299) error = `HTTP ${status}${response.text ? `: ${response.text}` : ''}`;
    if (error !== null && refusedByReceiver(status)) error = `refused by the receiver (not retried): ${error}`;
  } catch (caught) {
    error = describe(caught, options.timeoutMs);
  }
  return { status, error: error === null ? null : truncateError(error) };
}

export function backoffMs(options: Required<WebhookOptions>, failedAttempts: number): number {
  // No jitter: deliveries are spread by their own events, and an operator reads the next attempt's time.
  return backoffCeiling(failedAttempts - 1, { baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs });
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
 * Sends webhook deliveries from the database, one request at a time per endpoint.
 *
 * Ordering (docs: controller/README.md, "Webhooks"): each endpoint has one lane per rollout. Within
 * a lane events arrive in order, and a delivery that fails holds back the later ones of the same
 * rollout; lanes of other rollouts go on, so one rollout's halt is never stuck behind another
 * rollout's failing delivery. A receiver that answers 4xx (other than 408 and 429) refused that
 * body, and the same bytes will not fare better: that delivery is given up at once and its lane
 * moves on. Timeouts, refused connections and 5xx are retried with backoff, up to `maxAttempts`;
 * an endpoint that never answered in all that time is dead (see WebhookOptions.maxAttempts).
 *
 * Everything is in the deliveries table, so a restarted controller continues where this one
 * stopped (a delivery cut off by shutdown is sent again: at least once, deduplicate by
 * X-Shoal-Delivery).
 */
export class WebhookDispatcher {
  private readonly options: Required<WebhookOptions>;
  private readonly sending = new Map<string, Promise<void>>();
  /** Passes of wake() in progress: stop() waits for them, so none touches the store after it. */
  private readonly passes = new Set<Promise<void>>();
  /** Each endpoint's open gaps in the audit log between passes (enqueue.ts). */
  private readonly cursors: EnqueueCursors = new Map();
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
    this.timer = setInterval(() => this.wake(), this.options.pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  /** Enqueues new events and starts sending for every endpoint that is not already busy. */
  wake(): void {
    if (this.stopped) return;
    runBackground(this.deps.logger, 'webhook dispatch', () => {
      const pass = this.pass().finally(() => this.passes.delete(pass));
      this.passes.add(pass);
      return pass;
    });
  }

  private async pass(): Promise<void> {
    const { store } = this.deps;
    try {
      await enqueueDeliveries(store, this.deps.clock.now(), this.cursors);
    } catch (error) {
      this.deps.logger.error({ err: error }, 'webhook enqueue failed');
      return;
    }
    const { webhooks } = store.t;
    const live = await store.db.select({ id: webhooks.id }).from(webhooks).where(isNull(webhooks.deadSince));
    for (const { id } of live) {
      if (this.stopped) return;
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
    await Promise.allSettled([...this.passes]);
    await Promise.allSettled([...this.sending.values()]);
  }

  /** Sends the due head of every lane (one per rollout), oldest first, until no head is due. */
  private async drain(webhookId: string): Promise<void> {
    const { store, clock } = this.deps;
    const { webhooks } = store.t;
    while (!this.stopped) {
      const head = (await laneHeads(store, webhookId)).find((delivery) => delivery.nextAttemptAt <= clock.now());
      if (!head) return;
      const [hook] = await store.db.select({ url: webhooks.url, secret: webhooks.secret, deadSince: webhooks.deadSince }).from(webhooks).where(eq(webhooks.id, webhookId)).limit(1);
      if (!hook || hook.deadSince !== null) return;
      await this.attempt(hook, head);
    }
  }

  /** The POST happens outside any transaction; only its outcome is written, in one transaction. */
  private async attempt(hook: { url: string; secret: string }, delivery: WebhookDeliveryRow): Promise<void> {
    const { store, clock, logger } = this.deps;
    const { webhookDeliveries } = store.t;
    const send = this.deps.send ?? (this.network ??= guardedSend(this.deps.webhookDestinations));
    const { status, error } = await postDelivery(hook, delivery, { send, now: clock.now(), timeoutMs: this.options.timeoutMs, signal: this.shutdown.signal });
    if (this.stopped && status === null) return;
    const now = clock.now();
    const attempts = delivery.attempts + 1;
    const common = { attempts, lastAttemptAt: now, lastStatus: status, lastError: error };
    const record = (values: Partial<WebhookDeliveryRow>, deadReason?: string) =>
      store.transaction(async (tx) => {
        await tx.update(webhookDeliveries).set({ ...common, ...values }).where(eq(webhookDeliveries.id, delivery.id));
        if (deadReason !== undefined) await markDead(store, delivery.webhookId, now, deadReason);
      });
    let result: AttemptResult;
    if (error === null) {
      result = 'delivered';
      await record({ state: 'delivered', deliveredAt: now });
    } else if (status !== null && refusedByReceiver(status)) {
      result = 'failed';
      await record({ state: 'failed' });
      logger.warn({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error }, 'webhook delivery refused by the receiver; given up');
    } else if (attempts >= this.options.maxAttempts && status !== null) {
      // It answers, just not with success: this delivery is given up, and its lane's next one goes.
      result = 'failed';
      await record({ state: 'failed' });
      logger.warn({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error }, 'webhook delivery given up');
    } else if (attempts >= this.options.maxAttempts) {
      // Nothing answered for the whole backoff schedule (hours): the endpoint is dead.
      result = 'failed';
      await record({ state: 'failed' }, `${attempts} attempts failed, the last: ${error}`);
      logger.warn({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error }, 'webhook endpoint given up as dead; pending deliveries marked failed');
    } else {
      result = 'retry';
      const nextAttemptAt = now + backoffMs(this.options, attempts);
      await record({ nextAttemptAt });
      logger.info({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempts, error, retryInMs: nextAttemptAt - now }, 'webhook delivery failed; will retry');
    }
    this.deps.onAttempt?.(result);
  }
}
