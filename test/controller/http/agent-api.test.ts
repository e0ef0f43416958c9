import nacl from 'tweetnacl';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tweetnaclEd25519 } from '../../../shared/src/ed25519.js';
import { verifyEnvelope } from '../../../shared/src/envelope.js';
import { fromBase64 } from '../../../shared/src/keys.js';
import {
  ErrorBody,
  MANIFEST_PAYLOAD_TYPE,
  ManifestPayload,
  ManifestResponse,
  PROTOCOL_VERSION,
  ReportAck,
  type Report,
} from '../../../shared/src/protocol.js';
import { createEnrollmentToken } from '../../../controller/src/hosts/enrollment.js';
import {
  count,
  newHostKeys,
  postJson,
  registeredHost,
  sampleReport,
  sessionFor,
  signChallenge,
  snapshot,
  storePath,
  testController,
  type TestController,
  type TestHost,
} from '../helpers.js';

async function errorOf(response: Response): Promise<ErrorBody['error']> {
  return ErrorBody.parse(await response.json()).error;
}

describe('agent API', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
  });
  afterEach(async () => await ctl.close());

  const setDesired = async (host: string, path: string) => {
    const response = await ctl.operator(`/v1/hosts/${host}/desired`, { method: 'PUT', body: JSON.stringify({ storePath: path }) });
    expect(response.status).toBe(200);
  };
  const getManifest = (session: string, headers: Record<string, string> = {}, query = '') =>
    ctl.app.request(`/v1/agent/manifest${query}`, { headers: { authorization: `Bearer ${session}`, ...headers } });

  describe('enrollment', () => {
    const enroll = (host: TestHost, token: string) =>
      postJson(ctl, '/v1/agent/enroll', { protocol: PROTOCOL_VERSION, host: host.name, publicKey: host.publicKey, token });
    const token = async (spec: { ttlMs?: number; maxUses?: number | null; tags?: string[] } = {}) =>
      (await createEnrollmentToken(ctl.store, ctl.clock, { ttlMs: spec.ttlMs ?? 3600_000, maxUses: spec.maxUses ?? null, tags: spec.tags ?? [] })).token;

    it('admits a host with a valid token and gives it the token’s tags', async () => {
      const host = newHostKeys('web-1');
      const response = await enroll(host, await token({ tags: ['web'] }));
      expect(response.status).toBe(201);
      expect(await response.json()).toEqual({ protocol: PROTOCOL_VERSION, host: 'web-1' });
      const status = await (await ctl.operator('/v1/hosts/web-1')).json();
      expect(status).toMatchObject({ name: 'web-1', tags: ['web'] });
      await sessionFor(ctl, host);
    });

    it('refuses an expired token', async () => {
      const expiring = await token({ ttlMs: 60_000 });
      ctl.clock.advance(61_000);
      const before = await snapshot(ctl);
      const response = await enroll(newHostKeys('web-1'), expiring);
      expect(response.status).toBe(401);
      expect(await errorOf(response)).toMatchObject({ code: 'enrollment-token-expired', message: expect.stringContaining('expired') });
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses a token that has been used up', async () => {
      const once = await token({ maxUses: 1 });
      expect((await enroll(newHostKeys('web-1'), once)).status).toBe(201);
      const before = await snapshot(ctl);
      const response = await enroll(newHostKeys('web-2'), once);
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe('enrollment-token-used-up');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses a wrong token', async () => {
      await token();
      const before = await snapshot(ctl);
      const response = await enroll(newHostKeys('web-1'), 'shoal_enroll_guess');
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe('invalid-enrollment-token');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('treats re-enrolling with the same key as a no-op, and another key as a conflict', async () => {
      const host = newHostKeys('web-1');
      const twice = await token({ maxUses: 1 });
      const other = await token();
      expect((await enroll(host, twice)).status).toBe(201);
      const before = await snapshot(ctl);
      expect((await enroll(host, twice)).status).toBe(200);
      expect(await snapshot(ctl)).toEqual(before);
      const response = await enroll(newHostKeys('web-1'), other);
      expect(response.status).toBe(409);
      expect(await errorOf(response)).toMatchObject({ code: 'host-key-conflict', message: expect.stringContaining('web-1') });
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('names the invalid field of a malformed enrollment', async () => {
      const response = await postJson(ctl, '/v1/agent/enroll', { protocol: PROTOCOL_VERSION, host: 'Web_1', publicKey: 'abc', token: 'x' });
      expect(response.status).toBe(400);
      const error = await errorOf(response);
      expect(new Set(error.issues?.map((issue) => issue.split(':')[0]))).toEqual(new Set(['host', 'publicKey']));
    });
  });

  it('refuses another protocol version with its own error code', async () => {
    const response = await postJson(ctl, '/v1/agent/challenge', { protocol: 2, host: 'web-1' });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toEqual({ code: 'protocol-mismatch', message: 'controller speaks protocol 1, request has protocol 2' });
  });

  describe('challenge authentication', () => {
    let host: TestHost;
    beforeEach(async () => {
      host = await registeredHost(ctl, 'web-1');
    });
    const challenge = async (name = host.name) => {
      const response = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: name });
      return ((await response.json()) as { nonce: string }).nonce;
    };
    const session = (nonce: string, signature: string, name = host.name) =>
      postJson(ctl, '/v1/agent/session', { protocol: PROTOCOL_VERSION, host: name, nonce, signature });

    it('refuses a signature made with another key', async () => {
      const nonce = await challenge();
      const response = await session(nonce, signChallenge(newHostKeys('web-1'), nonce));
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe('bad-signature');
    });

    it('refuses a replayed nonce, even with a good signature', async () => {
      const nonce = await challenge();
      expect((await session(nonce, signChallenge(host, nonce))).status).toBe(200);
      const replay = await session(nonce, signChallenge(host, nonce));
      expect(replay.status).toBe(401);
      expect((await errorOf(replay)).code).toBe('unknown-nonce');
    });

    it('refuses a nonce after its 60 s expiry', async () => {
      const nonce = await challenge();
      ctl.clock.advance(61_000);
      const response = await session(nonce, signChallenge(host, nonce));
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe('expired-nonce');
    });

    it('answers 404 to a challenge for an unknown host', async () => {
      const response = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: 'ghost' });
      expect(response.status).toBe(404);
      expect((await errorOf(response)).code).toBe('unknown-host');
    });

    it('refuses a missing or unknown session', async () => {
      expect((await errorOf(await ctl.app.request('/v1/agent/manifest'))).code).toBe('missing-session');
      const unknown = await getManifest('shoal_s_nope');
      expect(unknown.status).toBe(401);
      expect((await errorOf(unknown)).code).toBe('invalid-session');
    });

    it('lets host A neither read host B’s manifest nor report as B', async () => {
      const b = await registeredHost(ctl, 'web-2');
      await setDesired('web-1', storePath('sys', 'a'));
      await setDesired('web-2', storePath('sys', 'b'));
      const sessionA = await sessionFor(ctl, host);
      await sessionFor(ctl, b);

      const own = ManifestResponse.parse(await (await getManifest(sessionA)).json());
      expect(ManifestPayload.parse(JSON.parse(Buffer.from(own.envelope.payload, 'base64').toString())).host).toBe('web-1');
      const foreign = await getManifest(sessionA, {}, '?host=web-2');
      expect(foreign.status).toBe(403);
      expect((await errorOf(foreign)).code).toBe('wrong-host');

      const before = await snapshot(ctl);
      const asB = await postJson(
        ctl,
        '/v1/agent/reports',
        { protocol: PROTOCOL_VERSION, host: 'web-2', reports: [sampleReport(1, 'healthy')] },
        { authorization: `Bearer ${sessionA}` },
      );
      expect(asB.status).toBe(403);
      expect(await snapshot(ctl)).toEqual(before);

      // A signature by A over a nonce issued for B proves nothing about B.
      const nonceForB = await challenge('web-2');
      expect((await session(nonceForB, signChallenge(host, nonceForB), 'web-2')).status).toBe(401);
    });
  });

  describe('manifest delivery', () => {
    let session: string;
    beforeEach(async () => {
      session = await sessionFor(ctl, await registeredHost(ctl, 'web-1'));
    });

    it('answers 204 while no desired state is set', async () => {
      expect((await getManifest(session)).status).toBe(204);
      expect((await getManifest(session, { 'if-none-match': '"v1"' })).status).toBe(204);
    });

    it('signs manifests so that tweetnacl (the agent’s verifier) accepts them', async () => {
      await setDesired('web-1', storePath());
      const body = ManifestResponse.parse(await (await getManifest(session)).json());
      const verified = verifyEnvelope(
        body.envelope,
        MANIFEST_PAYLOAD_TYPE,
        [{ keyId: ctl.controllerKey.keyId, publicKey: ctl.controllerKey.publicKey }],
        'controller',
        tweetnaclEd25519,
      );
      expect(verified.valid).toBe(true);
      if (!verified.valid) return;
      const payload = ManifestPayload.parse(JSON.parse(Buffer.from(verified.payload).toString('utf8')));
      expect(payload).toMatchObject({ host: 'web-1', version: 1, storePath: storePath(), action: 'safe-switch', rolloutId: null });
      expect(Date.parse(payload.expiresAt) - Date.parse(payload.issuedAt)).toBe(ctl.deps.manifestTtlMs);
      const raw = fromBase64(body.envelope.signatures[0]!.sig);
      expect(nacl.sign.detached.verify(Buffer.from('tampered'), raw, ctl.controllerKey.publicKey)).toBe(false);
    });

    it('answers 304 when the ETag still matches, and 200 once the version changed', async () => {
      await setDesired('web-1', storePath('sys', 'a'));
      const first = await getManifest(session);
      expect(first.headers.get('etag')).toBe('"v1"');
      const unchanged = await getManifest(session, { 'if-none-match': '"v1"' });
      expect(unchanged.status).toBe(304);
      expect(unchanged.headers.get('etag')).toBe('"v1"');
      expect(await unchanged.text()).toBe('');
      // A list, a weak tag and a wildcard name the held version too; the answer names the version itself.
      for (const held of ['"v0", W/"v1"', '*']) {
        const answer = await getManifest(session, { 'if-none-match': held });
        expect([answer.status, answer.headers.get('etag')]).toEqual([304, '"v1"']);
      }
      expect((await getManifest(session, { 'if-none-match': '"v7"' })).status).toBe(200);
      await setDesired('web-1', storePath('sys', 'b'));
      const changed = await getManifest(session, { 'if-none-match': '"v1"' });
      expect(changed.status).toBe(200);
      expect(changed.headers.get('etag')).toBe('"v2"');
    });

    it('counts a polling host as connected by polling until three intervals pass', async () => {
      await getManifest(session);
      const mode = async () => ((await (await ctl.operator('/v1/hosts/web-1')).json()) as { connection: string }).connection;
      expect(await mode()).toBe('polling');
      ctl.clock.advance(3 * 30_000 + 1);
      expect(await mode()).toBe('offline');
    });

    it('refuses waitSeconds above 60', async () => {
      const response = await getManifest(session, {}, '?waitSeconds=61');
      expect(response.status).toBe(400);
      expect((await errorOf(response)).message).toContain('waitSeconds');
    });
  });

  describe('reports', () => {
    let session: string;
    beforeEach(async () => {
      const host = await registeredHost(ctl, 'web-1');
      session = await sessionFor(ctl, host);
    });
    const post = (reports: Report[]) =>
      postJson(ctl, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports }, { authorization: `Bearer ${session}` });

    it('acknowledges a resent batch without storing or logging it twice', async () => {
      const batch = [sampleReport(1, 'accepted'), sampleReport(2, 'realising'), sampleReport(3, 'healthy')];
      const first = ReportAck.parse(await (await post(batch)).json());
      expect(first).toEqual({ protocol: PROTOCOL_VERSION, ackedSeqs: [1, 2, 3], stored: 3 });
      const eventsBefore = await count(ctl, 'events');
      const again = ReportAck.parse(await (await post([...batch, sampleReport(4, 'healthy')])).json());
      expect(again).toEqual({ protocol: PROTOCOL_VERSION, ackedSeqs: [1, 2, 3, 4], stored: 1 });
      expect(await count(ctl, 'reports')).toBe(4);
      expect(await count(ctl, 'events')).toBe(eventsBefore + 1);
    });

    it('takes the host’s status from the highest seq, not the latest arrival', async () => {
      await post([sampleReport(5, 'rolled-back', { reason: 'health check web failed' })]);
      await post([sampleReport(4, 'checking')]);
      const status = (await (await ctl.operator('/v1/hosts/web-1')).json()) as Record<string, unknown>;
      expect(status).toMatchObject({ phase: 'rolled-back', lastError: 'health check web failed', reportedVersion: 1, currentSystem: storePath('old', 'b') });
      await post([sampleReport(6, 'healthy')]);
      expect(await (await ctl.operator('/v1/hosts/web-1')).json()).toMatchObject({ phase: 'healthy', lastError: null });
    });

    it('refuses a malformed report body and writes nothing', async () => {
      const before = await snapshot(ctl);
      const response = await ctl.app.request('/v1/agent/reports', {
        method: 'POST',
        headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' },
        body: '{"protocol":1,"reports":[{"seq":1,',
      });
      expect(response.status).toBe(400);
      expect((await errorOf(response)).code).toBe('malformed-json');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses an invalid report and stores none of its batch', async () => {
      const before = await snapshot(ctl);
      const response = await post([sampleReport(1, 'healthy'), { ...sampleReport(2, 'healthy'), storePath: '/tmp/evil' }]);
      expect(response.status).toBe(400);
      expect((await errorOf(response)).message).toContain('reports.1.storePath');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('accepts report batches up to 1 MiB but not beyond', async () => {
      const long = (seq: number) => sampleReport(seq, 'failed', { reason: 'x'.repeat(4000) });
      const big = Array.from({ length: 200 }, (_, i) => long(i + 1));
      expect((await post(big)).status).toBe(200);
      const before = await snapshot(ctl);
      const huge = Array.from({ length: 300 }, (_, i) => long(i + 1000));
      const response = await post(huge);
      expect(response.status).toBe(413);
      expect(await snapshot(ctl)).toEqual(before);
    });
  });
});

