import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentConfigFile } from '../lab/agent-config.js';
import { loadKey, signedBundle } from '../lab/ci.js';
import { createReleaseKey, type LabController, type ReleaseKey } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { storedEnvelope } from './controller-db.js';
import { lastEventId, reportEvents, systemOf } from './deploy-helpers.js';

/**
 * Rotating each key the way the README says, on a two-key lab, with no host left unable to take
 * the next deployment: first add the new key everywhere it is trusted, then sign with it, then
 * remove the old one. Agents read their keys at start, so each config change is a restart.
 */
describe('key rotation for both roles', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let hosts: LabHost[];
  let ci1: ReleaseKey;
  let ci2: ReleaseKey;
  let ctl1: ReleaseKey;
  let ctl2: ReleaseKey;
  let releases = 0;
  const NAMES = ['web-1', 'web-2'];
  const context = () => lab.diagnostics();

  /** Rewrites every agent's config with these keys and restarts it; waits until each is back on its websocket. */
  async function reconfigureAgents(keys: Pick<AgentConfigFile, 'trustedReleaseKeys' | 'trustedControllerKeys'>) {
    await Promise.all(
      hosts.map(async (host) => {
        await host.stop();
        await host.start({ config: keys });
      }),
    );
    await Promise.all(NAMES.map((name) => controller.waitForHost(name, 'reconnected', (s) => s.connection === 'websocket', 30_000, context)));
  }

  /**
   * CI signs a release with `key` putting every host on `path`, an admin rolls it out, every host
   * ends healthy on it — and no host refused anything on the way (its earlier manifest included).
   */
  async function deploy(path: string, key: ReleaseKey) {
    const markers = new Map(await Promise.all(NAMES.map(async (name) => [name, await lastEventId(controller, name)] as const)));
    const name = `rel-${++releases}`;
    const release = await controller.client.publishBundle(signedBundle(name, Object.fromEntries(NAMES.map((h) => [h, path])), loadKey(key)));
    expect(release.provenance).toMatchObject({ signedBy: 'ci', keyId: loadKey(key).keyId });
    const rollout = await controller.client.startRollout({ release: name, waves: ['100%'] });
    await controller.waitForRollout(rollout.id, 'succeeded', { context });
    for (const host of hosts) {
      expect(systemOf(host)).toEqual({ current: path, profile: path, bootDefault: path });
      const reports = reportEvents(await controller.client.events(host.name)).filter((r) => r.eventId > markers.get(host.name)!);
      expect(reports.filter((r) => r.phase === 'refused')).toEqual([]);
    }
  }

  /** The key that signed the assignment the controller holds as `host`'s desired state. */
  async function desiredSignedBy(host: string): Promise<string[]> {
    const { desired } = await controller.client.host(host);
    return storedEnvelope(lab, host, desired!.version).signatures.map((s) => s.keyid);
  }

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    controller = await lab.startController({ trust: 'two-key' });
    ci1 = controller.options.releaseKey;
    ctl1 = controller.options.controllerKey;
    ci2 = await createReleaseKey(join(lab.dir, 'keys'), 'lab-release-2');
    ctl2 = await createReleaseKey(join(lab.dir, 'keys'), 'lab-controller-2');
    hosts = await Promise.all(NAMES.map((name) => lab.addHost(name, { bootstrap: fixtures.systems.base })));
    await Promise.all(hosts.map((host) => host.start()));
    await Promise.all(NAMES.map((name) => controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context)));
    await deploy(fixtures.systems.v2.path, ci1);
  });
  afterAll(() => lab?.cleanup());

  it('rotates the CI release key: trust both, sign with the new one, drop the old one', async () => {
    const both = [ci1.publicKey, ci2.publicKey];
    await controller.restartWith({ trustedReleaseKeys: both });
    await reconfigureAgents({ trustedReleaseKeys: both, trustedControllerKeys: [ctl1.publicKey] });
    await deploy(fixtures.systems.v3.path, ci2);

    await controller.restartWith({ trustedReleaseKeys: [ci2.publicKey] });
    await reconfigureAgents({ trustedReleaseKeys: [ci2.publicKey], trustedControllerKeys: [ctl1.publicKey] });
    await deploy(fixtures.systems.newKernel.path, ci2);

    // The old key no longer publishes anything.
    const old = await controller.client.request('POST', '/v1/releases', signedBundle('rel-old-key', { 'web-1': fixtures.systems.v2.path }, loadKey(ci1)));
    expect(old.status).toBe(400);
    expect(old.body).toMatchObject({ error: { code: 'invalid-release' } });
    expect(JSON.stringify(old.body)).toContain('host \\"web-1\\": statement-unknown-key');
  });

  it('rotates the controller key: agents trust both, the controller restarts with the new one, the old one is dropped', async () => {
    await reconfigureAgents({ trustedReleaseKeys: [ci2.publicKey], trustedControllerKeys: [ctl1.publicKey, ctl2.publicKey] });
    await controller.restartWith({ controllerKey: ctl2 });
    await deploy(fixtures.systems.v2.path, ci2);
    for (const name of NAMES) expect(await desiredSignedBy(name)).toEqual([ctl2.publicKey.split(':')[0]]);

    await reconfigureAgents({ trustedReleaseKeys: [ci2.publicKey], trustedControllerKeys: [ctl2.publicKey] });
    await deploy(fixtures.systems.v3.path, ci2);
    for (const host of hosts) expect(host.agentState()).toMatchObject({ highestStorePath: fixtures.systems.v3.path, activation: null });
  });
});
