import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../../controller/src/http/app.js';
import { registeredHost, signedBundle, storePath, testController, type TestController } from '../helpers.js';
import { signedIn } from './session-helpers.js';

describe('dashboard pages and live stream', () => {
  let ctl: TestController;
  beforeEach(() => {
    ctl = testController();
    ctl.app = createApp(ctl.deps, undefined, { livePollMs: 20, live: { refreshMs: 60_000 } });
  });
  afterEach(() => ctl.close());

  it('filters the fleet by tag and status with query parameters alone', async () => {
    registeredHost(ctl, 'web-1', ['web']);
    registeredHost(ctl, 'db-1', ['db']);
    const browser = await signedIn(ctl);
    const byTag = await (await browser.get('/dashboard?tag=db')).text();
    expect(byTag).toContain('data-host="db-1"');
    expect(byTag).not.toContain('data-host="web-1"');
    // Registered but never connected: offline, not merely idle.
    const offline = await (await browser.get('/dashboard?status=offline&tag=web')).text();
    expect(offline).toContain('data-host="web-1"');
    expect(offline).toContain('Showing 1 of 2 hosts.');
    const healthy = await (await browser.get('/dashboard?status=healthy')).text();
    expect(healthy).toContain('Showing 0 of 2 hosts.');
    expect(healthy).toContain('No host matches.');
  });

  it('escapes what hosts and agents wrote, and sends a strict content security policy', async () => {
    registeredHost(ctl, 'web-1', ['<b>x</b>']);
    const browser = await signedIn(ctl);
    const response = await browser.get('/dashboard');
    const html = await response.text();
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;');
    expect(html).not.toContain('<b>x</b>');
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('shows on a rollout’s page who signed its release, when, at what floor and from which revision', async () => {
    registeredHost(ctl, 'web-1');
    const bundle = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: storePath() }], { floor: 2, source: { revision: 'c0ffee42', flakeLockHash: 'ab'.repeat(32) } });
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(bundle) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const browser = await signedIn(ctl);
    const page = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(page).toMatch(/data-provenance="ci">Release signed by CI release key ci-release-1, .*; floor 2; built from revision c0ffee42, flake\.lock sha256 abababababab…\./);
  });

  it('offers to retry an aborted rollout, and the button starts a new rollout for the hosts it left', async () => {
    registeredHost(ctl, 'web-1');
    registeredHost(ctl, 'web-2');
    const release = { name: 'r2', hosts: [{ host: 'web-1', storePath: storePath('nixos-system-web-1', 'c') }, { host: 'web-2', storePath: storePath('nixos-system-web-2', 'd') }] };
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(release) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r2', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const browser = await signedIn(ctl);
    expect(await (await browser.get(`/dashboard/rollouts/${id}`)).text()).not.toContain('Retry failed and unreached hosts');
    await ctl.operator(`/v1/rollouts/${id}/abort`, { method: 'POST' });
    expect(await (await browser.get(`/dashboard/rollouts/${id}`)).text()).toContain('Retry failed and unreached hosts');

    const retried = await browser.post(`/dashboard/rollouts/${id}/retry`, { _csrf: browser.csrf });
    expect(retried.status).toBe(303);
    const newId = decodeURIComponent(retried.headers.get('location')!.split('/').at(-1)!);
    expect(newId).not.toBe(id);
    const status = (await (await ctl.operator(`/v1/rollouts/${newId}`)).json()) as { retryOf: string; state: string };
    expect(status).toMatchObject({ retryOf: id, state: 'running' });
  });

  it('answers 404 pages for unknown hosts and rollouts', async () => {
    const browser = await signedIn(ctl);
    expect((await browser.get('/dashboard/hosts/ghost')).status).toBe(404);
    expect((await browser.get('/dashboard/rollouts/ro-none')).status).toBe(404);
  });

  it('streams the fleet table again when something is recorded', async () => {
    const browser = await signedIn(ctl);
    const response = await browser.get('/dashboard/live/fleet');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const next = async () => {
      let text = '';
      while (!text.includes('\n\n')) text += (await reader.read()).value ?? '';
      return text;
    };
    const first = await next();
    expect(first).toMatch(/^event: update\n/);
    expect(first).not.toContain('web-9');
    registeredHost(ctl, 'web-9');
    const second = await next();
    const parts = JSON.parse(/data: (.*)/.exec(second)![1]!) as Record<string, string>;
    expect(Object.keys(parts).sort()).toEqual(['fleet-counts', 'fleet-table']);
    expect(parts['fleet-table']).toContain('data-host="web-9"');
    await reader.cancel();
  });
});
