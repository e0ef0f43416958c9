import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { at, eventsOf, manifestsFromRollout, only, startFleet, stopFleet, waitForSystem, type Fleet } from './rollouts-fleet.js';

/** Issue 4, tests 2, 3 and 6: a failing canary, a failure in a later wave with rollback, an offline host. */
describe('rollouts that meet failures on the fleet lab', () => {
  let fleet: Fleet;
  const systems = () => fleet.fixtures.systems;
  const host = (name: string) => fleet.lab.hosts.get(name)!;

  beforeAll(async () => {
    fleet = await startFleet('fail', 4);
  });
  afterAll(() => stopFleet(fleet));

  it('halts when the canary fails its switch: nobody else gets a manifest and the canary is back on its old system', async () => {
    const { controller, names } = fleet;
    const [canary, ...rest] = names as [string, ...string[]];
    const base = systems().base.path;
    await controller.client.createRelease({
      name: 'fail-canary',
      hosts: Object.fromEntries(names.map((h) => [h, h === canary ? systems().failSwitch.path : systems().v2.path])),
    });
    // An explicit first wave makes the canary this host, whatever the release's hash order.
    const spec = { release: 'fail-canary', waves: [{ hosts: [canary] }, '100%'], healthDeadlineSeconds: 20 };
    expect((await controller.client.plan(spec)).waves.map((w) => [...w.hosts].sort())).toEqual([[canary], rest]);
    const started = await controller.client.startRollout(spec);

    const halted = await controller.waitForRollout(started.id, 'halted', { timeoutMs: 30_000, context: fleet.context });
    expect(halted.reason).toMatch(/1 host\(s\) failed; at most 0 allowed/);
    const member = halted.waves[0]!.hosts[0]!;
    expect([member.host, member.state, member.previousSystem]).toEqual([canary, 'failed', base]);
    expect(member.reason).toMatch(/switch-to-configuration/);
    expect(halted.waves[1]!.counts).toEqual({ pending: rest.length, inProgress: 0, healthy: 0, failed: 0, skipped: 0 });

    // The agent rolled itself back; the controller knows.
    await waitForSystem(host(canary), base);
    const canaryStatus = await controller.waitForHost(canary, 'rolled back', (s) => s.phase === 'rolled-back', 15_000, fleet.context);
    expect(canaryStatus.currentSystem).toBe(base);
    expect(host(canary).bootDefault()).toBe(base);

    // A halt is final: two engine passes later still nobody else has been sent anything.
    await controller.afterEngineTicks(2, fleet.context);
    expect((await controller.client.rollout(started.id)).state).toBe('halted');
    for (const name of rest) {
      const status = await controller.client.host(name);
      expect([name, status.desired, status.currentSystem]).toEqual([name, null, base]);
      expect(await manifestsFromRollout(controller, name, started.id)).toEqual([]);
      expect(host(name).activations().filter((a) => a.path !== base)).toEqual([]);
    }
    const events = await controller.client.rolloutEvents(started.id);
    expect(eventsOf(events, 'rollout-host-issued').map((e) => e.host)).toEqual([canary]);
    expect(events.at(-1)!.kind).toBe('rollout-halted');
  });

  it('rolls back every host this rollout updated when a later wave fails, and each reports healthy on its previous system', async () => {
    const { controller, names } = fleet;
    const base = systems().base.path;
    const v2 = systems().v2.path;
    // The last host of the last wave fails; the others of that wave may be anywhere by then.
    const failing = names.at(-1)!;
    await controller.client.createRelease({
      name: 'fail-late-rollback',
      hosts: Object.fromEntries(names.map((h) => [h, h === failing ? systems().failSwitch.path : v2])),
    });
    const started = await controller.client.startRollout({
      release: 'fail-late-rollback',
      waves: [{ hosts: [names[0]!] }, { hosts: [names[1]!] }, { hosts: [names[2]!, failing] }],
      onFailure: 'rollback',
      healthDeadlineSeconds: 20,
    });

    const done = await controller.waitForRollout(started.id, 'rolled-back', { timeoutMs: 45_000, context: fleet.context });
    expect(done.reason).toMatch(/failed/);
    const members = done.waves.flatMap((w) => w.hosts);
    const failed = members.find((m) => m.host === failing)!;
    expect(failed.state).toBe('failed');
    for (const m of members) {
      // Every host this rollout reached (the failed one too) got a rollback to what it ran before, and it proved healthy.
      expect([m.host, m.previousSystem, m.rollbackState]).toEqual([m.host, base, 'healthy']);
    }
    for (const name of names) {
      await waitForSystem(host(name), base);
      const status = await controller.waitForHost(name, 'healthy on base again', (s) => s.phase === 'healthy' && s.currentSystem === base, 15_000, fleet.context);
      const manifests = await manifestsFromRollout(controller, name, started.id);
      // The rollback is a new, higher version pointing at the old path: [forward, back].
      expect(manifests.map((e) => e.data.storePath)).toEqual([name === failing ? systems().failSwitch.path : v2, base]);
      expect(status.desired!.version).toBe(manifests[1]!.data.version);
      expect(host(name).bootDefault()).toBe(base);
    }
    // The earlier waves really ran v2 before they were moved back.
    for (const name of names.slice(0, 2)) expect(host(name).activations().some((a) => a.path === v2 && a.action === 'test')).toBe(true);

    const events = await controller.client.rolloutEvents(started.id);
    const rollingBack = only(events, 'rollout-rolling-back');
    expect(rollingBack.data.hosts).toBe(names.length);
    expect(eventsOf(events, 'rollout-host-healthy').filter((e) => e.data.rollback === true).map((e) => e.host).sort()).toEqual([...names].sort());
    expect(events.at(-1)!.kind).toBe('rollout-rolled-back');
  });

  it('waits for an offline host and then skips it, or fails the rollout, as configured; it never counts as healthy', async () => {
    const { controller, names } = fleet;
    const offline = names.at(-1)!;
    const online = names.slice(0, -1);
    await host(offline).stop();
    await controller.waitForHost(offline, 'offline', (s) => s.connection === 'offline', 10_000, fleet.context);
    const waitSeconds = 2;

    // Skip: the rollout waits, moves on without it, and still succeeds.
    await controller.client.createRelease({ name: 'fail-offline-skip', hosts: Object.fromEntries(names.map((h) => [h, systems().v3.path])) });
    const skip = await controller.client.startRollout({
      release: 'fail-offline-skip',
      waves: [{ hosts: [offline, online[0]!] }, '100%'],
      offline: { waitSeconds, then: 'skip' },
      healthDeadlineSeconds: 20,
    });
    const skipped = await controller.waitForRollout(skip.id, 'succeeded', { timeoutMs: 30_000, context: fleet.context });
    const skippedMember = skipped.waves[0]!.hosts.find((m) => m.host === offline)!;
    expect([skippedMember.state, skippedMember.reason]).toEqual(['skipped', `offline for ${waitSeconds}s after its manifest was issued`]);
    expect(skipped.waves.flatMap((w) => w.hosts).filter((m) => m.state === 'healthy').map((m) => m.host).sort()).toEqual([...online].sort());
    let events = await controller.client.rolloutEvents(skip.id);
    expect(at(only(events, 'rollout-host-skipped', offline)) - at(only(events, 'rollout-host-issued', offline))).toBeGreaterThanOrEqual(waitSeconds * 1000);
    expect(eventsOf(events, 'rollout-host-healthy', offline)).toEqual([]);
    // The next wave waited for the offline host's verdict.
    const nextWave = Math.min(...eventsOf(events, 'rollout-host-issued').filter((e) => e.data.wave === 2).map(at));
    expect(nextWave).toBeGreaterThanOrEqual(at(only(events, 'rollout-host-skipped', offline)));
    expect(skipped.finished).toBe(online.length);

    // Fail: the same wait, then the host counts as a failure and the rollout halts.
    await controller.client.createRelease({ name: 'fail-offline-fail', hosts: Object.fromEntries(names.map((h) => [h, systems().v2.path])) });
    const fail = await controller.client.startRollout({
      release: 'fail-offline-fail',
      waves: [{ hosts: [offline, online[0]!] }, '100%'],
      offline: { waitSeconds, then: 'fail' },
      healthDeadlineSeconds: 20,
    });
    const halted = await controller.waitForRollout(fail.id, 'halted', { timeoutMs: 30_000, context: fleet.context });
    const failedMember = halted.waves[0]!.hosts.find((m) => m.host === offline)!;
    expect([failedMember.state, failedMember.reason]).toEqual(['failed', `offline for ${waitSeconds}s after its manifest was issued`]);
    expect(halted.waves[1]!.counts.pending).toBe(online.length - 1);
    events = await controller.client.rolloutEvents(fail.id);
    expect(at(only(events, 'rollout-host-failed', offline)) - at(only(events, 'rollout-host-issued', offline))).toBeGreaterThanOrEqual(waitSeconds * 1000);
    expect(eventsOf(events, 'rollout-host-healthy', offline)).toEqual([]);
    expect(host(offline).currentSystem()).toBe(systems().base.path);

    // Waited for, really: a host that comes back within the wait gets its manifest and counts normally.
    await controller.client.createRelease({ name: 'fail-offline-back', hosts: Object.fromEntries(names.map((h) => [h, systems().v3.path])) });
    const back = await controller.client.startRollout({
      release: 'fail-offline-back',
      waves: [{ hosts: [offline] }, '100%'],
      offline: { waitSeconds: 30, then: 'fail' },
      healthDeadlineSeconds: 20,
    });
    // Two engine passes, each of which would have skipped or failed a host whose wait had run out.
    await controller.afterEngineTicks(2, fleet.context);
    const waiting = await controller.client.rollout(back.id);
    expect([waiting.state, waiting.waves[0]!.hosts[0]!.state, waiting.waves[1]!.counts.pending]).toEqual(['running', 'issued', online.length]);
    await host(offline).start();
    const succeeded = await controller.waitForRollout(back.id, 'succeeded', { timeoutMs: 30_000, context: fleet.context });
    expect(succeeded.waves[0]!.hosts[0]!.state).toBe('healthy');
    await waitForSystem(host(offline), systems().v3.path);
  });
});
