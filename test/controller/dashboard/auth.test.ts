import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { revokeOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { eq } from 'drizzle-orm';
import { eventsOf, registeredHost, storePath, testController, type TestController } from '../helpers.js';
import { cookieValue, form, ORIGIN, signedIn, signIn } from './session-helpers.js';

const ACTIONS = ['approve', 'pause', 'resume', 'abort', 'rollback'] as const;

async function gatedRollout(ctl: TestController): Promise<string> {
  await registeredHost(ctl, 'web-1', ['web']);
  await registeredHost(ctl, 'web-2', ['web']);
  const release = await ctl.operator('/v1/releases', {
    method: 'POST',
    body: JSON.stringify({ name: 'r1', hosts: [{ host: 'web-1', storePath: storePath('nixos-system-web-1', 'b') }, { host: 'web-2', storePath: storePath('nixos-system-web-2', 'c') }] }),
  });
  expect(release.status).toBe(201);
  const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'], approvalBefore: [0] }) });
  expect(started.status).toBe(201);
  const body = (await started.json()) as { id: string; state: string };
  expect(body.state).toBe('waiting-approval');
  return body.id;
}

async function rolloutState(ctl: TestController, id: string): Promise<string> {
  const { rollouts } = ctl.store.t;
  return (await ctl.store.db.select({ state: rollouts.state }).from(rollouts).where(eq(rollouts.id, id)))[0]!.state;
}

describe('dashboard sign-in and CSRF', () => {
  let ctl: TestController;
  let rolloutId: string;
  beforeEach(async () => {
    ctl = await testController();
    rolloutId = await gatedRollout(ctl);
  });
  afterEach(async () => await ctl.close());

  it('sends every page to the login form when nobody is signed in, and remembers where to come back', async () => {
    const pages = ['/dashboard', '/dashboard/rollouts', `/dashboard/rollouts/${rolloutId}`, `/dashboard/rollouts/${rolloutId}/confirm/abort`, '/dashboard/hosts/web-1', '/dashboard?tag=web'];
    for (const path of pages) {
      const response = await ctl.app.request(path);
      expect(response.status, path).toBe(303);
      expect(response.headers.get('location'), path).toBe(`/dashboard/login?next=${encodeURIComponent(path)}`);
    }
    const withStaleCookie = await ctl.app.request('/dashboard', { headers: { cookie: 'shoal_session=made-up' } });
    expect(withStaleCookie.status).toBe(303);
  });

  it('refuses every live stream without a session', async () => {
    for (const path of ['/dashboard/live/fleet', `/dashboard/live/rollouts/${rolloutId}`, '/dashboard/live/hosts/web-1']) {
      const response = await ctl.app.request(path);
      expect(response.status, path).toBe(403);
      expect(response.headers.get('content-type'), path).not.toContain('event-stream');
    }
  });

  it('refuses every action without a session with 403, and changes nothing', async () => {
    const browser = await signedIn(ctl);
    for (const action of ACTIONS) {
      const response = await ctl.app.request(`/dashboard/rollouts/${rolloutId}/actions/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
        // Even a valid CSRF token of somebody's session is worthless without that session's cookie.
        body: form({ _csrf: browser.csrf, confirmed: 'yes' }),
      });
      expect(response.status, action).toBe(403);
    }
    const logout = await ctl.app.request('/dashboard/logout', { method: 'POST', headers: { origin: ORIGIN }, body: form({ _csrf: browser.csrf }) });
    expect(logout.status).toBe(403);
    expect(await rolloutState(ctl, rolloutId)).toBe('waiting-approval');
  });

  it('refuses an action without the CSRF token, with a wrong one, or from another origin, and changes nothing', async () => {
    const browser = await signedIn(ctl);
    const path = `/dashboard/rollouts/${rolloutId}/actions/approve`;
    const refused = [
      await browser.post(path, {}),
      await browser.post(path, { _csrf: 'not-the-token' }),
      await browser.post(path, { _csrf: `${browser.csrf}x` }),
      await browser.post(path, { _csrf: browser.csrf }, { origin: 'https://evil.example' }),
      await browser.post(path, { _csrf: browser.csrf }, { origin: 'null' }),
      await browser.post(path, { _csrf: browser.csrf }, { 'sec-fetch-site': 'cross-site' }),
      await browser.post(path, { _csrf: browser.csrf }, { 'sec-fetch-site': 'same-site', origin: ORIGIN }),
    ];
    for (const [i, response] of refused.entries()) {
      expect(response.status, `attempt ${i}`).toBe(403);
      expect(await response.text(), `attempt ${i}`).toContain('nothing was done');
    }
    expect(await rolloutState(ctl, rolloutId)).toBe('waiting-approval');
  });

  it('carries out an action with the session, its CSRF token and a same-origin request, through the rollout engine', async () => {
    const browser = await signedIn(ctl);
    const response = await browser.post(`/dashboard/rollouts/${rolloutId}/actions/approve`, { _csrf: browser.csrf });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/dashboard/rollouts/${rolloutId}`);
    expect(await rolloutState(ctl, rolloutId)).toBe('running');
    const [approved] = await eventsOf(ctl.store, 'rollout-approved', { rolloutId });
    expect(approved!.data).toMatchObject({ actor: 'operator:test-admin', wave: 1 });
    const page = await (await browser.get(`/dashboard/rollouts/${rolloutId}`)).text();
    expect(page).toContain(`Rollout ${rolloutId} approved the waiting wave.`);
  });

  it('asks for confirmation before abort and rollback, then carries them out', async () => {
    const browser = await signedIn(ctl);
    const unconfirmed = await browser.post(`/dashboard/rollouts/${rolloutId}/actions/abort`, { _csrf: browser.csrf });
    expect(unconfirmed.status).toBe(303);
    expect(unconfirmed.headers.get('location')).toBe(`/dashboard/rollouts/${rolloutId}/confirm/abort`);
    expect(await rolloutState(ctl, rolloutId)).toBe('waiting-approval');
    const confirmPage = await (await browser.get(`/dashboard/rollouts/${rolloutId}/confirm/abort`)).text();
    expect(confirmPage).toContain(`Abort rollout ${rolloutId}?`);
    expect(confirmPage).toContain('name="confirmed" value="yes"');
    const confirmed = await browser.post(`/dashboard/rollouts/${rolloutId}/actions/abort`, { _csrf: browser.csrf, confirmed: 'yes' });
    expect(confirmed.status).toBe(303);
    expect(await rolloutState(ctl, rolloutId)).toBe('aborted');
  });

  it('shows the engine refusing an action that does not apply, without changing anything', async () => {
    const browser = await signedIn(ctl);
    await browser.post(`/dashboard/rollouts/${rolloutId}/actions/resume`, { _csrf: browser.csrf });
    expect(await rolloutState(ctl, rolloutId)).toBe('waiting-approval');
    const page = await (await browser.get(`/dashboard/rollouts/${rolloutId}`)).text();
    expect(page).toContain('resume applies only to a rollout that is paused');
  });

  it('refuses a bad token at sign-in with 401 and no session cookie', async () => {
    for (const token of ['shoal_op_wrong', '']) {
      const { response, setCookies } = await signIn(ctl, token);
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('not known to this controller');
      expect(cookieValue(setCookies, 'shoal_session')).toBeNull();
    }
  });

  it('refuses a sign-in form posted from another origin or without its login CSRF cookie', async () => {
    const foreign = await signIn(ctl, ctl.operatorToken, { origin: 'https://evil.example' });
    expect(foreign.response.status).toBe(403);
    expect(cookieValue(foreign.setCookies, 'shoal_session')).toBeNull();
    const page = await ctl.app.request('/dashboard/login');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    const noCookie = await ctl.app.request('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
      body: form({ _csrf: csrf, token: ctl.operatorToken }),
    });
    expect(noCookie.status).toBe(403);
    expect(cookieValue(noCookie.headers.getSetCookie(), 'shoal_session')).toBeNull();
  });

  it('sets the session cookie HttpOnly, SameSite=Strict, on /dashboard only, and not Secure over plain http', async () => {
    const { response, setCookies } = await signIn(ctl, ctl.operatorToken);
    expect(response.status).toBe(303);
    const cookie = setCookies.find((header) => header.startsWith('shoal_session='))!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/dashboard(;|$)/);
    expect(cookie).not.toMatch(/; Secure/);
    expect(cookie).not.toMatch(/Max-Age|Expires/);
  });

  it('marks the cookies Secure behind an https proxy, or always when told to', async () => {
    const behindProxy = await signIn(ctl, ctl.operatorToken, { origin: ORIGIN, 'x-forwarded-proto': 'https' });
    expect(behindProxy.setCookies.find((h) => h.startsWith('shoal_session='))).toMatch(/; Secure/);

    const { createApp } = await import('../../../controller/src/app.js');
    const secureApp = createApp(ctl.deps, undefined, { secureCookies: true });
    const page = await secureApp.request('/dashboard/login');
    expect(page.headers.getSetCookie().find((h) => h.startsWith('shoal_login='))).toMatch(/; Secure/);
  });

  it('sends the browser back only to dashboard pages after sign-in', async () => {
    const page = await ctl.app.request('/dashboard/login?next=//evil.example/x');
    const html = await page.text();
    expect(html).toContain('name="next" value="/dashboard"');
  });

  it('ends the session at sign-out, and when its operator token is revoked', async () => {
    const first = await signedIn(ctl);
    const out = await first.post('/dashboard/logout', { _csrf: first.csrf });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/dashboard/login');
    expect((await first.get('/dashboard')).status).toBe(303);

    const second = await signedIn(ctl);
    const [{ id: tokenId }] = (await ctl.store.db.select({ id: ctl.store.t.operatorTokens.id }).from(ctl.store.t.operatorTokens)) as [{ id: string }];
    expect(await revokeOperatorToken(ctl.store, ctl.clock, tokenId)).toBe(true);
    expect((await second.get('/dashboard')).status).toBe(303);
  });

  it('ends an idle session after eight hours', async () => {
    const browser = await signedIn(ctl);
    ctl.clock.advance(8 * 3600_000 + 1);
    expect((await browser.get('/dashboard')).status).toBe(303);
  });
});
