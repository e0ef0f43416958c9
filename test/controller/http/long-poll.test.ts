import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestResponse, controllerAudience } from '../../../shared/src/protocol.js';
import { ManualClock, storePath, signChallenge, type TestHost } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';

describe('manifest long-poll', () => {
  let ctl: LiveController;
  let session: string;
  beforeEach(async () => {
    ctl = await liveController();
    session = await httpSession(ctl, await ctl.register('web-1'));
  });
  afterEach(async () => ctl.close());

  const poll = (query: string, etag?: string) =>
    fetch(`${ctl.handle.url}/v1/agent/manifest${query}`, {
      headers: { authorization: `Bearer ${session}`, ...(etag ? { 'if-none-match': etag } : {}) },
    });

  it('wakes a waiting poll as soon as the version changes', async () => {
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const waiting = poll('?waitSeconds=30', '"v1"');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    await ctl.setDesired('web-1', storePath('sys', 'b'));
    // A 200 with version 2: the change ended the wait (its end would have been a 304).
    const response = await waiting;
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBe('"v2"');
    expect(ManifestResponse.parse(await response.json()).version).toBe(2);
  });

  it('wakes a host that had no desired state at all', async () => {
    const waiting = poll('?waitSeconds=30');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    expect((await waiting).status).toBe(200);
  });

  it('answers 304 when nothing changed within waitSeconds', async () => {
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const started = performance.now();
    const response = await poll('?waitSeconds=1', '"v1"');
    expect(response.status).toBe(304);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('is not woken by another host’s change', async () => {
    await ctl.register('web-2');
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const waiting = poll('?waitSeconds=1', '"v1"');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    await ctl.setDesired('web-2', storePath('sys', 'b'));
    expect((await waiting).status).toBe(304);
  });

  it('forgets a waiting poll whose client went away', async () => {
    const abort = new AbortController();
    const waiting = fetch(`${ctl.handle.url}/v1/agent/manifest?waitSeconds=30`, {
      headers: { authorization: `Bearer ${session}` },
      signal: abort.signal,
    }).catch(() => 'aborted');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    abort.abort();
    expect(await waiting).toBe('aborted');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(0);
  });

  it('releases waiting polls when the controller shuts down', async () => {
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const waiting = poll('?waitSeconds=60', '"v1"');
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    // Released, not timed out: the test would run into its own timeout long before the 60 s wait ends.
    await ctl.handle.close();
    expect((await waiting).status).toBe(304);
  });
});

describe('a host holding a long-poll', () => {
  it('shows as polling for as long as its poll is held, past the polling window', async () => {
    const clock = new ManualClock(Date.now());
    // A 1 s poll interval: a host not heard from for 3 s would be offline.
    const ctl = await liveController({ clock, pollIntervalMs: 1_000 });
    try {
      const session = await httpSession(ctl, await ctl.register('web-1'));
      const waiting = fetch(`${ctl.handle.url}/v1/agent/manifest?waitSeconds=30`, { headers: { authorization: `Bearer ${session}` } });
      await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
      clock.advance(20_000);
      const status = await fetch(`${ctl.handle.url}/v1/hosts/web-1`, { headers: { authorization: `Bearer ${ctl.operatorToken}` } });
      expect(((await status.json()) as { connection: string }).connection).toBe('polling');
      await ctl.setDesired('web-1', storePath('sys', 'a'));
      expect((await waiting).status).toBe(200);
    } finally {
      await ctl.close();
    }
  });
});


async function httpSession(ctl: LiveController, host: TestHost): Promise<string> {
  const post = (path: string, body: unknown) =>
    fetch(`${ctl.handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const { nonce } = (await (await post('/v1/agent/challenge', { protocol: 1, host: host.name })).json()) as { nonce: string };
  const response = await post('/v1/agent/session', { protocol: 1, host: host.name, nonce, signature: signChallenge(host, nonce, controllerAudience(ctl.handle.url)) });
  return ((await response.json()) as { token: string }).token;
}
