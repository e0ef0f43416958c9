import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestPayload } from '../../../shared/src/protocol.js';
import { issueManifest } from '../../../controller/src/manifests/issue.js';
import { renewExpiringManifests } from '../../../controller/src/manifests/renew.js';
import { createManifestSigner } from '../../../controller/src/manifests/signer.js';
import type { Envelope } from '../../../shared/src/envelope.js';
import { generateNamedKey } from '../../../shared/src/keys.js';
import type { PublishedManifest } from '../../../controller/src/manifests/bus.js';
import { asc, eq, sql } from 'drizzle-orm';
import { count, desiredManifest, execute, registeredHost, seedHosts, storePath, testController, type TestController } from '../helpers.js';

const HOUR = 3600_000;

function payloadOf(envelope: string) {
  const parsed = JSON.parse(envelope) as { payload: string };
  return ManifestPayload.parse(JSON.parse(Buffer.from(parsed.payload, 'base64').toString('utf8')));
}

describe('manifest renewal', () => {
  let ctl: TestController;
  let announced: PublishedManifest[];
  beforeEach(async () => {
    ctl = await testController({ manifestTtlMs: 3 * HOUR });
    announced = [];
    ctl.deps.bus.onPublish((m) => announced.push(m));
    for (const name of ['web-1', 'web-2']) await registeredHost(ctl, name);
  });
  afterEach(async () => await ctl.close());

  const issue = async (host: string, hash: string) => {
    const outcome = await issueManifest(ctl.deps, { host, storePath: storePath('sys', hash), action: 'switch', rolloutId: 'r-1' }, { kind: 'desired-set', actor: 'test' });
    expect(outcome.ok).toBe(true);
  };

  it('leaves manifests alone while more than a third of their TTL remains', async () => {
    await issue('web-1', 'a');
    ctl.clock.advance(2 * HOUR - 1);
    expect(await renewExpiringManifests(ctl.deps)).toBe(0);
    expect(await count(ctl, 'manifests')).toBe(1);
  });

  it('re-signs the unchanged desired state with a new version before it expires', async () => {
    await issue('web-1', 'a');
    await issue('web-2', 'b');
    ctl.clock.advance(2 * HOUR);
    announced = [];
    expect(await renewExpiringManifests(ctl.deps)).toBe(2);
    const renewed = (await desiredManifest(ctl.store, 'web-1'))!;
    const payload = payloadOf(renewed.envelope);
    expect(payload).toMatchObject({ host: 'web-1', version: 2, storePath: storePath('sys', 'a'), action: 'switch', rolloutId: 'r-1' });
    expect(Date.parse(payload.expiresAt)).toBe(ctl.clock.now() + 3 * HOUR);
    expect(announced.map((m) => [m.host, m.version]).sort()).toEqual([['web-1', 2], ['web-2', 2]]);
    const { events } = ctl.store.t;
    const kinds = await ctl.store.db.select({ kind: events.kind, actor: events.actor }).from(events).where(eq(events.host, 'web-1')).orderBy(asc(events.id));
    expect(kinds.at(-1)).toEqual({ kind: 'manifest-renewed', actor: 'controller' });
    // Renewed, the manifests are fresh again: a second pass right away does nothing.
    expect(await renewExpiringManifests(ctl.deps)).toBe(0);
  });

  it('re-signs at once a desired state signed by a controller key it no longer signs with (key rotation)', async () => {
    await issue('web-1', 'a');
    const rotated = { ...ctl.deps, signer: createManifestSigner(generateNamedKey('controller-2')) };
    expect(await renewExpiringManifests(rotated)).toBe(1);
    const renewed = (await desiredManifest(ctl.store, 'web-1'))!;
    expect((JSON.parse(renewed.envelope) as Envelope).signatures.map((s) => s.keyid)).toEqual(['controller-2']);
    expect(payloadOf(renewed.envelope)).toMatchObject({ version: 2, storePath: storePath('sys', 'a') });
    // Signed by the current key, it is left alone until it nears expiry.
    expect(await renewExpiringManifests(rotated)).toBe(0);
  });

  it('keeps a quiet host’s manifest valid across many TTLs', async () => {
    await issue('web-1', 'a');
    for (let i = 0; i < 10; i++) {
      ctl.clock.advance(HOUR);
      await renewExpiringManifests(ctl.deps);
      expect((await desiredManifest(ctl.store, 'web-1'))!.expiresAt).toBeGreaterThan(ctl.clock.now() + HOUR - 1);
    }
    expect((await desiredManifest(ctl.store, 'web-1'))!.storePath).toBe(storePath('sys', 'a'));
  });

  it('renews hundreds of hosts in batches without holding the event loop', async () => {
    const hosts = Array.from({ length: 600 }, (_, i) => `bulk-${i}`);
    await seedHosts(ctl.store, hosts.map((name) => ({ name })));
    for (const host of hosts) await issue(host, 'c');
    ctl.clock.advance(2 * HOUR + 1);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const renewing = renewExpiringManifests(ctl.deps);
    const renewed = await renewing;
    clearInterval(ticker);
    expect(renewed).toBe(600);
    expect(ticks).toBeGreaterThan(0);
  });

  it('does not renew a desired state the host rolled back, so the host is not made to fail again', async () => {
    await issue('web-1', 'a');
    await issue('web-2', 'b');
    await execute(ctl.store, sql`update hosts set reported_version = 1, phase = 'rolled-back' where name = 'web-1'`);
    await execute(ctl.store, sql`update hosts set reported_version = 1, phase = 'healthy' where name = 'web-2'`);
    ctl.clock.advance(2 * HOUR);
    expect(await renewExpiringManifests(ctl.deps)).toBe(1);
    expect((await desiredManifest(ctl.store, 'web-1'))!.version).toBe(1);
    expect((await desiredManifest(ctl.store, 'web-2'))!.version).toBe(2);
  });
});
