import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../../shared/src/protocol.js';
import { createOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { count, registeredHost, signedBundle, storePath, testController, type TestController } from '../helpers.js';
import { signIn } from '../dashboard/session-helpers.js';

/** A CI job holds a 'ci' token: it can publish a release, and cannot move a host, read the fleet or sign in. */
describe('operator token scopes', () => {
  let ctl: TestController;
  let ciToken: string;
  beforeEach(() => {
    ctl = testController({ mode: 'two-key' });
    registeredHost(ctl, 'web-1');
    ciToken = createOperatorToken(ctl.database.db, ctl.clock, 'ci-job', 'ci').token;
  });
  afterEach(() => ctl.close());

  const asCi = (method: string, path: string, body?: unknown) =>
    Promise.resolve(
      ctl.app.request(path, {
        method,
        headers: { authorization: `Bearer ${ciToken}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    );

  it('lets a ci token publish a release', async () => {
    const response = await asCi('POST', '/v1/releases', signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: storePath() }]));
    expect(response.status).toBe(201);
    expect(count(ctl, 'releases')).toBe(1);
  });

  it.each([
    ['GET', '/v1/hosts'],
    ['PUT', '/v1/hosts/web-1/desired', { storePath: storePath() }],
    ['GET', '/v1/releases'],
    ['GET', '/v1/releases/r1'],
    ['POST', '/v1/rollouts', { release: 'r1', waves: ['100%'] }],
    ['POST', '/v1/enrollment-tokens', { ttlSeconds: 60 }],
    ['GET', '/v1/webhooks'],
  ])('refuses %s %s to a ci token with 403 naming the scope', async (method, path, body?: unknown) => {
    const response = await asCi(method, path, body);
    expect(response.status).toBe(403);
    const { error } = ErrorBody.parse(await response.json());
    expect(error.code).toBe('insufficient-scope');
    expect(error.message).toBe(
      `operator token "ci-job" has scope ci, which may only publish releases (POST /v1/releases); ${method} ${path} needs an admin token`,
    );
    expect(count(ctl, 'manifests')).toBe(0);
  });

  it('keeps a ci token out of the dashboard', async () => {
    const { response } = await signIn(ctl, ciToken);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('That token has scope ci: it may only publish releases');
  });

  it('treats tokens made before scopes existed as admin', async () => {
    expect((await ctl.operator('/v1/hosts')).status).toBe(200);
    const row = ctl.database.sqlite.prepare("select scope from operator_tokens where name = 'test-admin'").get();
    expect(row).toEqual({ scope: 'admin' });
  });
});
