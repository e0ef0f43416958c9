import { afterEach, describe, expect, it } from 'vitest';
import { ErrorBody, PROTOCOL_VERSION, WsClose, controllerAudience } from '../../../shared/src/protocol.js';
import { IN_MEMORY_AUDIENCE, postJson, registeredHost, signChallenge, testController, type TestController, type TestHost } from '../helpers.js';
import { AgentSocket, liveController, type LiveController } from '../server-helpers.js';

/**
 * A host signs the origin of the controller it means to talk to. A man in the middle who makes a
 * host log in to him (say at http://evil.example:8420) collects a signature that names his origin,
 * which the real controller does not accept.
 */
describe('host logins are bound to the controller the host meant', () => {
  const controllers: Array<TestController | LiveController> = [];
  afterEach(async () => {
    for (const ctl of controllers.splice(0)) await ctl.close();
  });

  async function login(ctl: TestController, host: TestHost, audience: string): Promise<Response> {
    const challenge = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name });
    const { nonce } = (await challenge.json()) as { nonce: string };
    return postJson(ctl, '/v1/agent/session', { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature: signChallenge(host, nonce, audience) });
  }

  it('refuses over HTTP a signature made for another origin', async () => {
    const ctl = await testController();
    controllers.push(ctl);
    const host = await registeredHost(ctl, 'web-1');
    const response = await login(ctl, host, 'http://evil.example:8420');
    expect(response.status).toBe(401);
    const { error } = ErrorBody.parse(await response.json());
    expect(error.code).toBe('bad-signature');
    expect(error.message).toContain(`for controller ${IN_MEMORY_AUDIENCE}`);
    expect((await login(ctl, host, IN_MEMORY_AUDIENCE)).status).toBe(200);
  });

  it('refuses over the websocket a signature made for another origin', async () => {
    const ctl = await liveController();
    controllers.push(ctl);
    const host = await ctl.register('web-1');
    const forged = new AgentSocket(ctl.handle.url, { audience: 'http://evil.example:8420' });
    await forged.authenticate(host);
    expect(await forged.expect('error')).toMatchObject({ code: 'bad-signature' });
    expect((await forged.closed).code).toBe(WsClose.authFailed);
    const genuine = new AgentSocket(ctl.handle.url);
    await genuine.authenticate(host);
    await genuine.expect('welcome');
    genuine.close();
  });

  it('with publicUrl set, wants the public origin whatever address the request reached', async () => {
    const ctl = await testController({ publicUrl: 'https://Shoal.Example.org/' });
    controllers.push(ctl);
    const host = await registeredHost(ctl, 'web-1');
    expect((await login(ctl, host, IN_MEMORY_AUDIENCE)).status).toBe(401);
    expect((await login(ctl, host, controllerAudience('https://shoal.example.org:443/some/path'))).status).toBe(200);
  });
});
