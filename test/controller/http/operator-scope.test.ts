import { eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OperatorScope } from '../../../shared/src/operator-api.js';
import { ErrorBody } from '../../../shared/src/protocol.js';
import { createOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { count, execute, newHostKeys, registeredHost, signedBundle, storePath, testController, type TestController } from '../helpers.js';
import { signedIn, signIn } from '../dashboard/session-helpers.js';

type Allowed = Record<OperatorScope, boolean>;
const only = (...scopes: OperatorScope[]): Allowed => ({ read: scopes.includes('read'), deploy: scopes.includes('deploy'), admin: scopes.includes('admin'), ci: scopes.includes('ci') });
const READERS = only('read', 'deploy', 'admin');
const DEPLOYERS = only('deploy', 'admin');
const ADMINS = only('admin');

/**
 * A representative route of every group, and which scopes may use it. An allowed request may still
 * fail for its own reasons (404, 409): what matters is that only the disallowed ones get 403.
 */
const ROUTES: Array<[group: string, method: string, path: string, body: unknown, allowed: Allowed]> = [
  ['hosts', 'GET', '/v1/hosts', undefined, READERS],
  ['hosts', 'GET', '/v1/hosts/web-1/events', undefined, READERS],
  ['closure diff', 'GET', '/v1/hosts/web-1/diff', undefined, READERS],
  ['set', 'PUT', '/v1/hosts/web-1/desired', { storePath: storePath() }, DEPLOYERS],
  ['pause', 'POST', '/v1/hosts/web-1/pause', undefined, DEPLOYERS],
  ['pause', 'POST', '/v1/hosts/web-1/resume', undefined, DEPLOYERS],
  ['host lifecycle', 'POST', '/v1/hosts', { name: 'web-9', publicKey: newHostKeys('web-9').publicKey }, ADMINS],
  ['host lifecycle', 'DELETE', '/v1/hosts/web-1', undefined, ADMINS],
  ['host lifecycle', 'POST', '/v1/hosts/web-1/rekey', { publicKey: newHostKeys('web-1').publicKey }, ADMINS],
  ['unknown hosts', 'GET', '/v1/unknown-hosts', undefined, READERS],
  ['unknown hosts', 'POST', '/v1/unknown-hosts/web-7/adopt', {}, ADMINS],
  ['releases', 'GET', '/v1/releases', undefined, READERS],
  ['releases', 'POST', '/v1/releases', 'bundle', only('ci', 'deploy', 'admin')],
  ['closure diff', 'GET', '/v1/releases/r0/diff', undefined, READERS],
  ['rollouts', 'GET', '/v1/rollouts', undefined, READERS],
  ['rollouts', 'POST', '/v1/rollouts/plan', { release: 'r0', waves: ['100%'] }, READERS],
  ['rollouts', 'POST', '/v1/rollouts', { release: 'r0', waves: ['100%'] }, DEPLOYERS],
  ['rollouts', 'POST', '/v1/rollouts/ro-none/pause', undefined, DEPLOYERS],
  ['enrollment tokens', 'POST', '/v1/enrollment-tokens', { ttlSeconds: 60 }, ADMINS],
  ['enrollment tokens', 'GET', '/v1/enrollment-tokens', undefined, ADMINS],
  ['operator tokens', 'GET', '/v1/operator-tokens', undefined, ADMINS],
  ['operator tokens', 'POST', '/v1/operator-tokens', { name: 'x', scope: 'admin' }, ADMINS],
  ['webhooks', 'GET', '/v1/webhooks', undefined, READERS],
  ['webhooks', 'POST', '/v1/webhooks', { url: 'https://hooks.example.com/x' }, ADMINS],
  ['backup', 'GET', '/v1/backup', undefined, ADMINS],
];

const CASES = ROUTES.flatMap(([group, method, path, body, allowed]) =>
  (Object.keys(allowed) as OperatorScope[]).map((scope) => [scope, allowed[scope] ? 'may' : 'may not', group, method, path, body] as const),
);

describe('operator token scopes', () => {
  let ctl: TestController;
  const tokens = {} as Record<OperatorScope, string>;
  beforeEach(async () => {
    ctl = await testController({ mode: 'two-key' });
    await registeredHost(ctl, 'web-1');
    for (const scope of ['read', 'deploy', 'admin', 'ci'] as const) tokens[scope] = (await createOperatorToken(ctl.store, ctl.clock, `${scope}-job`, scope)).token;
  });
  afterEach(async () => await ctl.close());

  const as = (scope: OperatorScope, method: string, path: string, body?: unknown) =>
    Promise.resolve(
      ctl.app.request(path, {
        method,
        headers: { authorization: `Bearer ${tokens[scope]}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body === 'bundle' ? signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: storePath() }]) : body) }),
      }),
    );

  it.each(CASES)('a %s token %s use %s (%s %s)', async (scope, verdict, _group, method, path, body) => {
    const before = (await count(ctl, 'events')) + (await count(ctl, 'operator_tokens')) + (await count(ctl, 'enrollment_tokens')) + (await count(ctl, 'hosts'));
    const response = await as(scope, method, path, body);
    if (verdict === 'may') {
      expect(response.status, await response.clone().text()).not.toBe(403);
      return;
    }
    expect(response.status).toBe(403);
    const { error } = ErrorBody.parse(await response.json());
    expect(error.code).toBe('insufficient-scope');
    expect(error.message).toContain(`operator token "${scope}-job" has scope ${scope}`);
    expect(error.message).toContain(`${method} ${path} needs scope`);
    // A refused request writes nothing.
    expect((await count(ctl, 'events')) + (await count(ctl, 'operator_tokens')) + (await count(ctl, 'enrollment_tokens')) + (await count(ctl, 'hosts'))).toBe(before);
  });

  it('names the scopes that would do', async () => {
    const response = await as('read', 'PUT', '/v1/hosts/web-1/desired', { storePath: storePath() });
    const { error } = ErrorBody.parse(await response.json());
    expect(error.message).toBe('operator token "read-job" has scope read; PUT /v1/hosts/web-1/desired needs scope deploy or admin');
    const ci = ErrorBody.parse(await (await as('ci', 'GET', '/v1/hosts')).json());
    expect(ci.error.message).toBe(
      'operator token "ci-job" has scope ci, which may only publish releases (POST /v1/releases); GET /v1/hosts needs scope read or deploy or admin',
    );
  });

  it('lets a ci token publish a release', async () => {
    const response = await as('ci', 'POST', '/v1/releases', 'bundle');
    expect(response.status).toBe(201);
    expect(await count(ctl, 'releases')).toBe(1);
  });

  it('keeps a ci token out of the dashboard', async () => {
    const { response } = await signIn(ctl, tokens.ci);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('That token has scope ci: it may only publish releases');
  });

  it('treats tokens made before scopes existed as admin', async () => {
    expect((await ctl.operator('/v1/hosts')).status).toBe(200);
    const { operatorTokens } = ctl.store.t;
    const rows = await ctl.store.db.select({ scope: operatorTokens.scope }).from(operatorTokens).where(eq(operatorTokens.name, 'test-admin'));
    expect(rows).toEqual([{ scope: 'admin' }]);
  });

  it('grants an unknown scope (a newer controller wrote it) no more than publishing releases', async () => {
    await execute(ctl.store, sql`update operator_tokens set scope = 'superuser' where name = 'read-job'`);
    expect((await as('read', 'GET', '/v1/hosts')).status).toBe(403);
  });
});

describe('dashboard actions by scope', () => {
  let ctl: TestController;
  let rolloutId: string;
  beforeEach(async () => {
    ctl = await testController();
    await registeredHost(ctl, 'web-1');
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'r1', hosts: [{ host: 'web-1', storePath: storePath('sys', 'b') }] }) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r1', waves: ['100%'], approvalBefore: [0] }) });
    rolloutId = ((await started.json()) as { id: string }).id;
  });
  afterEach(async () => await ctl.close());

  const state = async () => {
    const { rollouts } = ctl.store.t;
    return (await ctl.store.db.select({ state: rollouts.state }).from(rollouts).where(eq(rollouts.id, rolloutId)))[0]!.state;
  };

  it('shows a read-only session no rollout buttons and refuses its actions', async () => {
    const browser = await signedIn(ctl, (await createOperatorToken(ctl.store, ctl.clock, 'viewer', 'read')).token);
    const page = await (await browser.get(`/dashboard/rollouts/${rolloutId}`)).text();
    expect(page).not.toContain(`/actions/approve`);
    expect(page).toContain('Signed in with scope read: this session may not act on rollouts.');
    const response = await browser.post(`/dashboard/rollouts/${rolloutId}/actions/approve`, { _csrf: browser.csrf });
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('Your token has scope read, which may not approve rollouts; nothing was done.');
    expect(await state()).toBe('waiting-approval');
  });

  it('shows a read-only session no host action and refuses each one, changing nothing', async () => {
    const browser = await signedIn(ctl, (await createOperatorToken(ctl.store, ctl.clock, 'viewer', 'read')).token);
    const page = await (await browser.get('/dashboard/hosts/web-1')).text();
    expect(page).toContain('Your token&#39;s scope allows no change to this host.');
    for (const action of ['set-desired', 'pause', 'resume', 'remove']) {
      expect(page).not.toContain(`/actions/${action}`);
      const response = await browser.post(`/dashboard/hosts/web-1/actions/${action}`, { _csrf: browser.csrf, storePath: storePath(), confirmed: 'yes' });
      expect(response.status).toBe(403);
      expect(await response.text()).toContain('Your token has scope read, which may not');
    }
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).paused).toBe(false);
    expect((await ctl.operator('/v1/hosts/web-1')).status).toBe(200);
  });

  it('lets a deploy session pause a host but not remove it, as the API does', async () => {
    const browser = await signedIn(ctl, (await createOperatorToken(ctl.store, ctl.clock, 'deployer', 'deploy')).token);
    const page = await (await browser.get('/dashboard/hosts/web-1')).text();
    expect(page).toContain('/dashboard/hosts/web-1/actions/pause');
    expect(page).not.toContain('/actions/remove');
    const removal = await browser.post('/dashboard/hosts/web-1/actions/remove', { _csrf: browser.csrf, confirmed: 'yes' });
    expect(removal.status).toBe(403);
    expect(await removal.text()).toContain('Your token has scope deploy, which may not remove host; nothing was done.');
    expect((await ctl.operator('/v1/hosts/web-1')).status).toBe(200);
    expect((await browser.post('/dashboard/hosts/web-1/actions/pause', { _csrf: browser.csrf, confirmed: 'yes' })).status).toBe(303);
    expect((await (await ctl.operator('/v1/hosts/web-1')).json()).paused).toBe(true);
  });

  it('shows a deploy session the buttons and carries out its actions', async () => {
    const browser = await signedIn(ctl, (await createOperatorToken(ctl.store, ctl.clock, 'deployer', 'deploy')).token);
    const page = await (await browser.get(`/dashboard/rollouts/${rolloutId}`)).text();
    expect(page).toContain(`/dashboard/rollouts/${rolloutId}/actions/approve`);
    const response = await browser.post(`/dashboard/rollouts/${rolloutId}/actions/approve`, { _csrf: browser.csrf });
    expect(response.status).toBe(303);
    expect(await state()).toBe('running');
  });
});
