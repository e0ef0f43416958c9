import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NamedSecretKey } from '../../shared/src/keys.js';
import { loadKey, signedBundle } from '../lab/ci.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { lastEventId, systemOf, waitForReport, type ReportEvent } from './deploy-helpers.js';

/**
 * Security floors on a two-key lab. CI shipped v2 (`rel-1`, floor 0), then a security fix v3
 * (`sec-2`, floor 1). From then on the controller can still move hosts — roll back, `set` — but
 * only to systems CI authorised at floor 1 or above: the known-vulnerable v2 is refused by the
 * hosts themselves, until CI vouches for it again at the new floor.
 */
describe('security floors raised by CI', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let hosts: LabHost[];
  let ciKey: NamedSecretKey;
  let fixRollout: string;
  const context = () => lab.diagnostics();
  const NAMES = ['web-1', 'web-2'];

  function expectOn(host: LabHost, path: string, floor: number) {
    expect(systemOf(host)).toEqual({ current: path, profile: path, bootDefault: path });
    expect(host.agentState()).toMatchObject({ highestStorePath: path, highestFloor: floor, activation: null });
  }

  /** Waits for each host's next report after `marker` and checks it is a below-floor refusal of v2 that changed nothing. */
  async function expectBelowFloor(markers: Map<string, number>, release: string): Promise<ReportEvent[]> {
    const { v2, v3 } = fixtures.systems;
    const reports: ReportEvent[] = [];
    for (const host of hosts) {
      const activations = host.activations().length;
      const report = await waitForReport(controller, host.name, 'the next report', () => true, { afterEventId: markers.get(host.name)!, context });
      expect(report).toMatchObject({ phase: 'refused', storePath: v2.path, currentSystem: v3.path, detail: { refusal: 'below-floor' } });
      expect(report.detail.reason).toBe(`release "${release}" has security floor 0, below the floor 1 this host already accepted`);
      expectOn(host, v3.path, 1);
      expect(host.activations()).toHaveLength(activations);
      reports.push(report);
    }
    return reports;
  }

  const markers = async () => new Map(await Promise.all(NAMES.map(async (name) => [name, await lastEventId(controller, name)] as const)));

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    controller = await lab.startController({ trust: 'two-key' });
    ciKey = loadKey(controller.options.releaseKey);
    hosts = await Promise.all(NAMES.map((name) => lab.addHost(name, { bootstrap: fixtures.systems.base })));
    await Promise.all(hosts.map((host) => host.start()));
    await Promise.all(NAMES.map((name) => controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context)));

    const { v2, v3 } = fixtures.systems;
    const everyHost = (path: string) => Object.fromEntries(NAMES.map((name) => [name, path]));
    await controller.client.publishBundle(signedBundle('rel-1', everyHost(v2.path), ciKey, { floor: 0 }));
    const first = await controller.client.startRollout({ release: 'rel-1', waves: ['100%'] });
    await controller.waitForRollout(first.id, 'succeeded', { context });
    for (const host of hosts) expectOn(host, v2.path, 0);

    await controller.client.publishBundle(signedBundle('sec-2', everyHost(v3.path), ciKey, { floor: 1 }));
    fixRollout = (await controller.client.startRollout({ release: 'sec-2', waves: ['100%'] })).id;
    await controller.waitForRollout(fixRollout, 'succeeded', { context });
  });
  afterAll(() => lab?.cleanup());

  it('moves every host onto the fix and its floor', () => {
    for (const host of hosts) expectOn(host, fixtures.systems.v3.path, 1);
  });

  it('refuses the rollout’s rollback to the release below the floor, on every host', async () => {
    const before = await markers();
    await controller.client.act(fixRollout, 'rollback');
    await expectBelowFloor(before, 'rel-1');
    // The controller hears why: the rollback failed on each host, which stays on the fix.
    const status = await controller.waitForRollout(fixRollout, 'rollback-failed', { context });
    for (const member of status.waves.flatMap((w) => w.hosts)) expect(member.rollbackState).toBe('failed');
    const end = (await controller.client.rolloutEvents(fixRollout)).find((e) => e.kind === 'rollout-rollback-failed')!;
    expect((end.data.failed as string[]).sort()).toEqual(NAMES);
    for (const name of NAMES) expect(await controller.client.host(name)).toMatchObject({ phase: 'refused', currentSystem: fixtures.systems.v3.path });
  });

  it('refuses an operator’s set of the old system below the floor', async () => {
    const before = await markers();
    for (const name of NAMES) await controller.client.setDesired(name, fixtures.systems.v2.path);
    await expectBelowFloor(before, 'rel-1');
  });

  it('returns a host to the old system once CI re-signs it at the floor (set)', async () => {
    const { v2 } = fixtures.systems;
    await controller.client.publishBundle(signedBundle('rel-1-refloored', { 'web-1': v2.path, 'web-2': v2.path }, ciKey, { floor: 1 }));
    const { version } = await controller.client.setDesired('web-1', v2.path);
    await controller.waitForPhase('web-1', version, 'healthy', 30_000, context);
    expectOn(hosts[0]!, v2.path, 1);
  });

  it('rolls a rollout back to the old system at the floor', async () => {
    const { v2, v3 } = fixtures.systems;
    const forward = await controller.client.startRollout({ release: 'sec-2', selector: { hosts: ['web-1'] }, waves: ['100%'] });
    await controller.waitForRollout(forward.id, 'succeeded', { context });
    expectOn(hosts[0]!, v3.path, 1);
    await controller.client.act(forward.id, 'rollback');
    const back = await controller.waitForRollout(forward.id, 'rolled-back', { context });
    expect(back.waves[0]!.hosts[0]).toMatchObject({ host: 'web-1', previousSystem: v2.path, rollbackState: 'healthy' });
    expectOn(hosts[0]!, v2.path, 1);
  });
});
