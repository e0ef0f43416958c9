import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsOf, only, startFleet, stopFleet, waitForSystem, type Fleet } from './rollouts-fleet.js';

const run = promisify(execFile);

/** Issue 11, "Rollouts must count what really happened", on real agents: an operator's rollback, and a bake that watches its wave. */
describe('rollouts count what really happened on the fleet lab', () => {
  let fleet: Fleet;
  const systems = () => fleet.fixtures.systems;
  const host = (name: string) => fleet.lab.hosts.get(name)!;

  /** The operator CLI as an operator runs it (bin/shoal), against the lab controller. */
  const shoal = (...args: string[]) =>
    run(fileURLToPath(new URL('../../bin/shoal', import.meta.url)), args, {
      env: { ...process.env, SHOAL_CONTROLLER: fleet.controller.url, SHOAL_TOKEN: fleet.controller.adminToken },
      timeout: 60_000,
    });

  beforeAll(async () => {
    // The agents watch their health twice a second after an activation, so a bake sees a host turn unhealthy at once.
    fleet = await startFleet('count', 2, { healthMonitorIntervalMs: 500 });
  });
  afterAll(() => stopFleet(fleet));

  it('moves every host back when an operator runs `shoal rollout rollback`, and ends rolled-back', async () => {
    const { controller, names } = fleet;
    const base = systems().base.path;
    const v2 = systems().v2.path;
    await controller.client.createRelease({ name: 'count-v2', hosts: Object.fromEntries(names.map((h) => [h, v2])) });
    const started = await controller.client.startRollout({ release: 'count-v2', waves: ['100%'], healthDeadlineSeconds: 30 });
    await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 45_000, context: fleet.context });
    for (const name of names) await waitForSystem(host(name), v2);

    const { stdout } = await shoal('rollout', 'rollback', started.id);
    expect(stdout).toContain(`rolling back rollout ${started.id}`);
    // The hosts really go back: the rollback manifests reached the connected agents.
    for (const name of names) await waitForSystem(host(name), base);
    const done = await controller.waitForRollout(started.id, 'rolled-back', { timeoutMs: 45_000, context: fleet.context });
    for (const member of done.waves.flatMap((w) => w.hosts)) expect([member.host, member.rollbackState]).toEqual([member.host, 'healthy']);
    for (const name of names) expect(host(name).bootDefault()).toBe(base);
    const events = await controller.client.rolloutEvents(started.id);
    expect(eventsOf(events, 'rollout-host-healthy').filter((e) => e.data.rollback === true).map((e) => e.host).sort()).toEqual([...names].sort());
  });

  it('fails a host whose health check starts failing during its wave’s bake, and halts before the next wave', async () => {
    const { controller, names } = fleet;
    const [canary, next] = names as [string, string];
    const v3 = systems().v3.path;
    await controller.client.createRelease({ name: 'count-v3', hosts: Object.fromEntries(names.map((h) => [h, v3])) });
    const started = await controller.client.startRollout({ release: 'count-v3', waves: [{ hosts: [canary] }, '100%'], bakeSeconds: 600, healthDeadlineSeconds: 30 });
    await controller.waitForRollout(started.id, 'running', {
      timeoutMs: 45_000,
      context: fleet.context,
      predicate: (s) => s.wavePhase === 'baking',
    });
    await waitForSystem(host(canary), v3);

    // A service of the canary breaks after its deploy, while the wave bakes.
    await host(canary).setHealth(v3, 'bad');
    const halted = await controller.waitForRollout(started.id, 'halted', { timeoutMs: 30_000, context: fleet.context });
    const member = halted.waves[0]!.hosts[0]!;
    expect([member.host, member.state]).toEqual([canary, 'failed']);
    expect(member.reason).toMatch(/^degraded after it reported healthy: health check lab-health failed/);
    expect(halted.waves[1]!.counts).toMatchObject({ pending: 1, healthy: 0 });
    expect(host(next).currentSystem()).toBe(systems().base.path);
    const events = await controller.client.rolloutEvents(started.id);
    expect(only(events, 'rollout-host-failed', canary).data.degraded).toBe(true);

    // The operator sees it: the host is degraded, in `shoal status` too, with the failing check.
    await controller.waitForHost(canary, 'degraded', (s) => s.phase === 'degraded', 15_000, fleet.context);
    const status = await shoal('status');
    expect(status.stdout).toMatch(new RegExp(`${canary}\\s+degraded`));
    // Under the degraded host's row: why, in the agent's words.
    expect(status.stdout).toMatch(new RegExp(`${canary}\\s+degraded[^\\n]*\\n {2}[^\\n]*health check lab-health failed`));

    // Well again: the agent says so, and the host is no longer shown degraded.
    await host(canary).setHealth(v3, 'ok');
    const recovered = await controller.waitForHost(canary, 'recovered', (s) => s.phase === 'recovered', 15_000, fleet.context);
    expect(recovered.lastError).toBeNull();
  });
});
