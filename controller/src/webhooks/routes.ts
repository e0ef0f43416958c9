import { Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { randomBytes } from 'node:crypto';
import { CreateWebhookRequest, WebhookDeliveryState, type WebhookDeliveries, type WebhookList, type WebhookPing, type WebhookTestResult } from '../../../shared/src/webhook-api.js';
import type { OperatorIdentity } from '../auth/operator-tokens.js';
import type { ControllerDeps } from '../deps.js';
import { ApiError } from '../http/errors.js';
import { readBody } from '../http/request.js';
import { iso } from '../clock.js';
import { postDelivery, WEBHOOK_DEFAULTS } from './dispatcher.js';
import { guardedSend } from './send.js';
import { revive } from './lanes.js';
import { createWebhook, deleteWebhook, listDeliveries, listWebhooks, readWebhook, webhookSecret } from './endpoints.js';

type OperatorEnv = { Variables: { operator: OperatorIdentity } };

const DeliveryQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  beforeEventId: z.coerce.number().int().positive().optional(),
  state: WebhookDeliveryState.optional(),
});

/**
 * Refuses a URL whose host is (or resolves to) a forbidden address. A name that does not resolve
 * now is accepted: every delivery checks again at connection time, which is what counts.
 */
async function refuseForbiddenDestination(deps: Pick<ControllerDeps, 'webhookDestinations' | 'logger'>, url: string): Promise<void> {
  let checked;
  try {
    checked = await deps.webhookDestinations.checkUrl(url);
  } catch (error) {
    deps.logger.warn({ origin: new URL(url).origin, err: (error as Error).message }, 'webhook host does not resolve now; deliveries will check it again');
    return;
  }
  if (!checked.ok) throw new ApiError(400, 'forbidden-destination', `webhook url ${new URL(url).origin}: ${checked.message}`);
}

function unknownWebhook(id: string): ApiError {
  return new ApiError(404, 'unknown-webhook', `no webhook with id ${JSON.stringify(id)}`);
}

/** POST/GET/DELETE /webhooks and GET /webhooks/:id/deliveries, mounted at /v1 behind the operator guard. */
export function webhookRoutes(deps: Pick<ControllerDeps, 'store' | 'clock' | 'logger' | 'webhookDestinations'>, guard: MiddlewareHandler<OperatorEnv>[]) {
  const { store, clock } = deps;
  const app = new Hono<OperatorEnv>();
  for (const path of ['/webhooks', '/webhooks/*']) app.use(path, ...guard);

  app.post('/webhooks', async (c) => {
    const request = await readBody(c, CreateWebhookRequest);
    await refuseForbiddenDestination(deps, request.url);
    const operator = c.get('operator').name;
    const created = await createWebhook(store, clock, request, `operator:${operator}`);
    // Only the origin: chat-service webhook URLs carry their credential in the path.
    deps.logger.info({ webhookId: created.id, origin: new URL(created.url).origin, events: created.events, operator }, 'webhook created');
    return c.json(created, 201);
  });

  app.get('/webhooks', async (c) => c.json({ webhooks: await listWebhooks(store) } satisfies WebhookList));

  app.get('/webhooks/:id', async (c) => {
    const found = await readWebhook(store, c.req.param('id'));
    if (!found) throw unknownWebhook(c.req.param('id'));
    return c.json(found);
  });

  app.delete('/webhooks/:id', async (c) => {
    const id = c.req.param('id');
    if (!(await deleteWebhook(store, id))) throw unknownWebhook(id);
    deps.logger.info({ webhookId: id, operator: c.get('operator').name }, 'webhook deleted');
    return c.body(null, 204);
  });

  // Sends a signed ping now and answers how it went; a dead endpoint that answers is brought back.
  app.post('/webhooks/:id/test', async (c) => {
    const id = c.req.param('id');
    const found = await readWebhook(store, id);
    const hook = found ? await webhookSecret(store, id) : null;
    if (!found || !hook) throw unknownWebhook(id);
    const ping: WebhookPing = { type: 'ping', at: iso(clock.now()), webhookId: id, text: `Shoal webhook ${id} test: this endpoint receives Shoal rollout events.` };
    const outcome = await postDelivery(hook, { id: `whd-test-${randomBytes(8).toString('hex')}`, type: 'ping', payload: JSON.stringify(ping) }, { send: guardedSend(deps.webhookDestinations), now: clock.now(), timeoutMs: WEBHOOK_DEFAULTS.timeoutMs });
    const delivered = outcome.error === null;
    const revived = delivered && found.state === 'dead';
    if (revived) await revive(store, id);
    deps.logger.info({ webhookId: id, delivered, status: outcome.status, revived, operator: c.get('operator').name }, 'webhook tested');
    return c.json({ delivered, status: outcome.status, error: outcome.error, revived } satisfies WebhookTestResult);
  });

  app.get('/webhooks/:id/deliveries', async (c) => {
    const id = c.req.param('id');
    if (!(await readWebhook(store, id))) throw unknownWebhook(id);
    const query = DeliveryQuery.parse(c.req.query());
    return c.json({ deliveries: await listDeliveries(store, id, query) } satisfies WebhookDeliveries);
  });

  return app;
}
