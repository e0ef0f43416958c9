import { describe, expect, it } from 'vitest';
import { RolloutSpec } from '../../../shared/src/rollout-api.js';
import { setHostPaused } from '../../../controller/src/hosts/pause.js';
import { desiredManifest } from '../helpers.js';
import { lab, makeEngine, OLD, type Lab } from './engine-lab.js';

async function issuedTo(l: Lab): Promise<string[]> {
  const issued: string[] = [];
  for (const host of l.names) if ((await desiredManifest(l.ctl.store, host)) !== undefined) issued.push(host);
  return issued;
}

describe('rollout engine', () => {
  it('sends the canary first, bakes, then the waves in order, each host exactly once', async () => {
    const l = await lab(8);
    const id = await l.start({ canary: 1, waves: ['25%', '100%'], bakeSeconds: 60 });
    const plan = (await l.status(id)).waves.map((w) => w.hosts.map((h) => h.host));
    expect(await issuedTo(l)).toEqual(plan[0]);

    expect(await l.answer('healthy')).toEqual(plan[0]);
    expect(await l.status(id)).toMatchObject({ wavePhase: 'baking', bakeRemainingSeconds: 60 });
    l.ctl.clock.advance(59_000);
    await l.engine.tickAll();
    expect(await issuedTo(l)).toEqual(plan[0]);

    l.ctl.clock.advance(1_000);
    await l.engine.tickAll();
    expect((await issuedTo(l)).sort()).toEqual([...plan[0]!, ...plan[1]!].sort());
    await l.answer('healthy');
    l.ctl.clock.advance(60_000);
    await l.engine.tickAll();
    await l.answer('healthy');
    l.ctl.clock.advance(60_000);
    await l.engine.tickAll();

    const done = await l.status(id);
    expect(done.state).toBe('succeeded');
    expect(done.waves.flatMap((w) => w.hosts).every((h) => h.state === 'healthy')).toBe(true);
    for (const host of l.names) expect(await l.manifestsOf(host)).toBe(1);
  });

  it('halts on a failing canary and sends nothing to anyone else', async () => {
    const l = await lab(4);
    const id = await l.start({ canary: 1, waves: ['100%'] });
    const [canary] = await issuedTo(l);
    await l.answer('rolled-back');
    const status = await l.status(id);
    expect(status.state).toBe('halted');
    expect(status.reason).toContain('1 host(s) failed');
    expect(await issuedTo(l)).toEqual([canary]);
    l.ctl.clock.advance(3600_000);
    await l.engine.tickAll();
    expect(await issuedTo(l)).toEqual([canary]);
  });

  it('rolls every host it changed back to its previous system when a later wave fails', async () => {
    const l = await lab(6);
    const id = await l.start({ canary: 1, waves: ['50%', '100%'], onFailure: 'rollback' });
    await l.answer('healthy'); // canary
    await l.answer('healthy'); // 50 %
    const lastWave = (await l.status(id)).waves[2]!.hosts.map((h) => h.host);
    await l.answer((host) => (host === lastWave[0] ? 'rolled-back' : 'healthy'));

    const rolling = await l.status(id);
    expect(rolling.state).toBe('rolling-back');
    const changed = rolling.waves.flatMap((w) => w.hosts).filter((h) => h.rollbackState === 'issued');
    expect(changed.length).toBe(6);
    for (const member of changed) {
      const manifest = (await desiredManifest(l.ctl.store, member.host))!;
      expect(manifest.storePath).toBe(member.previousSystem);
      expect(manifest.storePath).toBe(OLD(l.names.indexOf(member.host) + 1));
    }
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('rolled-back');
  });

  it('tolerates failures within a percent threshold once the minimum sample is reached, and halts beyond it', async () => {
    const l = await lab(10);
    const id = await l.start({ waves: ['100%'], concurrency: 10, failureThreshold: { percent: 10, minSample: 5 } });
    const order = (await l.status(id)).waves[0]!.hosts.map((h) => h.host);
    // Nine succeed first, then one fails: 1 of 10 = 10 %, not above the threshold.
    for (const host of order.slice(0, 9)) await l.report(host, 'healthy');
    await l.report(order[9]!, 'rolled-back');
    expect((await l.status(id)).state).toBe('succeeded');

    const m = await lab(10);
    const id2 = await m.start({ waves: ['100%'], failureThreshold: { percent: 10, minSample: 5 } });
    const order2 = (await m.status(id2)).waves[0]!.hosts.map((h) => h.host);
    await m.report(order2[0]!, 'rolled-back');
    expect((await m.status(id2)).state).toBe('running'); // one sample is below the minimum
    for (const host of order2.slice(1, 4)) await m.report(host, 'healthy');
    await m.report(order2[4]!, 'rolled-back');
    expect(await m.status(id2)).toMatchObject({ state: 'halted', failures: 2, finished: 5 });
  });

  it('waits for approval before a gated wave, and pauses, resumes and aborts on command', async () => {
    const l = await lab(4);
    const id = await l.start({ canary: 1, waves: ['100%'], approvalBefore: [1], bakeSeconds: 100 });
    await l.answer('healthy');
    l.ctl.clock.advance(40_000);
    expect(await l.engine.act(id, 'pause', 'operator:test')).toMatchObject({ ok: true, value: 'paused' });
    l.ctl.clock.advance(500_000);
    await l.engine.tickAll();
    expect(await l.engine.act(id, 'resume', 'operator:test')).toMatchObject({ ok: true, value: 'running' });
    // The bake keeps the 40 s it had already done: a pause does not restart it, nor count as baking.
    expect((await l.status(id)).bakeRemainingSeconds).toBe(60);
    l.ctl.clock.advance(60_000);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('waiting-approval');
    expect((await issuedTo(l)).length).toBe(1);
    expect(await l.engine.act(id, 'resume', 'operator:test')).toMatchObject({ ok: false, kind: 'invalid-transition' });
    expect(await l.engine.act(id, 'approve', 'operator:test')).toMatchObject({ ok: true, value: 'running' });
    expect((await issuedTo(l)).length).toBe(4);
    expect(await l.engine.act(id, 'abort', 'operator:test')).toMatchObject({ ok: true, value: 'aborted' });
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('aborted');
  });

  it('waits for an offline host, then skips it as configured; it never counts as healthy', async () => {
    const l = await lab(3);
    const id = await l.start({ waves: ['100%'], offline: { waitSeconds: 30, then: 'skip' } });
    const order = (await l.status(id)).waves[0]!.hosts.map((h) => h.host);
    l.ctl.deps.presence.websocketClosed(order[2]!);
    await l.report(order[0]!, 'healthy');
    await l.report(order[1]!, 'healthy');
    l.ctl.clock.advance(29_000);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('running');
    l.ctl.clock.advance(1_000);
    await l.engine.tickAll();
    const status = await l.status(id);
    expect(status.state).toBe('succeeded');
    expect(status.waves[0]!.hosts.find((h) => h.host === order[2])).toMatchObject({ state: 'skipped' });
    // Its desired state goes back to what it ran: returning later, it must not deploy the release unwatched.
    const skipped = order[2]!;
    expect((await desiredManifest(l.ctl.store, skipped))!.storePath).toBe(OLD(l.names.indexOf(skipped) + 1));
    expect(await l.manifestsOf(skipped)).toBe(2);
  });

  it('counts an offline host as failed when the rollout says so', async () => {
    const l = await lab(2);
    for (const host of l.names) l.ctl.deps.presence.websocketClosed(host);
    const id = await l.start({ waves: ['100%'], offline: { waitSeconds: 30, then: 'fail' } });
    l.ctl.clock.advance(30_000);
    await l.engine.tickAll();
    expect(await l.status(id)).toMatchObject({ state: 'halted', failures: 2 });
  });

  it('limits how many hosts of a wave are in flight at once', async () => {
    const l = await lab(5);
    await l.start({ waves: ['100%'], concurrency: 2 });
    expect((await issuedTo(l)).length).toBe(2);
    await l.answer('healthy');
    expect((await issuedTo(l)).length).toBe(4);
  });

  it('resumes after a restart without re-issuing manifests or restarting the bake', async () => {
    const l = await lab(4);
    const id = await l.start({ canary: 1, waves: ['100%'], bakeSeconds: 100 });
    await l.answer('healthy');
    l.ctl.clock.advance(70_000);
    // A new engine on the same database is what a restarted controller has.
    const restarted = makeEngine(l.ctl);
    await restarted.tickAll();
    expect((await issuedTo(l)).length).toBe(1);
    l.ctl.clock.advance(30_000);
    await restarted.tickAll();
    await restarted.tickAll();
    expect((await issuedTo(l)).length).toBe(4);
    for (const host of l.names) expect(await l.manifestsOf(host)).toBe(1);
  });

  it('refuses a rollout that overlaps an active one, naming it', async () => {
    const l = await lab(3);
    const first = await l.start({ waves: ['100%'] });
    const second = await l.engine.start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    expect(second).toMatchObject({ ok: false, kind: 'rollout-overlap' });
    expect(second.ok || second.message).toContain(first);
  });

  it('gives an offline host that comes back within the offline wait its full health deadline from its return', async () => {
    const l = await lab(2);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 60, offline: { waitSeconds: 600, then: 'fail' } });
    const [online, away] = (await l.status(id)).waves[0]!.hosts.map((h) => h.host) as [string, string];
    l.ctl.deps.presence.websocketClosed(away);
    await l.report(online, 'healthy');
    l.ctl.clock.advance(120_000);
    await l.engine.tickAll();
    expect((await l.status(id)).waves[0]!.hosts.find((h) => h.host === away)!.state).toBe('issued');
    // Back after 2 minutes: well within the 10 minute wait, but past the 60 s health deadline counted from the issue.
    l.ctl.deps.presence.websocketOpened(away);
    l.ctl.clock.advance(1_000);
    await l.engine.tickAll();
    expect((await l.status(id)).waves[0]!.hosts.find((h) => h.host === away)!.state).toBe('issued');
    await l.report(away, 'healthy');
    expect((await l.status(id)).state).toBe('succeeded');
  });

  it('does not fail in-flight hosts for the time the controller itself was down', async () => {
    const l = await lab(2);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 60 });
    for (const host of l.names) {
      l.ctl.deps.presence.websocketOpened(host);
      await l.report(host, 'activating');
    }
    // The controller is down for 10 minutes; the hosts finished meanwhile and hold their reports in their outboxes.
    l.engine.stopTimer();
    l.ctl.clock.advance(600_000);
    const restarted = makeEngine(l.ctl);
    await restarted.tickAll();
    expect(await l.status(id)).toMatchObject({ state: 'running', failures: 0 });
    for (const host of l.names) await l.report(host, 'healthy', { engine: restarted });
    expect((await l.status(id)).state).toBe('succeeded');
    // Still bounded: a host that never reports fails a full deadline after the restart.
    const m = await lab(1);
    const id2 = await m.start({ waves: ['100%'], healthDeadlineSeconds: 60 });
    m.ctl.deps.presence.websocketOpened(m.names[0]!);
    await m.report(m.names[0]!, 'activating');
    m.ctl.clock.advance(600_000);
    const again = makeEngine(m.ctl);
    await again.tickAll();
    expect((await m.status(id2)).state).toBe('running');
    m.ctl.clock.advance(60_000);
    await again.tickAll();
    expect(await m.status(id2)).toMatchObject({ state: 'halted', failures: 1 });
  });

  it('announces the manifests of an operator\'s rollback to the agents (websocket pushes), as it does for waves', async () => {
    const l = await lab(2);
    const id = await l.start({ waves: ['100%'] });
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('succeeded');
    const announced: Array<{ host: string; version: number }> = [];
    l.ctl.deps.bus.onPublish((manifest) => announced.push({ host: manifest.host, version: manifest.version }));
    expect(await l.engine.act(id, 'rollback', 'operator:test')).toMatchObject({ ok: true, value: 'rolling-back' });
    expect(announced.sort((a, b) => a.host.localeCompare(b.host))).toEqual(l.names.map((host) => ({ host, version: 2 })));
  });

  it('refuses to roll back a finished rollout while another active rollout owns its hosts', async () => {
    const l = await lab(2);
    const first = await l.start({ waves: ['100%'] });
    await l.answer('healthy');
    expect((await l.status(first)).state).toBe('succeeded');
    const second = await l.engine.start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'], approvalBefore: [0] }), 'operator:test');
    if (!second.ok) throw new Error(second.message);
    const before = await Promise.all(l.names.map((h) => l.manifestsOf(h)));
    const refused = await l.engine.act(first, 'rollback', 'operator:test');
    expect(refused).toMatchObject({ ok: false, kind: 'rollout-overlap' });
    expect(refused.ok || refused.message).toContain(second.value);
    expect((await l.status(first)).state).toBe('succeeded');
    expect(await Promise.all(l.names.map((h) => l.manifestsOf(h)))).toEqual(before);
  });

  it('fails a rollout that makes no progress within its deadline, not counting time spent waiting for approval', async () => {
    const l = await lab(3);
    const id = await l.start({ canary: 1, waves: ['100%'], approvalBefore: [1], progressDeadlineSeconds: 60 });
    await l.answer('healthy');
    l.ctl.clock.advance(3600_000);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('waiting-approval');
    expect(await l.engine.act(id, 'approve', 'operator:test')).toMatchObject({ ok: true, value: 'running' });
    l.ctl.clock.advance(59_000);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('running');
    l.ctl.clock.advance(1_000);
    await l.engine.tickAll();
    expect(await l.status(id)).toMatchObject({ state: 'halted', reason: expect.stringContaining('no progress for 60s') });
  });
});

describe('a paused host in a rollout', () => {
  it('gets no manifest while paused: its wave waits for it, neither failed nor skipped, and goes on when it is resumed', async () => {
    const l = await lab(3);
    const pause = async (paused: boolean) => expect(await setHostPaused({ ...l.ctl.deps, rollouts: l.engine }, 'h2', paused, 'operator:test')).toEqual({ ok: true, changed: true });
    await pause(true);
    const id = await l.start({ waves: ['100%'] });
    expect((await issuedTo(l)).sort()).toEqual(['h1', 'h3']);
    await l.answer('healthy');
    // Hours later, with deadlines checked: still waiting for h2, which was sent nothing.
    l.ctl.clock.advance(3600_000);
    await l.engine.tickAll();
    const waiting = await l.status(id);
    expect(waiting.state).toBe('running');
    expect(waiting.failures).toBe(0);
    expect(waiting.waves[0]!.hosts.find((h) => h.host === 'h2')).toMatchObject({ state: 'pending', paused: true, manifestVersion: null });
    expect(await l.manifestsOf('h2')).toBe(0);

    await pause(false);
    expect(await issuedTo(l)).toContain('h2');
    expect((await l.status(id)).waves[0]!.hosts.find((h) => h.host === 'h2')).toMatchObject({ state: 'issued', paused: false });
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('succeeded');
  });

  it('halts a rollout with a progress deadline that only the paused host holds up', async () => {
    const l = await lab(2);
    expect((await setHostPaused({ ...l.ctl.deps, rollouts: l.engine }, 'h2', true, 'operator:test')).ok).toBe(true);
    const id = await l.start({ waves: ['100%'], progressDeadlineSeconds: 600 });
    await l.answer('healthy');
    l.ctl.clock.advance(600_000);
    await l.engine.tickAll();
    expect(await l.status(id)).toMatchObject({ state: 'halted', reason: 'no progress for 600s (progress deadline)' });
    expect(await l.manifestsOf('h2')).toBe(0);
  });
});
