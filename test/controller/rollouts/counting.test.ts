import { describe, expect, it } from 'vitest';
import type { PublishedManifest } from '../../../controller/src/manifests/bus.js';
import { renewExpiringManifests } from '../../../controller/src/manifests/renew.js';
import { BAKE_OFFLINE_GRACE_MS } from '../../../controller/src/rollouts/advance.js';
import { desiredManifest, eventsOf } from '../helpers.js';
import { lab, NEW, OLD, type Lab } from './engine-lab.js';

/** Issue 11, "Rollouts must count what really happened": the engine's side, on a real database. */

const hostsOf = async (l: Lab, id: string) => (await l.status(id)).waves.flatMap((w) => w.hosts);
const announced = (l: Lab): PublishedManifest[] => {
  const heard: PublishedManifest[] = [];
  l.ctl.deps.bus.onPublish((m) => heard.push(m));
  return heard;
};

describe('rollouts count what really happened', () => {
  it("announces an operator's rollback to the hosts, as it announces an automatic one", async () => {
    const l = await lab(3);
    const id = await l.start({ waves: ['100%'] });
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('succeeded');
    const heard = announced(l);

    const outcome = await l.engine.act(id, 'rollback', 'operator:alice');
    expect(outcome).toEqual({ ok: true, value: 'rolling-back' });
    // Every host got a new, higher version naming its previous system, announced after commit.
    expect(heard.map((m) => m.host).sort()).toEqual([...l.names].sort());
    for (const m of heard) {
      const manifest = (await desiredManifest(l.ctl.store, m.host))!;
      expect([m.version, manifest.storePath]).toEqual([manifest.version, OLD(l.names.indexOf(m.host) + 1)]);
    }
    await l.answer('healthy');
    expect((await l.status(id)).state).toBe('rolled-back');
  });

  it('ends a rollback whose hosts did not return as rollback-failed, and a rolling-back rollout can be aborted', async () => {
    const l = await lab(2);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 60 });
    await l.answer('healthy');
    await l.engine.act(id, 'rollback', 'operator:alice');
    const [back, stuck] = l.names as [string, string];
    await l.report(back, 'healthy');
    l.ctl.clock.advance(60_000);
    await l.engine.tickAll();
    const failed = await l.status(id);
    expect(failed.state).toBe('rollback-failed');
    expect((await hostsOf(l, id)).map((h) => [h.host, h.rollbackState]).sort()).toEqual([
      [back, 'healthy'],
      [stuck, 'failed'],
    ]);
    const events = await eventsOf(l.ctl.store, 'rollout-rollback-failed', { rolloutId: id });
    expect(events.map((e) => e.data.failed)).toEqual([[stuck]]);
    // Rolling back again would change nothing: the engine says so.
    expect(await l.engine.act(id, 'rollback', 'operator:alice')).toMatchObject({ ok: false, kind: 'invalid-transition' });

    const other = await lab(2);
    const rolling = await other.start({ waves: ['100%'] });
    await other.answer('healthy');
    await other.engine.act(rolling, 'rollback', 'operator:alice');
    expect(await other.engine.act(rolling, 'abort', 'operator:bob')).toEqual({ ok: true, value: 'aborted' });
    // No longer owning its hosts, it no longer blocks a new rollout of them.
    expect((await other.engine.plan({ ...(await other.status(rolling)).spec })).ok).toBe(true);
    const replaced = await other.engine.start({ ...(await other.status(rolling)).spec }, 'operator:bob');
    expect(replaced.ok).toBe(true);
  });

  it('counts a report on a manifest re-signed (renewed) while the host was still in flight', async () => {
    const l = await lab(1);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 24 * 3600, offline: { waitSeconds: 24 * 3600, then: 'fail' } });
    const issued = (await desiredManifest(l.ctl.store, 'h1'))!;
    const { store, signer, releaseTrust, clock, bus, manifestTtlMs } = l.ctl.deps;
    // Renewed twice before the host answers: it answers on the newest version it was sent.
    for (let i = 0; i < 2; i++) {
      l.ctl.clock.advance(manifestTtlMs);
      expect(await renewExpiringManifests({ store, signer, releaseTrust, clock, bus, manifestTtlMs })).toBe(1);
    }
    const renewed = (await desiredManifest(l.ctl.store, 'h1'))!;
    expect([renewed.version, renewed.storePath, renewed.rolloutId]).toEqual([issued.version + 2, NEW(1), id]);
    await l.report('h1', 'activating', { version: renewed.version });
    expect((await hostsOf(l, id))[0]!.state).toBe('in-progress');
    await l.report('h1', 'healthy', { version: renewed.version });
    expect(await l.status(id)).toMatchObject({ state: 'succeeded', finished: 1 });
  });

  it('counts a rollback report on a renewed rollback manifest', async () => {
    const l = await lab(1);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 24 * 3600 });
    await l.answer('healthy');
    await l.engine.act(id, 'rollback', 'operator:alice');
    const { store, signer, releaseTrust, clock, bus, manifestTtlMs } = l.ctl.deps;
    l.ctl.clock.advance(manifestTtlMs);
    expect(await renewExpiringManifests({ store, signer, releaseTrust, clock, bus, manifestTtlMs })).toBe(1);
    await l.report('h1', 'healthy', { version: (await desiredManifest(l.ctl.store, 'h1'))!.version });
    expect((await l.status(id)).state).toBe('rolled-back');
  });

  it('freezes host deadlines while paused: a long pause fails nobody on resume', async () => {
    const l = await lab(2);
    const id = await l.start({ waves: ['100%'], healthDeadlineSeconds: 60, offline: { waitSeconds: 60, then: 'fail' } });
    const [working, away] = l.names as [string, string];
    l.ctl.deps.presence.websocketClosed(away);
    await l.report(working, 'activating');
    l.ctl.clock.advance(30_000);
    await l.engine.act(id, 'pause', 'operator:alice');
    l.ctl.clock.advance(3600_000);
    await l.engine.act(id, 'resume', 'operator:alice');
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('running');
    expect(Object.fromEntries((await hostsOf(l, id)).map((h) => [h.host, h.state]))).toEqual({ [working]: 'in-progress', [away]: 'issued' });
    // The clocks run again from where they stood: 30 s were left of each deadline.
    l.ctl.clock.advance(29_000);
    await l.engine.tickAll();
    expect((await hostsOf(l, id)).filter((h) => h.state === 'failed')).toEqual([]);
    l.ctl.clock.advance(1_000);
    await l.engine.tickAll();
    expect((await hostsOf(l, id)).filter((h) => h.state === 'failed').map((h) => h.host).sort()).toEqual([working, away].sort());
  });

  it('fails a host that degrades during its wave’s bake, against the threshold', async () => {
    const l = await lab(3);
    const id = await l.start({ waves: [1, '100%'], bakeSeconds: 600 });
    const [first] = await l.answer('healthy') as [string];
    expect(await l.status(id)).toMatchObject({ state: 'running', wavePhase: 'baking' });
    await l.report(first, 'degraded', { current: NEW(l.names.indexOf(first) + 1) });
    const halted = await l.status(id);
    expect(halted.state).toBe('halted');
    expect((await hostsOf(l, id)).find((h) => h.host === first)).toMatchObject({ state: 'failed' });
    expect((await hostsOf(l, id)).find((h) => h.host === first)!.reason).toMatch(/^degraded after it reported healthy/);
    // Nobody of the next wave was sent anything.
    expect(halted.waves[1]!.counts.pending).toBe(2);
    // Its events name the wave as every rollout event does, numbered from 1 ("wave 1 of 2").
    const events = await eventsOf(l.ctl.store, ['rollout-host-issued', 'rollout-host-healthy', 'rollout-host-failed'], { rolloutId: id, host: first });
    expect(events.map((e) => [e.kind, e.data.wave, e.data.degraded])).toEqual([
      ['rollout-host-issued', 1, undefined],
      ['rollout-host-healthy', 1, undefined],
      ['rollout-host-failed', 1, true],
    ]);
  });

  it('fails a host that goes offline during its wave’s bake, once it stays away past the grace', async () => {
    const l = await lab(3);
    const id = await l.start({ waves: [1, '100%'], bakeSeconds: 600 });
    const [first] = await l.answer('healthy') as [string];
    l.ctl.deps.presence.websocketClosed(first);
    await l.engine.tickAll();
    l.ctl.clock.advance(BAKE_OFFLINE_GRACE_MS - 1);
    await l.engine.tickAll();
    expect(await l.status(id)).toMatchObject({ state: 'running', wavePhase: 'baking' });
    l.ctl.clock.advance(1);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('halted');
    expect((await hostsOf(l, id)).find((h) => h.host === first)!.reason).toMatch(/went offline during the bake/);
  });

  it('retries only the failed and unreached hosts of a halted rollout, as a new rollout linked to it', async () => {
    const l = await lab(5);
    const id = await l.start({ waves: [2, '100%'], failureThreshold: { count: 0 } });
    const firstWave = (await l.status(id)).waves[0]!.hosts.map((h) => h.host) as [string, string];
    await l.report(firstWave[0], 'healthy');
    await l.report(firstWave[1], 'rolled-back');
    expect((await l.status(id)).state).toBe('halted');
    expect(await l.engine.retry('ro-none', 'operator:alice')).toMatchObject({ ok: false, kind: 'unknown-rollout' });

    const retried = await l.engine.retry(id, 'operator:alice');
    if (!retried.ok) throw new Error(retried.message);
    const again = await l.status(retried.value);
    expect(again.retryOf).toBe(id);
    const retriedHosts = again.waves.flatMap((w) => w.hosts.map((h) => h.host));
    expect(retriedHosts.sort()).toEqual(l.names.filter((h) => h !== firstWave[0]).sort());
    // The old order stands: the failed host first (its old wave), then the ones never reached.
    expect(again.waves.map((w) => w.hosts.length)).toEqual([1, 3]);
    const events = await eventsOf(l.ctl.store, 'rollout-retried', { rolloutId: id });
    expect(events.map((e) => e.data.retryId)).toEqual([retried.value]);
    // An active rollout is not retried.
    expect(await l.engine.retry(retried.value, 'operator:alice')).toMatchObject({ ok: false, kind: 'invalid-transition' });
    await l.answer('healthy');
    await l.answer('healthy');
    expect((await l.status(retried.value)).state).toBe('succeeded');
    expect(await l.engine.retry(retried.value, 'operator:alice')).toMatchObject({ ok: false, kind: 'nothing-to-retry' });
  });
});
