import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { WebhookCreated, WebhookDeliveries, WebhookPayload } from '../../../shared/src/webhook-api.js';
import { liveController } from '../server-helpers.js';
import { testDatabase } from '../test-engine.js';
import { Fleet } from './fleet.js';
import { Receiver } from './receiver.js';

const LOOPBACK_ALLOWED = { allowPrivateNetworks: false, allowedNetworks: ['127.0.0.1'] };
const FAST = { pollIntervalMs: 20, backoffBaseMs: 30, backoffMaxMs: 60, timeoutMs: 2000 };
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

it('continues pending deliveries after a controller restart, in order, sending no event twice', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-webhook-restart-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const database = await testDatabase(dir);
  cleanup.push(() => database.release());
  const dbFile = database.database;
  const receiver = await Receiver.start();
  cleanup.push(() => receiver.close());
  receiver.respond = () => 503;

  const first = await liveController({ dbFile, webhooks: FAST, rolloutTickMs: 20, webhookDestinations: LOOPBACK_ALLOWED });
  const fleet = await Fleet.start(first, ['h1', 'h2']);
  const hook = (await (await fleet.operator('POST', '/v1/webhooks', { url: receiver.url, secret: 'restart-secret-0123' })).json()) as WebhookCreated;
  const id = await fleet.startRollout({ canary: 1, waves: ['100%'] });
  await expect.poll(() => receiver.requests.length).toBeGreaterThanOrEqual(2);
  await first.close();
  const refusedBefore = receiver.requests.length;

  // The endpoint recovers while the controller is down; the next controller sends what is owed, then what is new.
  receiver.respond = () => 200;
  const second = await liveController({ dbFile, webhooks: FAST, rolloutTickMs: 20, webhookDestinations: LOOPBACK_ALLOWED });
  cleanup.push(() => second.close());
  const operator = (method: string, path: string) =>
    fetch(`${second.handle.url}${path}`, { method, headers: { authorization: `Bearer ${second.operatorToken}` } });
  expect((await operator('POST', `/v1/rollouts/${id}/abort`)).status).toBe(200);

  const expected = ['rollout-started', 'rollout-wave-started', 'rollout-aborted'];
  await expect.poll(() => receiver.accepted.length, { timeout: 5000 }).toBe(expected.length);
  // Everything before the restart was refused, and each refused attempt was of the first event.
  expect(receiver.requests.slice(0, refusedBefore).every((r) => r.status === 503 && JSON.parse(r.body).type === 'rollout-started')).toBe(true);
  const payloads = receiver.accepted.map((r) => JSON.parse(r.body) as WebhookPayload);
  expect(payloads.map((p) => p.type)).toEqual(expected);
  expect(new Set(payloads.map((p) => p.id)).size).toBe(3);
  // A later event, delivered: a duplicate owed from before the restart is older, so it would have been sent first.
  const again = await fetch(`${second.handle.url}/v1/rollouts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${second.operatorToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ release: 'rel-1', canary: 1, waves: ['100%'] }),
  });
  expect(again.status).toBe(201);
  const next = ((await again.json()) as { id: string }).id;
  await expect.poll(() => receiver.accepted.length, { timeout: 5000 }).toBeGreaterThanOrEqual(4);
  const all = receiver.accepted.map((r) => JSON.parse(r.body) as WebhookPayload);
  expect(all.slice(0, 3)).toEqual(payloads);
  expect(all.slice(3).map((p) => p.rollout.id)).toEqual(all.slice(3).map(() => next));

  const deliveries = ((await (await operator('GET', `/v1/webhooks/${hook.id}/deliveries`)).json()) as WebhookDeliveries).deliveries.reverse().slice(0, 3);
  expect(deliveries.map((d) => d.state)).toEqual(['delivered', 'delivered', 'delivered']);
  // An attempt cut off by the shutdown is not counted, though the receiver may have seen it.
  expect(deliveries[0]!.attempts).toBeGreaterThanOrEqual(refusedBefore);
  expect(deliveries[0]!.attempts).toBeLessThanOrEqual(refusedBefore + 1);
});
