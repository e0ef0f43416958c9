import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../controller/src/cli/run.js';
import type { WebhookCreated, WebhookDeliveries, WebhookList, WebhookPayload } from '../../../shared/src/webhook-api.js';
import type { WebhookOptions } from '../../../controller/src/webhooks/dispatcher.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { Fleet, NEW } from './fleet.js';
import { Receiver } from './receiver.js';

const FAST = { pollIntervalMs: 20, backoffBaseMs: 50, backoffMaxMs: 200, timeoutMs: 2000 };
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** The receivers listen on loopback, which webhooks may reach only when the controller allows it. */
const LOOPBACK_ALLOWED = { allowPrivateNetworks: false, allowedNetworks: ['127.0.0.0/8'] };

async function controller(webhooks: WebhookOptions = FAST): Promise<LiveController> {
  const live = await liveController({ webhooks, rolloutTickMs: 20, webhookDestinations: LOOPBACK_ALLOWED });
  cleanup.push(() => live.close());
  return live;
}

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

/** A rollout of release `name` over `hosts` alone; returns its id. */
async function rollout(fleet: Fleet, name: string, hosts: string[]): Promise<string> {
  expect((await fleet.operator('POST', '/v1/releases', { name, hosts: hosts.map((host) => ({ host, storePath: NEW(host) })) })).status).toBe(201);
  const started = await fleet.operator('POST', '/v1/rollouts', { release: name, waves: ['100%'] });
  expect(started.status).toBe(201);
  return (await json<{ id: string }>(started)).id;
}

async function shoal(live: LiveController, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const env = { SHOAL_CONTROLLER: live.handle.url, SHOAL_TOKEN: live.operatorToken, TZ: 'UTC' };
  const code = await runCli(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), fetch });
  return { code, stdout, stderr };
}

describe('webhook delivery order', () => {
  it('keeps a lane per rollout: a rollout whose delivery keeps failing holds back only its own events', async () => {
    const live = await controller();
    const receiver = await Receiver.start();
    cleanup.push(() => receiver.close());
    const fleet = await Fleet.start(live, ['h1', 'h2']);
    const hook = await json<WebhookCreated>(await fleet.operator('POST', '/v1/webhooks', { url: receiver.url, secret: 'lanes-secret-0123456' }));
    // Known before the rollout starts (its id is not): every delivery of release a's rollout fails.
    receiver.respond = ({ body }) => ((JSON.parse(body) as WebhookPayload).rollout.release === 'a' ? 503 : 200);
    await rollout(fleet, 'a', ['h1']);
    const other = await rollout(fleet, 'b', ['h2']);
    expect((await fleet.operator('POST', `/v1/rollouts/${other}/abort`)).status).toBe(200);

    // The other rollout's events arrive, in order, while the first one's head is still being retried.
    await expect.poll(() => receiver.accepted.map((r) => (JSON.parse(r.body) as WebhookPayload).type), { timeout: 5000 }).toEqual([
      'rollout-started',
      'rollout-wave-started',
      'rollout-aborted',
    ]);
    const payloads = receiver.accepted.map((r) => JSON.parse(r.body) as WebhookPayload);
    expect(new Set(payloads.map((p) => p.rollout.id))).toEqual(new Set([other]));
    expect(payloads[2]!.text).toBe(`Shoal rollout ${other} (release b): aborted: aborted by operator:test-admin`);
    const pending = (await json<WebhookDeliveries>(await fleet.operator('GET', `/v1/webhooks/${hook.id}/deliveries?state=pending`))).deliveries;
    const head = pending.at(-1)!;
    expect(head.type).toBe('rollout-started');
    expect(head.attempts).toBeGreaterThan(1);
    expect(head.lastError).toMatch(/^HTTP 503/);

    // `shoal webhook list` shows what the endpoint is stuck on.
    const listed = await shoal(live, ['webhook', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${hook.id}\\s+active\\s+\\d+\\s+0\\s+http://127\\.0\\.0\\.1:\\d+/hook`));
    expect(listed.stdout).toMatch(/next up: rollout-started \(event \d+\), \d+ attempts, last error: HTTP 503/);
  });

  it('gives up at once on a delivery the receiver refuses with 4xx, and sends the next', async () => {
    const live = await controller();
    const receiver = await Receiver.start();
    cleanup.push(() => receiver.close());
    const fleet = await Fleet.start(live, ['h1']);
    const hook = await json<WebhookCreated>(await fleet.operator('POST', '/v1/webhooks', { url: receiver.url, secret: 'refuse-secret-012345' }));
    receiver.respond = ({ body }) => ((JSON.parse(body) as WebhookPayload).type === 'rollout-started' ? 400 : 200);
    await rollout(fleet, 'a', ['h1']);
    await expect.poll(() => receiver.accepted.length, { timeout: 5000 }).toBe(1);
    expect(receiver.requests.map((r) => [(JSON.parse(r.body) as WebhookPayload).type, r.status])).toEqual([
      ['rollout-started', 400],
      ['rollout-wave-started', 200],
    ]);
    const failed = (await json<WebhookDeliveries>(await fleet.operator('GET', `/v1/webhooks/${hook.id}/deliveries?state=failed`))).deliveries;
    expect(failed).toMatchObject([{ type: 'rollout-started', attempts: 1, lastStatus: 400 }]);
    expect(failed[0]!.lastError).toMatch(/^refused by the receiver \(not retried\): HTTP 400/);
  });

  it('gives up an endpoint that never answers as dead, and a test that reaches it brings it back', async () => {
    const live = await controller({ ...FAST, maxAttempts: 3 });
    // An endpoint that is down: its port refuses connections until the server listens again.
    let server: Server = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const fleet = await Fleet.start(live, ['h1']);
    const added = await shoal(live, ['webhook', 'add', `http://127.0.0.1:${port}/hook`, '--event', '*']);
    expect(added.code).toBe(0);
    const id = /added webhook (wh-[0-9a-f]+)/.exec(added.stdout)![1]!;
    expect(added.stdout).toMatch(/^secret: \S{20,}$/m);
    await rollout(fleet, 'a', ['h1']);

    await expect.poll(async () => (await json<WebhookList>(await fleet.operator('GET', '/v1/webhooks'))).webhooks[0]!.state, { timeout: 10_000 }).toBe('dead');
    const [dead] = (await json<WebhookList>(await fleet.operator('GET', '/v1/webhooks'))).webhooks;
    expect(dead).toMatchObject({ pending: 0, deadReason: expect.stringMatching(/^3 attempts failed, the last: connect ECONNREFUSED 127\.0\.0\.1:\d+/) });
    const listed = await shoal(live, ['webhook', 'list']);
    expect(listed.stdout).toContain(`nothing is sent until it answers: shoal webhook test ${id}`);
    const refused = await shoal(live, ['webhook', 'test', id]);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/^shoal: test delivery to http:\/\/127\.0\.0\.1:\d+\/hook failed: connect ECONNREFUSED/) });

    const pings: string[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        pings.push(`${String(req.headers['x-shoal-event'])} ${body}`);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const tested = await shoal(live, ['webhook', 'test', id]);
    expect(tested).toMatchObject({ code: 0, stdout: expect.stringMatching(/^delivered a test ping to http:\/\/127\.0\.0\.1:\d+\/hook \(HTTP 200\); the endpoint was dead and is active again\n$/) });
    expect(pings[0]).toMatch(/^ping \{"type":"ping",.*"text":"Shoal webhook wh-/);
    expect((await json<WebhookList>(await fleet.operator('GET', '/v1/webhooks'))).webhooks[0]!.state).toBe('active');

    const removed = await shoal(live, ['webhook', 'rm', id]);
    expect(removed).toMatchObject({ code: 0, stdout: `removed webhook ${id} (its pending deliveries are dropped)\n` });
    expect((await json<WebhookList>(await fleet.operator('GET', '/v1/webhooks'))).webhooks).toEqual([]);
  });
});
