import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../../controller/src/app.js';
import { sql } from 'drizzle-orm';
import { eventsOf, execute, registeredHost, signedBundle, storePath, testController, type TestController } from '../helpers.js';
import { signedIn } from './session-helpers.js';
import type { LiveMessage } from '../../../controller/src/dashboard/live-state.js';

describe('dashboard pages and live stream', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
    ctl.app = createApp(ctl.deps, undefined, { livePollMs: 20, live: { refreshMs: 60_000 } });
  });
  afterEach(async () => await ctl.close());

  it('filters the fleet by tag and status with query parameters alone', async () => {
    await registeredHost(ctl, 'web-1', ['web']);
    await registeredHost(ctl, 'db-1', ['db']);
    const browser = await signedIn(ctl);
    const byTag = await (await browser.get('/dashboard?tag=db')).text();
    expect(byTag).toContain('data-host="db-1"');
    expect(byTag).not.toContain('data-host="web-1"');
    // Registered but never connected: offline, not merely idle.
    const offline = await (await browser.get('/dashboard?status=offline&tag=web')).text();
    expect(offline).toContain('data-host="web-1"');
    expect(offline).toContain('Showing 1–1 of 1 matching (2 hosts in all)');
    const healthy = await (await browser.get('/dashboard?status=healthy')).text();
    expect(healthy).toContain('No host matches, of 2.');
    expect(healthy).toContain('No host matches.');
  });

  it('escapes what hosts and agents wrote, and sends a strict content security policy', async () => {
    await registeredHost(ctl, 'web-1', ['<b>x</b>']);
    const browser = await signedIn(ctl);
    const response = await browser.get('/dashboard');
    const html = await response.text();
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;');
    expect(html).not.toContain('<b>x</b>');
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('shows on a rollout’s page who signed its release, when, at what floor and from which revision', async () => {
    await registeredHost(ctl, 'web-1');
    const bundle = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: storePath() }], { floor: 2, source: { revision: 'c0ffee42', flakeLockHash: 'ab'.repeat(32) } });
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(bundle) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const browser = await signedIn(ctl);
    const page = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(page).toMatch(/data-provenance="ci">Release signed by CI release key ci-release-1, .*; floor 2; built from revision c0ffee42, flake\.lock sha256 abababababab…\./);
  });

  it('offers to retry an aborted rollout, and the button starts a new rollout for the hosts it left', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
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

  it('streams only what changed since the page was rendered: a new row and the counts, not the table', async () => {
    for (const name of ['web-1', 'web-2', 'web-3']) await registeredHost(ctl, name);
    const browser = await signedIn(ctl);
    const page = await (await browser.get('/dashboard')).text();
    const liveUrl = /data-live="([^"]+)"/.exec(page)![1]!.replaceAll('&amp;', '&');
    expect(liveUrl).toMatch(/^\/dashboard\/live\/fleet\?have=/);
    const response = await browser.get(liveUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    const nextEvent = async () => {
      while (!buffered.includes('\n\n')) buffered += (await reader.read()).value ?? '';
      const end = buffered.indexOf('\n\n');
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      return event;
    };
    // The page already shows the current state, so the first event is the one this host causes.
    await registeredHost(ctl, 'web-0');
    const event = await nextEvent();
    expect(event).toMatch(/^event: update\n/);
    const message = JSON.parse(/data: (.*)/.exec(event)![1]!) as LiveMessage;
    expect(Object.keys(message.parts ?? {})).toEqual(['fleet-counts']);
    expect(message.parts!['fleet-counts']).toContain('<strong>4</strong>');
    const rows = message.lists!['fleet-rows']!;
    expect(Object.keys(rows.rows)).toEqual(['web-0']);
    expect(rows.rows['web-0']).toContain('data-host="web-0"');
    expect(rows.order).toEqual(['web-0', 'web-1', 'web-2', 'web-3']);
    await reader.cancel();
  });
});

describe('dashboard host actions and rollout questions', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
    ctl.app = createApp(ctl.deps, undefined, { livePollMs: 20, live: { refreshMs: 60_000 } });
  });
  afterEach(async () => await ctl.close());

  it('sets a host’s desired system only after a confirmation page that names the system, under the operator’s name', async () => {
    await registeredHost(ctl, 'web-1');
    const browser = await signedIn(ctl);
    const path = storePath('nixos-system-web-1-25.05');
    const asked = await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: path, action: 'switch' });
    expect(asked.status).toBe(200);
    const question = await asked.text();
    expect(question).toContain('Set the desired system of web-1 to nixos-system-web-1-25.05 (switch)?');
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).desired).toBeNull();

    const done = await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: path, action: 'switch', confirmed: 'yes' });
    expect(done.status).toBe(303);
    const desired = (await (await ctl.operator('/v1/hosts/web-1')).json()).desired as { storePath: string; action: string };
    expect(desired).toMatchObject({ storePath: path, action: 'switch' });
    const events = (await (await ctl.operator('/v1/hosts/web-1/events')).json()).events as Array<{ kind: string; actor: string }>;
    expect(events.find((event) => event.kind === 'desired-set')?.actor).toBe('operator:test-admin');
  });

  it('refuses a host action with a bad store path, naming what was wrong, and changes nothing', async () => {
    await registeredHost(ctl, 'web-1');
    const browser = await signedIn(ctl);
    const refused = await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: '/tmp/evil', confirmed: 'yes' });
    expect(refused.status).toBe(303);
    const page = await (await browser.get('/dashboard/hosts/web-1')).text();
    expect(page).toContain('Nothing was done: storePath: not a Nix store path');
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).desired).toBeNull();
    expect((await browser.post('/dashboard/hosts/web-1/actions/reboot', { _csrf: browser.csrf })).status).toBe(404);
    expect((await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: 'forged', storePath: storePath(), confirmed: 'yes' })).status).toBe(403);
  });

  it('pauses a host only after a confirmation page, shows it paused on the host, fleet and rollout pages, and resumes it', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const browser = await signedIn(ctl);
    const asked = await browser.post('/dashboard/hosts/web-1/actions/pause', { _csrf: browser.csrf });
    expect(asked.status).toBe(200);
    expect(await asked.text()).toContain('Pause web-1? No rollout issues it a new manifest until it is resumed');
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).paused).toBe(false);

    const done = await browser.post('/dashboard/hosts/web-1/actions/pause', { _csrf: browser.csrf, confirmed: 'yes' });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/dashboard/hosts/web-1');
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).paused).toBe(true);
    const hostPage = await (await browser.get('/dashboard/hosts/web-1')).text();
    expect(hostPage).toContain('web-1 is paused.');
    expect(hostPage).toContain('<span class="badge s-paused">paused</span> rollouts leave it waiting in its wave');
    expect(hostPage).toContain('/dashboard/hosts/web-1/actions/resume');
    expect(hostPage).not.toContain('/dashboard/hosts/web-1/actions/pause');
    expect(await (await browser.get('/dashboard')).text()).toMatch(/data-host="web-1"[^]*?s-paused">paused</);

    // Setting its system is refused as the API refuses it, unless forced.
    const path = storePath('nixos-system-web-1-25.05');
    await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: path, confirmed: 'yes' });
    expect(await (await browser.get('/dashboard/hosts/web-1')).text()).toContain('Nothing was done: host &quot;web-1&quot; is paused; resume it');
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).desired).toBeNull();
    const forced = await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: path, force: 'yes' });
    expect(await forced.text()).toContain('although the host is paused?');
    await browser.post('/dashboard/hosts/web-1/actions/set-desired', { _csrf: browser.csrf, storePath: path, force: 'yes', confirmed: 'yes' });
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).desired).toMatchObject({ storePath: path });

    // In a rollout it waits, shown as paused.
    const release = await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'r1', hosts: ['web-1', 'web-2'].map((host) => ({ host, storePath: storePath(host, 'b') })) }) });
    expect(release.status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const rolloutPage = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(rolloutPage).toContain('title="web-1: paused (waits until the host is resumed)"');
    expect(rolloutPage).toContain('1 pending (1 paused, waiting to be resumed)');

    await browser.post('/dashboard/hosts/web-1/actions/resume', { _csrf: browser.csrf, confirmed: 'yes' });
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).paused).toBe(false);
    expect(await (await browser.get(`/dashboard/rollouts/${id}`)).text()).not.toContain('web-1: paused');
  });

  it('numbers waves as people count, "wave 2 of 2", and names the canary wave "canary (wave 1 of 2)" on every page', async () => {
    for (const host of ['web-1', 'web-2', 'web-3']) await registeredHost(ctl, host);
    const browser = await signedIn(ctl);
    const release = await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'r1', hosts: ['web-1', 'web-2', 'web-3'].map((host) => ({ host, storePath: storePath(host, 'b') })) }) });
    expect(release.status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', canary: 1, waves: ['100%'], approvalBefore: [1] }) });
    const { id } = (await started.json()) as { id: string };
    const rolloutPage = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(rolloutPage).toContain('<dd>canary (wave 1 of 2), deploying</dd>');
    expect(rolloutPage).toContain('Wave 1 of 2 (current)');
    expect(rolloutPage).toContain('aria-label="wave 2 of 2 hosts"');
    expect(await (await browser.get('/dashboard')).text()).toContain('canary (wave 1 of 2) · 0 of 3 hosts done');
    expect(await (await browser.get('/dashboard/rollouts')).text()).toMatch(/data-label="Wave">wave 1 of 2</);

    // As when the canary has baked and the gated second wave waits (rendering only): the button says which of how many.
    await execute(ctl.store, sql`update rollouts set state = 'waiting-approval', wave_index = 1 where id = ${id}`);
    const waiting = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(waiting).toContain('<dd>wave 2 of 2, waiting for approval</dd>');
    expect(waiting).toContain('Approve wave 2 of 2');
  });

  it('removes a host only after a confirmation page, refuses while a rollout includes it, and goes back to the fleet', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const browser = await signedIn(ctl);
    const asked = await browser.post('/dashboard/hosts/web-1/actions/remove', { _csrf: browser.csrf });
    expect(await asked.text()).toContain('Remove web-1? Its manifests, reports and history are deleted');
    expect((await ctl.operator('/v1/hosts/web-1')).status).toBe(200);

    const release = await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'r1', hosts: [{ host: 'web-2', storePath: storePath('web-2', 'b') }] }) });
    expect(release.status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'], approvalBefore: [0] }) });
    const { id } = (await started.json()) as { id: string };
    const refused = await browser.post('/dashboard/hosts/web-2/actions/remove', { _csrf: browser.csrf, confirmed: 'yes' });
    expect(refused.headers.get('location')).toBe('/dashboard/hosts/web-2');
    expect(await (await browser.get('/dashboard/hosts/web-2')).text()).toContain(`Nothing was done: host &quot;web-2&quot; is part of rollout ${id}`);
    expect((await ctl.operator('/v1/hosts/web-2')).status).toBe(200);

    const done = await browser.post('/dashboard/hosts/web-1/actions/remove', { _csrf: browser.csrf, confirmed: 'yes' });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/dashboard');
    expect((await ctl.operator('/v1/hosts/web-1')).status).toBe(404);
    expect(await (await browser.get('/dashboard')).text()).toContain('web-1 was removed.');
    const removal = await eventsOf(ctl.store, 'host-removed');
    expect(removal.map((event) => event.actor)).toEqual(['operator:test-admin']);
  });

  it('says which host goes back to which system before a rollback, and "rolls back above" when that is the policy', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const before = storePath('nixos-system-web-1-24.11', 'b');
    // web-1 ran 24.11 before the rollout (its report says so); web-2 never reported: unknown.
    await execute(ctl.store, sql`update hosts set current_system = ${before} where name = 'web-1'`);
    const release = { name: 'r2', hosts: ['web-1', 'web-2'].map((host) => ({ host, storePath: storePath(`nixos-system-${host}-25.05`) })) };
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(release) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r2', waves: ['100%'], onFailure: 'rollback', failureThreshold: { count: 1 } }) });
    const { id } = (await started.json()) as { id: string };
    const browser = await signedIn(ctl);
    const page = await (await browser.get(`/dashboard/rollouts/${id}`)).text();
    expect(page).toContain('rolls back above 1 failed');
    expect(page).not.toContain('halts above');
    const confirm = await (await browser.get(`/dashboard/rollouts/${id}/confirm/rollback`)).text();
    expect(confirm).toMatch(/<tr data-rollback-host="web-1">.*nixos-system-web-1-25\.05.*nixos-system-web-1-24\.11/s);
    expect(confirm).toContain(before);
    expect(confirm).toContain('Staying as they are (the system they ran before is unknown): web-2.');
  });
});
