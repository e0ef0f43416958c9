import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyFingerprint, fromBase64 } from '../../../shared/src/keys.js';
import { MAX_VERSION_STEP, PROTOCOL_VERSION, type AgentWatermark } from '../../../shared/src/protocol.js';
import { signedIn } from '../dashboard/session-helpers.js';
import { eventsOf, execute, newHostKeys, postJson, registeredHost, signChallenge, storePath, testController, type TestController, type TestHost } from '../helpers.js';

/** The agent's HTTP login, telling its key and watermark as agents do. */
async function login(ctl: TestController, host: TestHost, watermark?: AgentWatermark): Promise<Response> {
  const challenge = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name, publicKey: host.publicKey });
  if (challenge.status !== 200) return challenge;
  const { nonce } = (await challenge.json()) as { nonce: string };
  return postJson(ctl, '/v1/agent/session', {
    protocol: PROTOCOL_VERSION,
    host: host.name,
    nonce,
    signature: signChallenge(host, nonce),
    publicKey: host.publicKey,
    ...(watermark ? { watermark } : {}),
  });
}

const setDesired = async (ctl: TestController, host: string, path = storePath('sys', 'a')) => {
  const response = await ctl.operator(`/v1/hosts/${host}/desired`, { method: 'PUT', body: JSON.stringify({ storePath: path }) });
  expect(response.status).toBe(200);
  return (await response.json()) as { version: number; storePath: string };
};

const events = async (ctl: TestController, kind: string) => (await eventsOf(ctl.store, kind)).map((row) => row.data);

describe('a host ahead of its controller (restored from an older backup)', () => {
  let ctl: TestController;
  let web: TestHost;
  beforeEach(async () => {
    ctl = await testController();
    web = await registeredHost(ctl, 'web-1');
  });
  afterEach(async () => await ctl.close());

  it('issues the next manifest above the version the agent reports, leaving the old desired state unsent', async () => {
    await setDesired(ctl, 'web-1');
    // The host answered version 1 (in the backup), then accepted up to 40 from the controller that was lost.
    await execute(ctl.store, sql`update hosts set reported_version = 1, phase = 'healthy' where name = 'web-1'`);
    const session = await login(ctl, web, { highestVersion: 40, highestFloor: 2 });
    expect(session.status).toBe(200);
    expect(await events(ctl, 'version-reported')).toEqual([{ reported: 40, previous: 1, floor: 2, then: 'advanced' }]);
    // Nothing is desired now: re-sending version 1 would only be refused as a replay.
    const { token } = (await session.json()) as { token: string };
    expect((await ctl.app.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
    expect((await setDesired(ctl, 'web-1', storePath('sys', 'b'))).version).toBe(41);
  });

  it('re-signs a desired state set since the restore, that the host has not answered, above its version', async () => {
    const set = await setDesired(ctl, 'web-1', storePath('sys', 'c'));
    expect(set.version).toBe(1);
    const session = await login(ctl, web, { highestVersion: 7, highestFloor: 0 });
    const { token } = (await session.json()) as { token: string };
    const manifest = await ctl.app.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } });
    expect(manifest.status).toBe(200);
    const body = (await manifest.json()) as { version: number };
    expect(body.version).toBe(8);
    const status = (await (await ctl.operator('/v1/hosts/web-1')).json()) as { desired: { version: number; storePath: string } };
    expect(status.desired).toMatchObject({ version: 8, storePath: storePath('sys', 'c') });
    expect(await events(ctl, 'version-reported')).toEqual([{ reported: 7, previous: 1, floor: 0, then: 'reissued', version: 8 }]);
  });

  it('does not believe a version more than MAX_VERSION_STEP above what it signed, and says so once', async () => {
    await setDesired(ctl, 'web-1');
    const absurd = 1 + MAX_VERSION_STEP + 1;
    expect((await login(ctl, web, { highestVersion: absurd, highestFloor: 0 })).status).toBe(200);
    expect((await login(ctl, web, { highestVersion: absurd, highestFloor: 0 })).status).toBe(200);
    expect(await events(ctl, 'version-reported')).toEqual([{ reported: absurd, previous: 1, floor: 0, signed: 1, then: 'ignored' }]);
    expect((await setDesired(ctl, 'web-1', storePath('sys', 'd'))).version).toBe(2);
  });

  it('changes nothing for an agent at or below the controller', async () => {
    await setDesired(ctl, 'web-1');
    await setDesired(ctl, 'web-1', storePath('sys', 'g'));
    expect((await login(ctl, web, { highestVersion: 1, highestFloor: 0 })).status).toBe(200);
    expect((await login(ctl, web)).status).toBe(200);
    expect(await events(ctl, 'version-reported')).toEqual([]);
    expect((await setDesired(ctl, 'web-1', storePath('sys', 'h'))).version).toBe(3);
  });
});

describe('unknown hosts trying to connect', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
  });
  afterEach(async () => await ctl.close());

  it('records a host it does not know with its key fingerprint, and adopts it with one call, above its version', async () => {
    const lost = newHostKeys('web-3');
    const refused = await login(ctl, lost, { highestVersion: 12, highestFloor: 1 });
    expect(refused.status).toBe(404);
    const fingerprint = keyFingerprint(fromBase64(lost.publicKey));
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe(
      `no host named "web-3"; this login (key ${fingerprint}) was recorded: an operator can adopt it with \`shoal host adopt web-3\``,
    );
    const listed = (await (await ctl.operator('/v1/unknown-hosts')).json()) as { hosts: unknown[] };
    expect(listed.hosts).toMatchObject([{ name: 'web-3', fingerprint, publicKey: lost.publicKey, attempts: 1, highestVersion: 12, highestFloor: 1 }]);

    const adopted = await ctl.operator('/v1/unknown-hosts/web-3/adopt', { method: 'POST', body: JSON.stringify({ tags: ['web'] }) });
    expect(adopted.status).toBe(201);
    expect(await adopted.json()).toMatchObject({ name: 'web-3', tags: ['web'] });
    expect((await login(ctl, lost, { highestVersion: 12, highestFloor: 1 })).status).toBe(200);
    expect((await setDesired(ctl, 'web-3')).version).toBe(13);
    expect(((await (await ctl.operator('/v1/unknown-hosts')).json()) as { hosts: unknown[] }).hosts).toEqual([]);
  });

  it('does not record a login whose signature does not verify under the key it presents', async () => {
    const claimed = newHostKeys('web-4');
    const other = newHostKeys('web-4');
    const challenge = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: 'web-4', publicKey: claimed.publicKey });
    const { nonce } = (await challenge.json()) as { nonce: string };
    const session = await postJson(ctl, '/v1/agent/session', { protocol: PROTOCOL_VERSION, host: 'web-4', nonce, signature: signChallenge(other, nonce), publicKey: claimed.publicKey });
    expect(session.status).toBe(404);
    expect(((await (await ctl.operator('/v1/unknown-hosts')).json()) as { hosts: unknown[] }).hosts).toEqual([]);
  });

  it('asks which key to adopt when several tried the name, and adopts the one named', async () => {
    const real = newHostKeys('web-5');
    const impostor = newHostKeys('web-5');
    await login(ctl, real);
    await login(ctl, impostor);
    const ambiguous = await ctl.operator('/v1/unknown-hosts/web-5/adopt', { method: 'POST', body: '{}' });
    expect(ambiguous.status).toBe(409);
    expect(((await ambiguous.json()) as { error: { code: string } }).error.code).toBe('ambiguous-key');
    const fingerprint = keyFingerprint(fromBase64(real.publicKey));
    const adopted = await ctl.operator('/v1/unknown-hosts/web-5/adopt', { method: 'POST', body: JSON.stringify({ fingerprint }) });
    expect(adopted.status).toBe(201);
    expect((await login(ctl, real)).status).toBe(200);
    expect((await login(ctl, impostor)).status).toBe(401);
  });

  it('refuses to adopt a name that never tried to connect, or one that is known', async () => {
    await registeredHost(ctl, 'web-1');
    const none = await ctl.operator('/v1/unknown-hosts/web-9/adopt', { method: 'POST', body: '{}' });
    expect(none.status).toBe(404);
    const known = await ctl.operator('/v1/unknown-hosts/web-1/adopt', { method: 'POST', body: '{}' });
    expect(known.status).toBe(409);
    expect(((await known.json()) as { error: { code: string } }).error.code).toBe('host-exists');
  });
});

describe('a restored controller that re-used a version the host accepted for another system', () => {
  it('re-signs its desired state above it instead of sending a manifest the host refuses as equivocation', async () => {
    const ctl = await testController();
    try {
      const web = await registeredHost(ctl, 'web-1');
      // Version 1 was issued since the restore; the host had accepted a version 1 for another system.
      const set = await setDesired(ctl, 'web-1', storePath('sys', 'c'));
      expect(set.version).toBe(1);
      const session = await login(ctl, web, { highestVersion: 1, highestFloor: 0, highestStorePath: storePath('sys', 'b') });
      const { token } = (await session.json()) as { token: string };
      const manifest = (await (await ctl.app.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } })).json()) as { version: number };
      expect(manifest.version).toBe(2);
      expect(await events(ctl, 'version-reported')).toEqual([{ reported: 1, previous: 1, floor: 0, then: 'reissued', version: 2 }]);
      // The same system at the same version is the normal case: nothing happens.
      expect((await login(ctl, web, { highestVersion: 2, highestFloor: 0, highestStorePath: storePath('sys', 'c') })).status).toBe(200);
      expect(await events(ctl, 'version-reported')).toHaveLength(1);
    } finally {
      await ctl.close();
    }
  });
});

describe('the dashboard', () => {
  it('shows unknown hosts trying to connect with their key fingerprints', async () => {
    const ctl = await testController();
    try {
      const lost = newHostKeys('web-6');
      expect((await login(ctl, lost, { highestVersion: 4, highestFloor: 0 })).status).toBe(404);
      const page = await (await (await signedIn(ctl)).get('/dashboard')).text();
      expect(page).toContain('Unknown hosts trying to connect');
      expect(page).toContain(keyFingerprint(fromBase64(lost.publicKey)));
      expect(page).toContain('v4 (floor 0)');
    } finally {
      await ctl.close();
    }
  });
});
