import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../../shared/src/protocol.js';
import { HostList, HostEvents, ManifestSummary, EnrollmentTokenCreated } from '../../../shared/src/operator-api.js';
import { createOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { execute, newHostKeys, registeredHost, snapshot, storePath, testController, type TestController } from '../helpers.js';

async function errorOf(response: Response): Promise<ErrorBody['error']> {
  return ErrorBody.parse(await response.json()).error;
}

describe('operator API', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
  });
  afterEach(async () => await ctl.close());

  const setDesired = (host: string, body: string) => ctl.operator(`/v1/hosts/${host}/desired`, { method: 'PUT', body });

  describe('refuses bad input with a 4xx JSON error naming the problem, and writes nothing', () => {
    beforeEach(async () => {
      await registeredHost(ctl, 'web-1');
    });

    it('refuses malformed JSON', async () => {
      const before = await snapshot(ctl);
      const response = await setDesired('web-1', '{"storePath": ');
      expect(response.status).toBe(400);
      const error = await errorOf(response);
      expect(error.code).toBe('malformed-json');
      expect(error.message).toMatch(/not valid JSON/);
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses an unknown host', async () => {
      const before = await snapshot(ctl);
      const response = await setDesired('ghost', JSON.stringify({ storePath: storePath() }));
      expect(response.status).toBe(404);
      const error = await errorOf(response);
      expect(error.code).toBe('unknown-host');
      expect(error.message).toContain('ghost');
      expect(await snapshot(ctl)).toEqual(before);
      expect((await ctl.operator('/v1/hosts/ghost')).status).toBe(404);
      expect((await ctl.operator('/v1/hosts/ghost/events')).status).toBe(404);
    });

    it('refuses an invalid store path, naming the field', async () => {
      const before = await snapshot(ctl);
      const response = await setDesired('web-1', JSON.stringify({ storePath: '/nix/store/not-a-hash-system' }));
      expect(response.status).toBe(400);
      const error = await errorOf(response);
      expect(error.code).toBe('invalid-request');
      expect(error.message).toContain('storePath');
      expect(error.issues).toEqual(['storePath: not a Nix store path (must have a 32-character Nix base-32 hash)']);
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses unknown fields and bad actions', async () => {
      const before = await snapshot(ctl);
      const response = await setDesired('web-1', JSON.stringify({ storePath: storePath(), action: 'reboot-now', extra: 1 }));
      expect(response.status).toBe(400);
      const error = await errorOf(response);
      expect(error.message).toContain('action');
      expect(error.message).toContain('extra');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses an oversized body with 413', async () => {
      const before = await snapshot(ctl);
      const response = await setDesired('web-1', JSON.stringify({ storePath: storePath(), pad: 'x'.repeat(100 * 1024) }));
      expect(response.status).toBe(413);
      expect((await errorOf(response)).code).toBe('body-too-large');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses a request without a token', async () => {
      const before = await snapshot(ctl);
      const response = await ctl.app.request('/v1/hosts/web-1/desired', { method: 'PUT', body: JSON.stringify({ storePath: storePath() }) });
      expect(response.status).toBe(401);
      const error = await errorOf(response);
      expect(error.code).toBe('missing-token');
      expect(error.message).toContain('Bearer');
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('refuses an invalid or revoked token', async () => {
      const { id } = await createOperatorToken(ctl.store, ctl.clock, 'leaver');
      await execute(ctl.store, sql`update operator_tokens set revoked_at = 1 where id = ${id}`);
      const before = await snapshot(ctl);
      for (const token of ['shoal_op_wrong', ctl.operatorToken.slice(0, -1)]) {
        const response = await ctl.app.request('/v1/hosts/web-1/desired', {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify({ storePath: storePath() }),
        });
        expect(response.status).toBe(401);
        expect((await errorOf(response)).code).toBe('invalid-token');
      }
      expect(await snapshot(ctl)).toEqual(before);
    });

    it('does not accept an agent session as an operator token', async () => {
      const session = await ctl.deps.sessions.create('web-1');
      const response = await ctl.app.request('/v1/hosts', { headers: { authorization: `Bearer ${session.token}` } });
      expect(response.status).toBe(401);
    });
  });

  it('gives each host its own increasing manifest versions', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const versions: Array<[string, number]> = [];
    for (const [host, hash] of [['web-1', 'a'], ['web-1', 'b'], ['web-2', 'c'], ['web-1', 'a']] as const) {
      const response = await setDesired(host, JSON.stringify({ storePath: storePath('sys', hash), action: 'switch' }));
      expect(response.status).toBe(200);
      versions.push([host, ManifestSummary.parse(await response.json()).version]);
    }
    expect(versions).toEqual([['web-1', 1], ['web-1', 2], ['web-2', 1], ['web-1', 3]]);
    const list = HostList.parse(await (await ctl.operator('/v1/hosts')).json());
    expect(list.hosts.map((h) => [h.name, h.desired?.version, h.desired?.storePath])).toEqual([
      ['web-1', 3, storePath('sys', 'a')],
      ['web-2', 1, storePath('sys', 'c')],
    ]);
  });

  it('registers a host ahead of time and refuses another key for it', async () => {
    const host = newHostKeys('db-1');
    const register = (publicKey: string) =>
      ctl.operator('/v1/hosts', { method: 'POST', body: JSON.stringify({ name: 'db-1', publicKey, tags: ['db'] }) });
    expect((await register(host.publicKey)).status).toBe(201);
    expect((await register(host.publicKey)).status).toBe(200);
    const conflict = await register(newHostKeys('db-1').publicKey);
    expect(conflict.status).toBe(409);
    expect((await errorOf(conflict)).code).toBe('host-key-conflict');
    const status = await (await ctl.operator('/v1/hosts/db-1')).json();
    expect(status).toMatchObject({ name: 'db-1', tags: ['db'], connection: 'offline', desired: null });
  });

  it('pages through a host’s event history', async () => {
    await registeredHost(ctl, 'web-1');
    for (const hash of ['a', 'b', 'c']) await setDesired('web-1', JSON.stringify({ storePath: storePath('sys', hash) }));
    const first = HostEvents.parse(await (await ctl.operator('/v1/hosts/web-1/events?limit=2')).json()).events;
    expect(first.map((e) => e.kind)).toEqual(['host-registered', 'desired-set']);
    const rest = HostEvents.parse(await (await ctl.operator(`/v1/hosts/web-1/events?afterId=${first[1]!.id}`)).json()).events;
    expect(rest.map((e) => [e.kind, e.data.version, e.actor])).toEqual([
      ['desired-set', 2, 'operator:test-admin'],
      ['desired-set', 3, 'operator:test-admin'],
    ]);
    const bad = await ctl.operator('/v1/hosts/web-1/events?limit=0');
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).message).toContain('limit');
  });

  it('creates enrollment tokens that are stored only as hashes', async () => {
    const response = await ctl.operator('/v1/enrollment-tokens', { method: 'POST', body: JSON.stringify({ ttlSeconds: 600, maxUses: 3, tags: ['web'] }) });
    expect(response.status).toBe(201);
    const created = EnrollmentTokenCreated.parse(await response.json());
    expect(created.maxUses).toBe(3);
    const [row] = await ctl.store.db.select().from(ctl.store.t.enrollmentTokens);
    expect(JSON.stringify(row)).not.toContain(created.token);
    expect(row!.tags).toEqual(['web']);
  });
});
