import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsOf, manifestsFromRollout, startFleet, stopFleet, type Fleet } from './rollouts-fleet.js';

/** Issue 4, test 4: a percent failure threshold with a minimum sample, on ten real agents. */
describe('rollout failure threshold on the fleet lab', () => {
  let fleet: Fleet;
  const systems = () => fleet.fixtures.systems;

  beforeAll(async () => {
    fleet = await startFleet('many', 10);
  }, 240_000);
  afterAll(() => stopFleet(fleet));

  it('does not halt for one failure among ten hosts when 10 % may fail after a sample of 10', async () => {
    const { controller, names } = fleet;
    const failing = names[0]!;
    await controller.client.createRelease({
      name: 'many-one-bad',
      hosts: Object.fromEntries(names.map((h) => [h, h === failing ? systems().failSwitch.path : systems().v2.path])),
    });
    const started = await controller.client.startRollout({
      release: 'many-one-bad',
      waves: ['50%', '100%'],
      failureThreshold: { percent: 10, minSample: 10 },
      healthDeadlineSeconds: 30,
    });
    const done = await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 90_000, context: fleet.context });
    expect([done.failures, done.finished]).toEqual([1, 10]);
    const members = done.waves.flatMap((w) => w.hosts);
    expect(members.filter((m) => m.state === 'failed').map((m) => m.host)).toEqual([failing]);
    expect(members.filter((m) => m.state === 'healthy')).toHaveLength(9);
    for (const host of fleet.hosts) expect(host.currentSystem()).toBe(host.name === failing ? systems().base.path : systems().v2.path);
  });

  it('halts once failures exceed 10 % of a sample of at least 4, and the next wave is never issued', async () => {
    const { controller, names } = fleet;
    const firstWave = names.slice(0, 5);
    const failing = [names[1]!, names[4]!];
    await controller.client.createRelease({
      name: 'many-two-bad',
      hosts: Object.fromEntries(names.map((h) => [h, failing.includes(h) ? systems().failSwitch.path : systems().v3.path])),
    });
    const started = await controller.client.startRollout({
      release: 'many-two-bad',
      waves: [{ hosts: firstWave }, '100%'],
      failureThreshold: { percent: 10, minSample: 4 },
      healthDeadlineSeconds: 30,
    });
    const halted = await controller.waitForRollout(started.id, 'halted', { timeoutMs: 60_000, context: fleet.context });
    expect(halted.reason).toMatch(/finished hosts failed \(\d+\.\d%\); at most 10% allowed/);
    expect(halted.finished).toBeGreaterThanOrEqual(4);
    expect(halted.waves[1]!.counts.pending).toBe(5);

    const issued = eventsOf(await controller.client.rolloutEvents(started.id), 'rollout-host-issued').map((e) => e.host!);
    expect(issued.sort()).toEqual([...firstWave].sort());
    for (const name of names.slice(5)) {
      expect(await manifestsFromRollout(controller, name, started.id)).toEqual([]);
      expect(fleet.lab.hosts.get(name)!.currentSystem()).toBe(systems().v2.path);
    }
  });
});
