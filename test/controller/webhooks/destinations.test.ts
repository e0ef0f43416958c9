import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookDeliveries } from '../../../shared/src/webhook-api.js';
import { MAX_ERROR_CHARS, WebhookDispatcher } from '../../../controller/src/webhooks/dispatcher.js';
import { DestinationGuard, type DestinationPolicy } from '../../../controller/src/webhooks/destination.js';
import { createWebhook } from '../../../controller/src/webhooks/endpoints.js';
import { registeredHost, storePath, testController, type TestController } from '../helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function controller(webhookDestinations?: DestinationPolicy): Promise<TestController> {
  const ctl = await testController(webhookDestinations ? { webhookDestinations } : {});
  cleanup.push(() => ctl.close());
  await registeredHost(ctl, 'web-1');
  return ctl;
}

/** A loopback receiver that counts requests and answers `status` with `body`. */
async function receiver(status = 200, body = 'ok'): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits += 1;
    req.resume();
    req.on('end', () => res.writeHead(status, { 'content-type': 'text/plain' }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  cleanup.push(() => server.closeAllConnections());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits: () => hits };
}

async function startRollout(ctl: TestController): Promise<void> {
  const created = await ctl.operator('/v1/releases', {
    method: 'POST',
    body: JSON.stringify({ name: 'rel-1', hosts: [{ host: 'web-1', storePath: storePath('nixos-system-web-1', 'b') }] }),
  });
  expect(created.status).toBe(201);
  expect((await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'rel-1', waves: ['100%'] }) })).status).toBe(201);
}

/** Runs the real dispatcher (the real network path, no fake send) until it made one attempt. */
async function attempt(ctl: TestController): Promise<void> {
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const dispatcher = new WebhookDispatcher({ ...ctl.deps, onAttempt: () => done() }, { maxAttempts: 1, pollIntervalMs: 60_000 });
  dispatcher.wake();
  await finished;
  await dispatcher.stop();
}

async function oldestDelivery(ctl: TestController, webhookId: string) {
  const deliveries = ((await (await ctl.operator(`/v1/webhooks/${webhookId}/deliveries`)).json()) as WebhookDeliveries).deliveries;
  return deliveries[deliveries.length - 1]!;
}

describe('webhook destinations', () => {
  it('refuses loopback, link-local, private and special addresses, also inside IPv6', () => {
    const guard = new DestinationGuard();
    for (const address of [
      '127.0.0.1', '169.254.169.254', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '0.0.0.0', '255.255.255.255',
      '::1', '::', 'fd00::1', 'fc12::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '2002:7f00:1::1',
    ]) {
      expect(guard.check(address).ok, address).toBe(false);
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) expect(guard.check(address), address).toEqual({ ok: true });
    const metadata = guard.check('169.254.169.254');
    expect(!metadata.ok && metadata.message).toMatch(/link-local.*webhooks\.allowedNetworks or webhooks\.allowPrivateNetworks/);
  });

  it('allows what the config allows: listed networks only, or every private network', () => {
    const listed = new DestinationGuard({ allowPrivateNetworks: false, allowedNetworks: ['10.1.0.0/16', 'fd00:1::/32', '127.0.0.1'] });
    expect(listed.check('10.1.2.3').ok).toBe(true);
    expect(listed.check('10.2.0.1').ok).toBe(false);
    expect(listed.check('fd00:1::5').ok).toBe(true);
    expect(listed.check('127.0.0.1').ok).toBe(true);
    expect(listed.check('127.0.0.2').ok).toBe(false);
    expect(listed.check('169.254.169.254').ok).toBe(false);
    expect(new DestinationGuard({ allowPrivateNetworks: true, allowedNetworks: [] }).check('169.254.169.254').ok).toBe(true);
  });

  it('refuses to create a webhook whose URL points at a forbidden address, naming it and the config option', async () => {
    const ctl = await controller();
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://localhost:9/x', 'http://[::ffff:127.0.0.1]:9/x', 'http://10.0.0.5/hook', 'http://[fd00::1]/hook']) {
      const response = await ctl.operator('/v1/webhooks', { method: 'POST', body: JSON.stringify({ url }) });
      expect(response.status, url).toBe(400);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('forbidden-destination');
      expect(error.message).toContain('webhooks.allowPrivateNetworks');
    }
    const allowed = await controller({ allowPrivateNetworks: false, allowedNetworks: ['10.0.0.0/24'] });
    expect((await allowed.operator('/v1/webhooks', { method: 'POST', body: JSON.stringify({ url: 'http://10.0.0.5/hook' }) })).status).toBe(201);
  });

  it('checks again when delivering: a stored URL that now reaches loopback is not called', async () => {
    const ctl = await controller();
    const target = await receiver();
    // As if stored before the check existed, or created while its name still resolved elsewhere.
    const urls = [target.url, target.url.replace('127.0.0.1', 'localhost')];
    const hooks = await Promise.all(urls.map((url) => createWebhook(ctl.store, ctl.clock, { url, events: ['*'], description: '' }, 'operator:test-admin')));
    await startRollout(ctl);
    const dispatcher = new WebhookDispatcher(ctl.deps, { maxAttempts: 1, pollIntervalMs: 60_000 });
    cleanup.push(() => dispatcher.stop());
    dispatcher.wake();
    for (const hook of hooks) {
      await expect.poll(async () => (await oldestDelivery(ctl, hook.id)).state).toBe('failed');
      expect((await oldestDelivery(ctl, hook.id)).lastError, hook.url).toMatch(/loopback/);
    }
    expect(target.hits()).toBe(0);
  });

  it('shows operators only the start of a failed delivery\'s answer', async () => {
    const ctl = await controller({ allowPrivateNetworks: true, allowedNetworks: [] });
    const target = await receiver(500, `<html>${'x'.repeat(200_000)}</html>`);
    const hook = await createWebhook(ctl.store, ctl.clock, { url: target.url, events: ['*'], description: '' }, 'operator:test-admin');
    await startRollout(ctl);
    await attempt(ctl);
    const delivery = await oldestDelivery(ctl, hook.id);
    expect(target.hits()).toBe(1);
    expect(delivery.lastStatus).toBe(500);
    expect(delivery.lastError!.startsWith('HTTP 500: <html>xxx')).toBe(true);
    expect(delivery.lastError!.length).toBeLessThan(MAX_ERROR_CHARS + 60);
    expect(delivery.lastError).toMatch(/… \(truncated, \d+ characters\)$/);
  });
});
