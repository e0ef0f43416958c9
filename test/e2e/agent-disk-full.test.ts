import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { SmallDisk } from '../lab/small-disk.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { reportEvents } from './deploy-helpers.js';

/**
 * A real agent whose state directory is a real small filesystem (a size-limited tmpfs mounted
 * over it before the agent's namespace was made): filled to its last page, the agent must not
 * start an activation it cannot record, must say so at once, and must deploy by itself once
 * the space is back, without a restart.
 */
describe('an agent whose state directory is full', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let host: LabHost;
  let disk: SmallDisk;
  const context = () => `${lab.diagnostics()}\n--- state dir\n${disk.listing().join('\n')}`;

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    controller = await lab.startController();
    host = await lab.addHost('web-1', { bootstrap: fixtures.systems.base });
    disk = await SmallDisk.mount(host.paths.state, 2 * 1024 * 1024);
    lab.scope.add(disk);
    await host.start({ config: { spaceCheckIntervalMs: 500 } });
    await controller.waitForHost('web-1', 'connected', (s) => s.connection === 'websocket', 30_000, context);
  });
  afterAll(() => lab?.cleanup());

  it('holds the manifest back, reports why, and deploys it once there is room again', async () => {
    await disk.fill(4096);
    const manifest = await controller.client.setDesired('web-1', fixtures.systems.v2.path);
    await controller.waitForPhase('web-1', manifest.version, 'refused', 30_000, context);
    const refused = reportEvents(await controller.client.events('web-1')).filter((r) => r.manifestVersion === manifest.version);
    expect(refused.map((r) => r.phase)).toEqual(['refused']);
    expect(refused[0]!.detail).toMatchObject({ refusal: 'no-space', reason: expect.stringContaining(`the state directory ${host.paths.state} is full`) });
    expect(host.currentSystem()).toBe(fixtures.systems.base.path);

    await disk.free();
    await controller.waitForHost('web-1', `healthy on version ${manifest.version}`, (s) => s.reportedVersion === manifest.version && s.phase === 'healthy', 60_000, context);
    expect(host.currentSystem()).toBe(fixtures.systems.v2.path);
    expect(host.agent?.running).toBe(true);
    expect(host.agentExits).toEqual([]);
  });
});
