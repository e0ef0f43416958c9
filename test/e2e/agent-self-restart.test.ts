import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESTART_EXIT_CODE } from '../../agent/src/self-update.js';
import { publishToCache } from '../lab/binary-cache.js';
import { createReleaseKey, type LabController, type ReleaseKey } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { buildSystems, type LabSystem } from '../lab/systems.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { reportEvents } from './deploy-helpers.js';

/**
 * A release-key rotation deployed through Shoal itself: the agent's configuration lives in the
 * system (etc/shoal/agent.json, as the NixOS module installs it), the agent runs from
 * /run/current-system/etc/shoal/agent.json under a supervisor that restarts it like systemd's
 * Restart=always, and a switch to a system whose configuration trusts the new key must make
 * the agent restart and verify with it, without a reboot.
 */
describe('the agent picks up its own new configuration after a switch', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let host: LabHost;
  let newKey: ReleaseKey;
  let systems: Record<'old' | 'rotated' | 'next', LabSystem>;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    // The bundle, as the NixOS package runs it: its restart exit code and log flush on the way out.
    lab = await Lab.start({ fixtures, agent: 'bundle' });
    await lab.serveUploadCache();
    controller = await lab.startController();
    newKey = await createReleaseKey(join(lab.dir, 'new-keys'), 'lab-release-2');
    host = await lab.addHost('web-1', { bootstrap: fixtures.systems.base });
    const oldKey = controller.releasePublicKey;
    const config = (releaseKeys: string[]) => JSON.stringify(host.agentConfig({ trustedReleaseKeys: releaseKeys }));
    const unique = lab.dir;
    systems = (await buildSystems(
      [
        { name: 'old', label: `old ${unique}`, agentConfig: config([oldKey]) },
        // The rotation's overlap: the new system trusts both keys.
        { name: 'rotated', label: `rotated ${unique}`, agentConfig: config([oldKey, newKey.publicKey]) },
        { name: 'next', label: `next ${unique}`, agentConfig: config([oldKey, newKey.publicKey]) },
      ],
      join(lab.dir, 'systems'),
    )) as typeof systems;
    await publishToCache({ dir: join(lab.dir, 'upload-cache'), key: fixtures.cache.key, paths: Object.values(systems).map((s) => s.path) });
    await host.bootstrap(systems.old);
    await host.start({ configFile: '/run/current-system/etc/shoal/agent.json', supervise: true });
    await controller.waitForHost('web-1', 'connected', (s) => s.connection === 'websocket', 30_000, context);
  });
  afterAll(() => lab?.cleanup());

  it('restarts after a switch that changed its configuration and then verifies with the new release key', async () => {
    const rotated = await controller.client.setDesired('web-1', systems.rotated.path);
    await controller.waitForPhase('web-1', rotated.version, 'healthy', 60_000, context);
    await host.waitFor('the agent to exit for a restart', () => host.agentExits.some((e) => e.code === RESTART_EXIT_CODE));
    await host.waitFor('the restarted agent', () => host.agent?.running && host.agent.lines.some((l) => l.includes('"agent running"')));

    // The controller now signs release statements with the new key only.
    controller.options.releaseKey = newKey;
    await controller.restart();
    const next = await controller.client.setDesired('web-1', systems.next.path);
    await controller.waitForPhase('web-1', next.version, 'healthy', 60_000, context);
    expect(host.currentSystem()).toBe(systems.next.path);
    // Nothing else restarted it: one exit to pick up the new configuration; the second system's is unchanged.
    expect(host.agentExits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE]);
    const healthy = reportEvents(await controller.client.events('web-1')).filter((r) => r.manifestVersion === rotated.version && r.phase === 'healthy');
    expect(healthy).toHaveLength(1);
  });
});
