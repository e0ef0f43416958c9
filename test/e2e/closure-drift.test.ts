import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

/**
 * Real agents on realistic systems: the plan shows what the release changes on each host and
 * across the fleet and passes the preflight; the rollout then does it. A host switched by hand
 * afterwards shows as drifted, with the diff from what it runs to what it should run.
 */
describe('fleet diff, preflight and drift with real agents', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const hosts = new Map<string, LabHost>();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    controller = await lab.startController({ caches: 'lab' });
    for (const name of ['fleet-1', 'fleet-2']) {
      const host = await lab.addHost(name, { bootstrap: fixtures.systems.realisticBase });
      await host.start();
      hosts.set(name, host);
    }
    for (const name of hosts.keys()) await controller.waitForHost(name, 'its running system reported', (h) => h.currentSystem === fixtures.systems.realisticBase.path);
    await controller.client.createRelease({ name: 'gen-2', hosts: { 'fleet-1': fixtures.systems.realisticNext.path, 'fleet-2': fixtures.systems.realisticNext.path } });
  });
  afterAll(() => lab?.cleanup());

  it('plans the release with its fleet diff and a passing preflight, then rolls it out', async () => {
    const plan = await controller.client.plan({ release: 'gen-2', waves: ['100%'] });
    expect(plan.preflight).toMatchObject({ outcome: 'passed', hosts: 2, problems: [] });
    expect(plan.diff!.packages).toEqual(
      expect.arrayContaining([
        { name: 'linux', kind: 'changed', before: ['6.12.9'], after: ['6.18.1'], reboot: true, hosts: 2 },
        { name: 'openssl', kind: 'changed', before: ['3.3.1'], after: ['3.3.2'], reboot: false, hosts: 2 },
        { name: 'htop', kind: 'added', before: [], after: ['3.3.0'], reboot: false, hosts: 2 },
        { name: 'nano', kind: 'removed', before: ['8.0'], after: [], reboot: false, hosts: 2 },
      ]),
    );
    expect(plan.diff!.groups).toHaveLength(1);
    expect(plan.diff!.groups[0]!.hosts.sort()).toEqual(['fleet-1', 'fleet-2']);
    const perHost = plan.diff!.perHost[0]!;
    expect(perHost.downloadBytes).toBeGreaterThan(0);
    expect(plan.diff!.downloadBytes).toBe(2 * perHost.downloadBytes);
    expect(plan.drifted).toEqual([]);

    const status = await controller.client.startRollout({ release: 'gen-2', waves: ['100%'] });
    await controller.waitForRollout(status.id, 'succeeded', { context: () => lab.diagnostics() });
    const started = (await controller.client.rolloutEvents(status.id)).find((e) => e.kind === 'rollout-started')!;
    expect(started.data.preflight).toMatchObject({ outcome: 'passed', skipped: false });
  });

  it('shows a host switched by hand as drifted, with the diff back to what it should run', async () => {
    const { realisticBase, realisticNext } = fixtures.systems;
    const host = hosts.get('fleet-2')!;
    await host.sh(`${realisticBase.path}/bin/switch-to-configuration switch`);
    const status = await controller.waitForHost('fleet-2', 'drifted', (h) => h.drift !== null, 30_000, () => lab.diagnostics());
    expect(status.drift).toMatchObject({ running: realisticBase.path, expected: realisticNext.path });
    expect(status.currentSystem).toBe(realisticBase.path);
    expect((await controller.client.host('fleet-1')).drift).toBeNull();

    const diff = await controller.client.hostDiff('fleet-2');
    expect(diff).toMatchObject({ current: realisticBase.path, target: realisticNext.path, drifted: true, status: 'ok' });
    expect(diff.changes).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'linux', before: ['6.12.9'], after: ['6.18.1'] })]));

    const plan = await controller.client.plan({ release: 'gen-2', waves: ['100%'] });
    expect(plan.drifted).toEqual(['fleet-2']);
    expect(plan.diff!.drifted).toEqual(['fleet-2']);
    expect(plan.diff!.upToDate).toBe(1);
  });
});
