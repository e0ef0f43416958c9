import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { reportEvents, systemOf } from './deploy-helpers.js';

const HEALTH_DEADLINE_MS = 4_000;

describe('a system that cuts the host off from the controller', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let host: LabHost;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures, network: true });
    await lab.serveCache();
    controller = await lab.startController();
    host = await lab.addHost('cut-1', { bootstrap: fixtures.systems.base });
    await host.start({ config: { healthDeadlineMs: HEALTH_DEADLINE_MS } });
    await controller.waitForHost('cut-1', 'connected', (s) => s.connection === 'websocket', 30_000, context);
  });
  afterAll(() => lab?.cleanup());

  it('is rolled back by the agent itself, which heals the network and then reports rolled-back', async () => {
    const { base, breakNetwork } = fixtures.systems;
    const manifest = await controller.client.setDesired('cut-1', breakNetwork.path);
    const status = await controller.waitForPhase('cut-1', manifest.version, 'rolled-back', 45_000, context);

    expect(systemOf(host)).toEqual({ current: base.path, profile: base.path, bootDefault: base.path });
    expect(status).toMatchObject({ currentSystem: base.path, phase: 'rolled-back' });
    expect(await host.networkUp()).toBe(true);
    expect(await host.canReach(lab.serviceAddress, controller.port)).toBe(true);
    expect(host.activations().slice(-3).map((a) => [a.action, a.path])).toEqual([
      ['test', breakNetwork.path],
      ['switch', base.path],
      ['boot', base.path],
    ]);

    const reports = reportEvents(await controller.client.events('cut-1')).filter((r) => r.manifestVersion === manifest.version);
    expect(reports.map((r) => r.phase)).toEqual(['accepted', 'realising', 'activating', 'checking', 'rolling-back', 'rolled-back']);
    const final = reports.at(-1)!;
    expect(final.detail.reason).toBe(
      `health gate: controller did not acknowledge the checking report within the ${HEALTH_DEADLINE_MS} ms health deadline`,
    );
    expect(final.detail.previousSystem).toBe(base.path);
    // The cut was real: the 'checking' report, made right after the switch, reached the
    // controller only once the rollback had brought the network back.
    const checking = reports.find((r) => r.phase === 'checking')!;
    expect(checking.storedAt - checking.reportedAt).toBeGreaterThanOrEqual(HEALTH_DEADLINE_MS - 1_000);
    expect(checking.storedAt).toBeGreaterThanOrEqual(reports.find((r) => r.phase === 'rolling-back')!.reportedAt);
    // And the host keeps talking afterwards.
    await controller.waitForHost('cut-1', 'connected again', (s) => s.connection === 'websocket', 45_000, context);
  });
});
