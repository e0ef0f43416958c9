import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutStatus } from '../../shared/src/rollout-api.js';
import { at, eventsOf, manifestsFromRollout, median, only, startFleet, stopFleet, waveHosts, type Fleet } from './rollouts-fleet.js';

/** Issue 4, tests 1 and 5, and the engine's reaction time: eight real agents, one controller. */
describe('rollouts in waves on the fleet lab', () => {
  let fleet: Fleet;
  const paths = () => fleet.fixtures.systems;
  const release = (name: string, path: string) =>
    fleet.controller.client.createRelease({ name, hosts: Object.fromEntries(fleet.names.map((h) => [h, path])) });
  const desiredRollout = async (host: string) => (await fleet.controller.client.host(host)).desired?.rolloutId ?? null;

  beforeAll(async () => {
    fleet = await startFleet('wave', 8);
  });
  afterAll(() => stopFleet(fleet));

  it('updates and bakes the canary first, then the waves in order, and every host ends healthy on its new path', async () => {
    const { controller, names } = fleet;
    const v2 = paths().v2.path;
    await release('waves-v2', v2);
    const bakeSeconds = 1;
    const spec = { release: 'waves-v2', canary: 1, waves: ['25%', '100%'], bakeSeconds, healthDeadlineSeconds: 20 };
    const plan = await controller.client.plan(spec);
    expect(plan.waves.map((w) => w.hosts.length)).toEqual([1, 1, 6]);

    const started = await controller.client.startRollout(spec);
    // The dry-run plan is what start does.
    expect(started.waves.map((w) => w.hosts.map((h) => h.host))).toEqual(plan.waves.map((w) => w.hosts));
    const done = await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 60_000, context: fleet.context });

    expect(done.waves.flatMap((w) => w.hosts.map((h) => [h.host, h.state]))).toEqual(plan.waves.flatMap((w) => w.hosts.map((h) => [h, 'healthy'])));
    for (const host of fleet.hosts) {
      expect([host.name, host.currentSystem(), host.profileSystem(), host.bootDefault()]).toEqual([host.name, v2, v2, v2]);
      const status = await controller.client.host(host.name);
      expect([status.currentSystem, status.phase, status.desired?.rolloutId]).toEqual([v2, 'healthy', started.id]);
    }

    const events = await controller.client.rolloutEvents(started.id);
    const waves = plan.waves.map((w) => w.hosts);
    const issuedAt = (host: string) => at(only(events, 'rollout-host-issued', host));
    const healthyAt = (host: string) => at(only(events, 'rollout-host-healthy', host));
    // Each host was reached exactly once, and never before the wave before it had baked.
    expect(eventsOf(events, 'rollout-host-issued').map((e) => e.host).sort()).toEqual([...names].sort());
    expect(eventsOf(events, 'rollout-wave-started').map((e) => e.data.wave)).toEqual([1, 2, 3]);
    expect(eventsOf(events, 'rollout-wave-baking').map((e) => e.data.wave)).toEqual([1, 2, 3]);
    for (let i = 1; i < waves.length; i++) {
      const lastHealthy = Math.max(...waves[i - 1]!.map(healthyAt));
      const firstIssued = Math.min(...waves[i]!.map(issuedAt));
      const bake = eventsOf(events, 'rollout-wave-baking').find((e) => e.data.wave === i)!;
      expect(at(bake)).toBeGreaterThanOrEqual(lastHealthy);
      expect(firstIssued - at(bake)).toBeGreaterThanOrEqual(bakeSeconds * 1000);
      expect(firstIssued - lastHealthy).toBeGreaterThanOrEqual(bakeSeconds * 1000);
      // Event ids order the log even where two events share a millisecond.
      const lastHealthyId = Math.max(...waves[i - 1]!.map((h) => only(events, 'rollout-host-healthy', h).id));
      const firstIssuedId = Math.min(...waves[i]!.map((h) => only(events, 'rollout-host-issued', h).id));
      expect(lastHealthyId).toBeLessThan(firstIssuedId);
    }
    expect(events.at(-1)!.kind).toBe('rollout-succeeded');
    for (const name of names) expect(await manifestsFromRollout(controller, name, started.id)).toHaveLength(1);

    const line = (w: string[], i: number) =>
      `  wave ${i}${i === 0 ? ' (canary)' : ''}: ${w.map((h) => `${h} issued +${issuedAt(h) - at(events[0]!)} ms, healthy +${healthyAt(h) - at(events[0]!)} ms`).join('; ')}`;
    console.log(`rollout ${started.id} (bake ${bakeSeconds}s), from its event log:\n${waves.map(line).join('\n')}`);
  });

  it('issues each next wave only after the previous host reported healthy, one host per wave (bake 0)', async () => {
    const { controller, names } = fleet;
    await release('waves-v3-react', paths().v3.path);
    // One host per wave: every wave change is one report → one manifest.
    const spec = { release: 'waves-v3-react', canary: 1, waves: [2, 3, 4, 5, 6, 7, 8], healthDeadlineSeconds: 20 };
    const started = await controller.client.startRollout(spec);
    await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 60_000, context: fleet.context });
    const events = await controller.client.rolloutEvents(started.id);
    const order = started.waves.map((w) => w.hosts[0]!.host);
    expect(order).toHaveLength(names.length);

    const reactions = order.slice(1).map((host, i) => {
      const healthy = only(events, 'rollout-host-healthy', order[i]);
      const issued = only(events, 'rollout-host-issued', host);
      expect(issued.id).toBeGreaterThan(healthy.id);
      return at(issued) - at(healthy);
    });
    // Also end to end: the agent stamping its healthy report → the next host's manifest issued.
    const endToEnd = await Promise.all(
      order.slice(1).map(async (host, i) => {
        const previous = order[i]!;
        const version = only(events, 'rollout-host-issued', previous).data.version;
        const report = (await controller.client.events(previous)).find((e) => e.kind === 'report' && e.data.phase === 'healthy' && e.data.manifestVersion === version)!;
        return at(only(events, 'rollout-host-issued', host)) - Date.parse(report.data.reportedAt as string);
      }),
    );
    console.log(
      `engine reaction, healthy report stored → next manifest issued (ms): ${reactions.join(', ')} (median ${median(reactions)}, max ${Math.max(...reactions)})\n` +
        `agent stamped its healthy report → next manifest issued (ms): ${endToEnd.join(', ')} (median ${median(endToEnd)})`,
    );
    // The reaction times above are measurements, not assertions: a speed claim belongs in bench/, where load is controlled.
    for (const host of fleet.hosts) expect(host.currentSystem()).toBe(paths().v3.path);
  });

  it('waits at an approval gate, continues on approve, pauses and resumes there, and issues nothing after abort', async () => {
    const { controller } = fleet;
    await release('waves-base-gated', paths().base.path);
    const spec = { release: 'waves-base-gated', canary: 1, waves: ['50%', '100%'], approvalBefore: [1, 2], healthDeadlineSeconds: 20 };
    const started = await controller.client.startRollout(spec);
    const id = started.id;
    const [canary, wave1, wave2] = [waveHosts(started, 0), waveHosts(started, 1), waveHosts(started, 2)];
    expect([canary.length, wave1.length, wave2.length]).toEqual([1, 3, 4]);

    let status: RolloutStatus = await controller.waitForRollout(id, 'waiting-approval', { predicate: (s) => s.waveIndex === 1, context: fleet.context });
    expect(status.waves[0]!.counts.healthy).toBe(1);
    // The gate holds by itself, not just until the next timer: two engine passes later it still waits.
    await controller.afterEngineTicks(2, fleet.context);
    status = await controller.client.rollout(id);
    expect([status.state, status.waveIndex, status.waves[1]!.approved]).toEqual(['waiting-approval', 1, false]);
    for (const host of [...wave1, ...wave2]) expect(await desiredRollout(host)).not.toBe(id);

    status = await controller.client.act(id, 'approve');
    expect(status.state).toBe('running');
    status = await controller.waitForRollout(id, 'waiting-approval', { predicate: (s) => s.waveIndex === 2, context: fleet.context });
    expect(status.waves[1]!.counts.healthy).toBe(3);
    for (const host of wave1) expect(fleet.lab.hosts.get(host)!.currentSystem()).toBe(paths().base.path);

    expect((await controller.client.act(id, 'pause')).state).toBe('paused');
    const approveWhilePaused = await controller.client.request('POST', `/v1/rollouts/${id}/approve`);
    expect(approveWhilePaused.status).toBe(409);
    expect(JSON.stringify(approveWhilePaused.body)).toContain('paused');
    // Resuming returns to the gate: a pause does not approve anything.
    expect((await controller.client.act(id, 'resume')).state).toBe('waiting-approval');

    status = await controller.client.act(id, 'abort');
    expect(status.state).toBe('aborted');
    await controller.afterEngineTicks(2, fleet.context);
    expect((await controller.client.rollout(id)).state).toBe('aborted');
    for (const host of wave2) expect(await desiredRollout(host)).not.toBe(id);
    const afterAbort = await controller.client.request('POST', `/v1/rollouts/${id}/approve`);
    expect(afterAbort.status).toBe(409);

    const kinds = (await controller.client.rolloutEvents(id)).filter((e) => e.host === null).map((e) => e.kind);
    expect(kinds).toEqual([
      'rollout-started',
      'rollout-wave-started',
      'rollout-waiting-approval',
      'rollout-approved',
      'rollout-wave-started',
      'rollout-waiting-approval',
      'rollout-paused',
      'rollout-resumed',
      'rollout-aborted',
    ]);
    const issued = eventsOf(await controller.client.rolloutEvents(id), 'rollout-host-issued').map((e) => e.host);
    expect(issued.sort()).toEqual([...canary, ...wave1].sort());
  });

  it('holds a bake while paused and finishes it after resume', async () => {
    const { controller } = fleet;
    await release('waves-v2-paused', paths().v2.path);
    const bakeSeconds = 4;
    const started = await controller.client.startRollout({ release: 'waves-v2-paused', canary: 1, waves: ['100%'], bakeSeconds, healthDeadlineSeconds: 20 });
    const id = started.id;
    // Paused a second or more into the bake, so what is left of it is less than a whole bake.
    await controller.waitForRollout(id, 'running', {
      predicate: (s) => s.wavePhase === 'baking' && s.bakeRemainingSeconds !== null && s.bakeRemainingSeconds <= bakeSeconds - 1,
      context: fleet.context,
    });
    const paused = await controller.client.act(id, 'pause');
    expect([paused.state, paused.wavePhase]).toEqual(['paused', 'baking']);
    const leftWhenPaused = paused.bakeRemainingSeconds!;
    expect(leftWhenPaused).toBeLessThanOrEqual(bakeSeconds - 1);

    // Past the moment the bake would have ended without the pause, then two engine passes that would have ended it.
    const baking = eventsOf(await controller.client.rolloutEvents(id), 'rollout-wave-baking').find((e) => e.data.wave === 1)!;
    await sleep(Math.max(0, at(baking) + bakeSeconds * 1000 - Date.now()));
    await controller.afterEngineTicks(2, fleet.context);
    const held = await controller.client.rollout(id);
    expect([held.state, held.waveIndex, held.wavePhase, held.waves[1]!.counts.pending, held.bakeRemainingSeconds]).toEqual(['paused', 0, 'baking', 7, leftWhenPaused]);

    // The bake resumes where it stood, not from the start: what the resume answers is what was left.
    const resumed = await controller.client.act(id, 'resume');
    expect([resumed.state, resumed.wavePhase]).toEqual(['running', 'baking']);
    expect(resumed.bakeRemainingSeconds).toBeLessThanOrEqual(leftWhenPaused);
    await controller.waitForRollout(id, 'succeeded', { timeoutMs: 30_000, context: fleet.context });

    const events = await controller.client.rolloutEvents(id);
    const pausedAt = at(only(events, 'rollout-paused'));
    const resumedAt = at(only(events, 'rollout-resumed'));
    const firstWaveIssue = Math.min(...eventsOf(events, 'rollout-host-issued').filter((e) => e.data.wave === 2).map(at));
    // And what was left of it when paused still has to pass after the resume.
    const leftAtPause = bakeSeconds * 1000 - (pausedAt - at(baking));
    expect(firstWaveIssue - resumedAt).toBeGreaterThanOrEqual(leftAtPause);
    for (const host of fleet.hosts) expect(host.currentSystem()).toBe(paths().v2.path);
  });
});
