import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorBody, PROTOCOL_VERSION, ReportAck } from '../../../shared/src/protocol.js';
import { SESSION_TTL_MS } from '../../../controller/src/auth/sessions.js';
import { createApp } from '../../../controller/src/app.js';
import { createDeps, type ControllerDeps } from '../../../controller/src/deps.js';
import { createManifestSigner } from '../../../controller/src/manifests/signer.js';
import { registeredHost, sampleReport, signChallenge, testController, type TestController, type TestHost } from '../helpers.js';

/**
 * Two replicas of the agent API on one database: a second app with deps of its own (its own
 * challenge and session memory) on the first one's store, so whatever it accepts it found in the
 * database. (Two stores on one SQLite file cannot share a process; test/controller/auth/agent-sessions.test.ts
 * runs the stores themselves as two PostgreSQL replicas.)
 */
describe('agent API across replicas', () => {
  let ctl: TestController;
  let other: ControllerDeps;
  let replicas: { a: TestController['app']; b: ReturnType<typeof createApp> };
  let host: TestHost;
  beforeEach(async () => {
    ctl = await testController();
    other = createDeps({ store: ctl.store, signer: createManifestSigner(ctl.controllerKey), releaseTrust: ctl.deps.releaseTrust, clock: ctl.clock });
    await other.sessions.ready();
    replicas = { a: ctl.app, b: createApp(other) };
    host = await registeredHost(ctl, 'web-1');
  });
  afterEach(async () => {
    other.bus.releaseAll();
    await ctl.close();
  });

  const post = (app: TestController['app'], path: string, body: unknown, token?: string) =>
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const nonceFrom = async (app: TestController['app']) => {
    const response = await post(app, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name });
    expect(response.status).toBe(200);
    return ((await response.json()) as { nonce: string }).nonce;
  };
  const login = (app: TestController['app'], nonce: string) =>
    post(app, '/v1/agent/session', { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature: signChallenge(host, nonce) });
  const report = (app: TestController['app'], token: string, seq = 1) =>
    post(app, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports: [sampleReport(seq, 'healthy')] }, token);
  const errorOf = async (response: Response) => ErrorBody.parse(await response.json()).error;

  it('answers on one replica a challenge asked of another, and accepts the session on both', async () => {
    const response = await login(replicas.b, await nonceFrom(replicas.a));
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    const ack = await report(replicas.a, token);
    expect(ack.status).toBe(200);
    expect(ReportAck.parse(await ack.json()).ackedSeqs).toEqual([1]);
    expect((await report(replicas.b, token, 2)).status).toBe(200);
    expect((await replicas.b.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
  });

  it('spends a nonce on every replica once it is answered on one', async () => {
    const nonce = await nonceFrom(replicas.a);
    expect((await login(replicas.a, nonce)).status).toBe(200);
    const replay = await login(replicas.b, nonce);
    expect(replay.status).toBe(401);
    expect(await errorOf(replay)).toMatchObject({ code: 'unknown-nonce' });
  });

  it('refuses an expired nonce and an expired session on the other replica with the usual errors', async () => {
    const late = await nonceFrom(replicas.a);
    const { token } = (await (await login(replicas.a, await nonceFrom(replicas.a))).json()) as { token: string };
    expect((await report(replicas.b, token)).status).toBe(200);
    ctl.clock.advance(SESSION_TTL_MS);
    const expiredNonce = await login(replicas.b, late);
    expect(expiredNonce.status).toBe(401);
    expect(await errorOf(expiredNonce)).toEqual({ code: 'expired-nonce', message: 'nonce expired; ask for a new challenge' });
    for (const app of [replicas.b, replicas.a]) {
      const refused = await report(app, token, 2);
      expect(refused.status).toBe(401);
      expect(await errorOf(refused)).toEqual({ code: 'invalid-session', message: 'session is unknown or expired; authenticate again' });
    }
  });

  it('refuses everywhere the session of a host an operator removed on one replica', async () => {
    const { token } = (await (await login(replicas.a, await nonceFrom(replicas.a))).json()) as { token: string };
    expect((await report(replicas.b, token)).status).toBe(200);
    expect((await ctl.operator('/v1/hosts/web-1', { method: 'DELETE' })).status).toBe(200);
    const refused = await report(replicas.b, token, 2);
    expect(refused.status).toBe(401);
    expect((await errorOf(refused)).code).toBe('invalid-session');
  });
});
