import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostEvent } from '../../shared/src/operator-api.js';
import type { RolloutSpecInput, RolloutStatus } from '../../shared/src/rollout-api.js';
import { at, eventsOf, manifestsFromRollout, only, startFleet, stopFleet, type Fleet } from './rollouts-fleet.js';

/** Issue 4, test 7: the controller is killed with SIGKILL during a bake and during a wave. */
describe('a rollout survives its controller being killed', () => {
  let fleet: Fleet;
  const bakeSeconds = 2;
  // Concurrency 1 keeps a wave in flight long enough to be killed in the middle of it.
  const spec = (release: string): RolloutSpecInput => ({ release, canary: 1, waves: ['50%', '100%'], bakeSeconds, concurrency: 1, healthDeadlineSeconds: 30 });
  let reference: { status: RolloutStatus; events: HostEvent[] };

  beforeAll(async () => {
    // The agent's health gate includes getting a report acknowledged: with the lab's 5 s, a host
    // whose gate straddles the controller's outage would (rightly) roll itself back.
    fleet = await startFleet('boot', 4, { healthDeadlineMs: 30_000 });
  });
  afterAll(() => stopFleet(fleet));

  const release = (name: string, path: string) =>
    fleet.controller.client.createRelease({ name, hosts: Object.fromEntries(fleet.names.map((h) => [h, path])) });

  /** What must be the same in two runs of one spec, whatever the hosts' names and the timing. */
  const shape = (events: HostEvent[]) => {
    const kinds: Record<string, number> = {};
    for (const e of events) kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
    return {
      kinds,
      waves: eventsOf(events, 'rollout-wave-started').map((e) => (e.data.hosts as string[]).length),
      baked: eventsOf(events, 'rollout-wave-baking').map((e) => e.data.wave),
    };
  };

  it('runs to the end without interruption (the reference)', async () => {
    const { controller } = fleet;
    await release('boot-ref', fleet.fixtures.systems.v2.path);
    const started = await controller.client.startRollout(spec('boot-ref'));
    const status = await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 60_000, context: fleet.context });
    reference = { status, events: await controller.client.rolloutEvents(started.id) };
    expect(shape(reference.events).waves).toEqual([1, 1, 2]);
  });

  it('completes after SIGKILLs during a bake and during a wave: same hosts reached, each once, the bake not restarted', async () => {
    const { controller, names } = fleet;
    const v3 = fleet.fixtures.systems.v3.path;
    await release('boot-killed', v3);
    const started = await controller.client.startRollout(spec('boot-killed'));
    const id = started.id;

    // 1. During the canary's bake.
    await controller.waitForRollout(id, 'running', { predicate: (s) => s.waveIndex === 0 && s.wavePhase === 'baking', context: fleet.context });
    await controller.kill();
    const killedInBake = Date.now();
    await sleep(300);
    await controller.start();
    const restartedAfterBakeKill = Date.now();
    // The canary's bake kept its start time across the kill: one engine pass after it was due (and
    // after the restart) the next wave has begun. A bake restarted from zero would still be running.
    const bakeStartedAt = at(eventsOf(await controller.client.rolloutEvents(id), 'rollout-wave-baking').find((e) => e.data.wave === 1)!);
    await sleep(Math.max(0, bakeStartedAt + bakeSeconds * 1000 - Date.now()));
    await controller.afterEngineTicks(1, fleet.context);
    expect((await controller.client.rollout(id)).waveIndex).toBeGreaterThanOrEqual(1);

    // 2. In the middle of the last wave: one of its hosts in flight, the others not yet issued.
    const midWave = await controller.waitForRollout(id, 'running', {
      timeoutMs: 60_000,
      intervalMs: 25,
      predicate: (s) => s.waveIndex === 2 && s.waves[2]!.counts.inProgress === 1 && s.waves[2]!.counts.pending > 0,
      context: fleet.context,
    });
    await controller.kill();
    const inFlight = midWave.waves[2]!.hosts.find((h) => h.state === 'issued' || h.state === 'in-progress')!.host;
    await sleep(300);
    await controller.start();

    const done = await controller.waitForRollout(id, 'succeeded', { timeoutMs: 90_000, context: fleet.context });
    const events = await controller.client.rolloutEvents(id);

    // Every host reached exactly once, by one manifest of this rollout, and activated it once.
    expect(done.waves.flatMap((w) => w.hosts.map((h) => h.state))).toEqual(names.map(() => 'healthy'));
    expect(eventsOf(events, 'rollout-host-issued').map((e) => e.host).sort()).toEqual([...names].sort());
    for (const name of names) {
      only(events, 'rollout-host-issued', name);
      only(events, 'rollout-host-healthy', name);
      expect(await manifestsFromRollout(controller, name, id)).toHaveLength(1);
      const host = fleet.lab.hosts.get(name)!;
      expect([name, host.activations().filter((a) => a.path === v3 && a.action === 'test').length], JSON.stringify(host.activations()) + host.agentOutput(40)).toEqual([name, 1]);
      expect(host.currentSystem()).toBe(v3);
    }
    // The same log as the run nobody interrupted: same waves, same transitions, same counts.
    expect(shape(events)).toEqual(shape(reference.events));
    expect(eventsOf(events, 'rollout-host-issued').map((e) => e.host).sort()).toEqual(eventsOf(reference.events, 'rollout-host-issued').map((e) => e.host).sort());

    // The canary's bake kept its start time across the kill: the next wave came when it was
    // due (or at once after the restart, if that took longer), not a full bake after the restart.
    const bakeStart = at(eventsOf(events, 'rollout-wave-baking').find((e) => e.data.wave === 1)!);
    const nextWave = Math.min(...eventsOf(events, 'rollout-host-issued').filter((e) => e.data.wave === 2).map(at));
    const due = Math.max(bakeStart + bakeSeconds * 1000, restartedAfterBakeKill);
    console.log(
      `killed ${killedInBake - bakeStart} ms into the ${bakeSeconds}s bake, listening again ${restartedAfterBakeKill - killedInBake} ms later; ` +
        `next wave issued ${nextWave - bakeStart} ms after the bake began (due at ${due - bakeStart} ms); killed mid-wave with ${inFlight} in flight`,
    );
    expect(nextWave - bakeStart).toBeGreaterThanOrEqual(bakeSeconds * 1000);
  });
});
