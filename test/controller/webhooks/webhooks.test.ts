import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { RolloutStatus } from '../../../shared/src/rollout-api.js';
import type { WebhookCreated, WebhookDeliveries, WebhookList, WebhookPayload } from '../../../shared/src/webhook-api.js';
import type { WebhookOptions } from '../../../controller/src/webhooks/dispatcher.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { Fleet } from './fleet.js';
import { Receiver, type Received } from './receiver.js';

const SECRET = 'test-secret-0123456789';
const LOOPBACK_ALLOWED = { allowPrivateNetworks: false, allowedNetworks: ['127.0.0.0/8'] };
const FAST = { pollIntervalMs: 20, backoffBaseMs: 50, backoffMaxMs: 200, timeoutMs: 2000 };

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(webhooks: WebhookOptions = FAST): Promise<{ controller: LiveController; receiver: Receiver }> {
  const receiver = await Receiver.start();
  cleanup.push(() => receiver.close());
  // The receiver is on loopback: allowed here as an operator would allow it in the config.
  const controller = await liveController({ webhooks, rolloutTickMs: 20, webhookDestinations: LOOPBACK_ALLOWED });
  cleanup.push(() => controller.close());
  return { controller, receiver };
}

async function createWebhook(fleet: Fleet, body: Record<string, unknown>): Promise<WebhookCreated> {
  const response = await fleet.operator('POST', '/v1/webhooks', body);
  expect(response.status).toBe(201);
  return (await response.json()) as WebhookCreated;
}

/** Verifies the way a receiver should: HMAC over "timestamp.body", compared in constant time, timestamp recent. */
function verified(request: Received, secret: string): WebhookPayload {
  const header = String(request.headers['x-shoal-signature']);
  expect(header).toMatch(/^sha256=[0-9a-f]{64}$/);
  const timestamp = String(request.headers['x-shoal-timestamp']);
  expect(timestamp).toMatch(/^\d+$/);
  expect(Math.abs(Date.now() / 1000 - Number(timestamp))).toBeLessThan(300);
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex')}`);
  expect(timingSafeEqual(Buffer.from(header), expected), 'signature verifies').toBe(true);
  const payload = JSON.parse(request.body) as WebhookPayload;
  expect(request.headers['x-shoal-event']).toBe(payload.type);
  expect(request.headers['content-type']).toBe('application/json');
  return payload;
}

async function waitForState(fleet: Fleet, id: string, state: string): Promise<void> {
  await expect
    .poll(async () => ((await (await fleet.operator('GET', `/v1/rollouts/${id}`)).json()) as RolloutStatus).state, { timeout: 5000 })
    .toBe(state);
}

describe('webhooks', () => {
  it('delivers signed rollout events in order, from start through approval and bakes to success, filtered per endpoint', async () => {
    const { controller, receiver } = await setup();
    const fleet = await Fleet.start(controller, ['h1', 'h2', 'h3']);
    const all = await createWebhook(fleet, { url: receiver.url, secret: SECRET });
    const onlyEnd = await createWebhook(fleet, { url: receiver.url.replace('/hook', '/end'), secret: SECRET, events: ['rollout-succeeded'] });

    const id = await fleet.startRollout({ canary: 1, waves: ['100%'], bakeSeconds: 0.2, approvalBefore: [1] });
    expect(await fleet.answer(() => 'healthy')).toHaveLength(1);
    await waitForState(fleet, id, 'waiting-approval');
    expect((await fleet.operator('POST', `/v1/rollouts/${id}/approve`)).status).toBe(200);
    expect(await fleet.answer(() => 'healthy')).toHaveLength(2);
    await waitForState(fleet, id, 'succeeded');

    const expected = [
      'rollout-started',
      'rollout-wave-started',
      'rollout-wave-baking',
      'rollout-waiting-approval',
      'rollout-approved',
      'rollout-wave-started',
      'rollout-wave-baking',
      'rollout-succeeded',
    ];
    await expect.poll(() => receiver.requests.length, { timeout: 5000 }).toBe(expected.length + 1);
    const toEnd = receiver.requests.filter((r) => r.path === '/end');
    expect(toEnd.map((r) => verified(r, SECRET).type)).toEqual(['rollout-succeeded']);

    const deliveries = async (hook: string) =>
      ((await (await fleet.operator('GET', `/v1/webhooks/${hook}/deliveries`)).json()) as WebhookDeliveries).deliveries;
    const mainDeliveries = (await deliveries(all.id)).reverse();
    expect(mainDeliveries.map((d) => d.type)).toEqual(expected);
    expect(mainDeliveries.every((d) => d.state === 'delivered' && d.attempts === 1 && d.lastStatus === 200)).toBe(true);
    const endDeliveries = await deliveries(onlyEnd.id);
    expect(endDeliveries.map((d) => d.type)).toEqual(['rollout-succeeded']);

    // What arrived at the main endpoint, by delivery id, in arrival order.
    const toMain = receiver.requests.filter((r) => r.path === '/hook');
    expect(toMain.map((r) => r.headers['x-shoal-delivery'])).toEqual(mainDeliveries.map((d) => d.id));
    const arrived = toMain.map((r) => verified(r, SECRET));
    expect(arrived.map((p) => p.type)).toEqual(expected);
    const eventIds = arrived.map((p) => p.id);
    expect([...eventIds].sort((a, b) => a - b)).toEqual(eventIds);
    expect(new Set(eventIds).size).toBe(eventIds.length);
    for (const payload of arrived) {
      expect(payload.rollout).toEqual({ id, release: 'rel-1' });
      expect(payload.host).toBeNull();
      expect(Number.isNaN(Date.parse(payload.at))).toBe(false);
    }
    expect(arrived[0]!.data).toMatchObject({ release: 'rel-1', waves: [1, 2] });
    expect(arrived[4]!.data).toMatchObject({ actor: 'operator:test-admin', wave: 2 });
    // The chat text counts waves as people do, with the total, and names the canary as such.
    const text = (i: number) => String(arrived[i]!.text).replace(/^Shoal rollout \S+ \(release rel-1\): /, '');
    expect(text(1)).toBe('canary (wave 1 of 2) started: 1 host');
    expect(text(3)).toBe('wave 2 of 2 waits for approval');
    expect(text(5)).toBe('wave 2 of 2 started: 2 hosts');
  });

  it('retries a delivery the receiver answered 500, with the same id and body, and holds later events back until it succeeds', async () => {
    const { controller, receiver } = await setup();
    const fleet = await Fleet.start(controller, ['h1', 'h2', 'h3']);
    const hook = await createWebhook(fleet, { url: receiver.url, secret: SECRET });
    receiver.respond = ({ index }) => (index < 2 ? 500 : 200);

    const id = await fleet.startRollout({ canary: 1, waves: ['100%'] });
    const [canary] = await fleet.answer(() => 'rolled-back');
    await waitForState(fleet, id, 'halted');

    const expected = ['rollout-started', 'rollout-wave-started', 'rollout-host-failed', 'rollout-halted'];
    await expect.poll(() => receiver.accepted.length, { timeout: 5000 }).toBe(expected.length);
    // The first three requests are the same delivery: two refused, then accepted; only then the rest.
    const [first, second, third] = receiver.requests;
    expect([first!.status, second!.status, third!.status]).toEqual([500, 500, 200]);
    expect(new Set([first, second, third].map((r) => r!.headers['x-shoal-delivery'])).size).toBe(1);
    expect(second!.body).toBe(first!.body);
    expect(third!.body).toBe(first!.body);
    expect(receiver.requests).toHaveLength(expected.length + 2);

    const arrived = receiver.accepted.map((r) => verified(r, SECRET));
    expect(arrived.map((p) => p.type)).toEqual(expected);
    expect(arrived[2]).toMatchObject({ host: canary, data: { wave: 1 } });
    expect(String(arrived[2]!.data.reason)).toContain('health check web failed');
    expect(String(arrived[3]!.data.reason)).toContain('1 host(s) failed');

    const deliveries = ((await (await fleet.operator('GET', `/v1/webhooks/${hook.id}/deliveries`)).json()) as WebhookDeliveries).deliveries.reverse();
    expect(deliveries.map((d) => [d.type, d.state, d.attempts])).toEqual([
      ['rollout-started', 'delivered', 3],
      ['rollout-wave-started', 'delivered', 1],
      ['rollout-host-failed', 'delivered', 1],
      ['rollout-halted', 'delivered', 1],
    ]);
    expect(deliveries[0]).toMatchObject({ lastStatus: 200, lastError: null });
    expect(deliveries[0]!.id).toBe(first!.headers['x-shoal-delivery']);

    const metrics = await (await fetch(`${controller.handle.url}/metrics`)).text();
    expect(metrics).toContain('shoal_webhook_attempts_total{result="retry"} 2');
    expect(metrics).toContain('shoal_webhook_attempts_total{result="delivered"} 4');
  });

  it('backs off between attempts and gives a delivery up after the last one, then sends the next', async () => {
    const { controller, receiver } = await setup({ ...FAST, backoffBaseMs: 100, backoffMaxMs: 1000, maxAttempts: 3 });
    const fleet = await Fleet.start(controller, ['h1']);
    const hook = await createWebhook(fleet, { url: receiver.url, secret: SECRET });
    const arrivals: number[] = [];
    receiver.respond = ({ body }) => {
      arrivals.push(Date.now());
      return JSON.parse(body).type === 'rollout-started' ? 500 : 200;
    };
    await fleet.startRollout({ waves: ['100%'] });

    await expect.poll(() => receiver.accepted.length, { timeout: 5000 }).toBe(1);
    expect(receiver.requests.map((r) => [JSON.parse(r.body).type, r.status])).toEqual([
      ['rollout-started', 500],
      ['rollout-started', 500],
      ['rollout-started', 500],
      ['rollout-wave-started', 200],
    ]);
    // 100 ms after the first failure, 200 ms after the second.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(100);
    expect(arrivals[2]! - arrivals[1]!).toBeGreaterThanOrEqual(200);

    const deliveries = ((await (await fleet.operator('GET', `/v1/webhooks/${hook.id}/deliveries?state=failed`)).json()) as WebhookDeliveries).deliveries;
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ type: 'rollout-started', state: 'failed', attempts: 3, lastStatus: 500, nextAttemptAt: null });
    expect(deliveries[0]!.lastError).toBe('HTTP 500: receiver is having a bad day');
    const listed = (await (await fleet.operator('GET', `/v1/webhooks/${hook.id}`)).json()) as { failed: number; pending: number };
    expect(listed).toMatchObject({ failed: 1, pending: 0 });
  });
});
