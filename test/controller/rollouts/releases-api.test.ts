import { eq } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { generateNamedKey } from '../../../shared/src/keys.js';
import { ErrorBody } from '../../../shared/src/protocol.js';
import { Release } from '../../../shared/src/rollout-api.js';
import { count, registeredHost, seedHosts, signedBundle, storePath, testController, type TestController, type TrustMode } from '../helpers.js';

/** Releases over POST /v1/releases: CI-signed bundles, verified statement by statement, and unsigned requests in single-key mode only. */
describe('publishing releases', () => {
  let ctl: TestController;
  afterEach(async () => await ctl.close());

  async function start(mode: TrustMode, hosts = ['web-1', 'web-2']): Promise<void> {
    ctl = await testController({ mode });
    for (const name of hosts) await registeredHost(ctl, name);
  }
  const publish = (body: unknown) => ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(body) });
  const errorOf = async (response: Response) => ErrorBody.parse(await response.json()).error;
  const web1 = storePath('nixos-system-web-1', 'b');
  const web2 = storePath('nixos-system-web-2', 'b');

  it('stores a CI-signed bundle and serves its provenance', async () => {
    await start('two-key');
    const bundle = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: web1, facts: { closureBytes: 123, kernel: null, initrd: null, kernelModules: null, switchInhibitors: null } }, { host: 'web-2', storePath: web2 }], {
      floor: 2,
      source: { revision: 'abc123', flakeLockHash: 'f'.repeat(64) },
    });
    const response = await publish(bundle);
    expect(response.status).toBe(201);
    const release = Release.parse(await response.json());
    expect(release.provenance).toEqual({
      signedBy: 'ci',
      keyId: 'ci-release-1',
      signedAt: '2030-01-02T03:04:05.000Z',
      floor: 2,
      source: { revision: 'abc123', flakeLockHash: 'f'.repeat(64) },
    });
    expect(Release.parse(await (await ctl.operator('/v1/releases/r1')).json()).provenance).toEqual(release.provenance);
    const listed = (await (await ctl.operator('/v1/releases')).json()) as { releases: Array<{ provenance: unknown }> };
    expect(listed.releases[0]!.provenance).toEqual(release.provenance);
    const { releaseHosts } = ctl.store.t;
    const [stored] = await ctl.store.db.select().from(releaseHosts).where(eq(releaseHosts.host, 'web-1'));
    expect(JSON.parse(stored!.statement!)).toEqual(bundle.hosts[0]!.statement);
    expect(stored!.facts).toMatchObject({ closureBytes: 123 });
  });

  it('refuses the whole bundle when any statement is bad, naming each host and why, and stores nothing', async () => {
    await start('two-key', ['web-1', 'web-2', 'web-3', 'web-4', 'web-5']);
    const good = signedBundle(ctl.ciKey, 'r1', ['web-1', 'web-2', 'web-3', 'web-4', 'web-5'].map((host) => ({ host, storePath: storePath(`nixos-system-${host}`, 'c') })), { floor: 1 });
    const stranger = signedBundle(generateNamedKey('someone-else'), 'r1', [{ host: 'web-2', storePath: storePath('nixos-system-web-2', 'c') }], { floor: 1 });
    const otherRelease = signedBundle(ctl.ciKey, 'r0', [{ host: 'web-4', storePath: storePath('nixos-system-web-4', 'c') }], { floor: 1 });
    const lowerFloor = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-5', storePath: storePath('nixos-system-web-5', 'c') }], { floor: 0 });
    const hosts = good.hosts.map((entry) => ({ ...entry }));
    hosts[1]!.statement = stranger.hosts[0]!.statement;
    // web-3's entry carries web-1's statement: one host's authority used for another.
    hosts[2]!.statement = good.hosts[0]!.statement;
    hosts[3]!.statement = otherRelease.hosts[0]!.statement;
    hosts[4]!.statement = lowerFloor.hosts[0]!.statement;
    const response = await publish({ ...good, hosts });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe('invalid-release');
    expect(error.issues).toEqual([
      'host "web-2": statement-unknown-key: release statement signed by someone-else, none of which is a trusted release key',
      'host "web-3": statement-wrong-host: release statement is for host "web-1", not "web-3"',
      'host "web-4": statement-mismatch: release statement is for release "r0", not "r1"',
      'host "web-5": statement-mismatch: release statement has floor 0, the bundle 1',
    ]);
    expect(await count(ctl, 'releases')).toBe(0);
    expect(await count(ctl, 'release_hosts')).toBe(0);
  });

  it('refuses a statement whose signature does not verify, and one for another store path', async () => {
    await start('two-key');
    const bundle = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: web1 }, { host: 'web-2', storePath: web2 }]);
    const tampered = { ...bundle.hosts[0]!.statement, signatures: [{ ...bundle.hosts[0]!.statement.signatures[0]!, sig: bundle.hosts[1]!.statement.signatures[0]!.sig }] };
    const response = await publish({ ...bundle, hosts: [{ ...bundle.hosts[0]!, statement: tampered }, { ...bundle.hosts[1]!, storePath: storePath('nixos-system-evil', 'd') }] });
    expect(response.status).toBe(400);
    expect((await errorOf(response)).issues).toEqual([
      expect.stringMatching(/^host "web-1": statement-bad-signature: /),
      `host "web-2": statement-mismatch: release statement authorises ${web2}, the assignment names ${storePath('nixos-system-evil', 'd')}`,
    ]);
  });

  it('still refuses a signed bundle naming a host it does not know', async () => {
    await start('two-key');
    const response = await publish(signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: web1 }, { host: 'ghost', storePath: web2 }]));
    expect(response.status).toBe(400);
    expect((await errorOf(response)).issues).toEqual(['host "ghost" is not known to this controller']);
  });

  it('refuses an unsigned release in two-key mode, saying a CI-signed bundle is needed', async () => {
    await start('two-key');
    const response = await publish({ name: 'r1', hosts: [{ host: 'web-1', storePath: web1 }] });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe('release-not-signed');
    expect(error.message).toMatch(/two-key mode: a release must be a bundle signed by a CI release key \(shoal release sign, then shoal release publish\)/);
    expect(await count(ctl, 'releases')).toBe(0);
  });

  it('signs an unsigned release with the single key in single-key mode, at floor 0 unless given', async () => {
    await start('single-key');
    const plain = Release.parse(await (await publish({ name: 'r1', hosts: [{ host: 'web-1', storePath: web1 }] })).json());
    expect(plain.provenance).toEqual({ signedBy: 'controller', keyId: 'single-release-1', signedAt: '2030-01-01T00:00:00.000Z', floor: 0, source: null });
    const floored = Release.parse(await (await publish({ name: 'r2', floor: 3, hosts: [{ host: 'web-1', storePath: web1 }] })).json());
    expect(floored.provenance.floor).toBe(3);
  });

  it('accepts a signed bundle for 10,000 hosts in one request', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `host-${i}`);
    await start('two-key', []);
    await seedHosts(ctl.store, names.map((name) => ({ name })));
    const facts = { closureBytes: 2_000_000_000, kernel: storePath('linux-6.6.1', 'k') + '/bzImage', initrd: storePath('initrd-linux-6.6.1', 'i') + '/initrd', kernelModules: storePath('linux-6.6.1-modules', 'm'), switchInhibitors: null };
    const bundle = signedBundle(ctl.ciKey, 'fleet', names.map((host, i) => ({ host, storePath: storePath(`nixos-system-${host}-24.11.${i}`, 'b'), facts })));
    const body = JSON.stringify(bundle);
    // Above the 8 MiB that rollout requests may carry: releases have their own, larger limit.
    expect(body.length).toBeGreaterThan(8 * 1024 * 1024);
    const response = await ctl.operator('/v1/releases', { method: 'POST', body });
    expect(response.status).toBe(201);
    expect(await count(ctl, 'release_hosts')).toBe(10_000);
  });
});
