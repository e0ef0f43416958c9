import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RolloutSpec } from '../../../shared/src/rollout-api.js';
import { appendEvents as append, type NewEvent } from '../../../controller/src/events.js';
import { registerHost } from '../../../controller/src/hosts/enrollment.js';
import { createUnsignedRelease } from '../../../controller/src/rollouts/releases.js';
import { rolloutStatus } from '../../../controller/src/rollouts/status.js';
import { and, eq } from 'drizzle-orm';
import { storePath, testController, type TestController } from '../helpers.js';

// More failed members than one chunk statement reads (256 hosts), so the lookup spans chunks.
const HOSTS = 300;

const open: TestController[] = [];
afterEach(async () => {
  for (const ctl of open.splice(0)) await ctl.close();
});

/** Written as the report path writes them, in a transaction of their own. */
const appendEvents = (ctl: TestController, events: NewEvent[]) => ctl.store.transaction(() => append(ctl.store, events));

const report = (host: string, phase: string, manifestVersion: number, extra: Record<string, unknown> = {}): NewEvent => ({
  host,
  at: Date.now(),
  kind: 'report',
  actor: `agent:${host}`,
  data: { seq: 0, phase, manifestVersion, storePath: null, currentSystem: null, reportedAt: new Date().toISOString(), detail: extra },
});

describe('a rollout status names why each failed host failed', () => {
  it('for hundreds of failed hosts, each from its report about the version the rollout sent it, however many reports came after', async () => {
    const ctl = await testController();
    open.push(ctl);
    const names = Array.from({ length: HOSTS }, (_, i) => `f${i + 1}`);
    for (const name of names) {
      expect((await registerHost(ctl.store, ctl.clock, { name, publicKey: randomBytes(32).toString('base64'), tags: [], actor: 'test' })).ok).toBe(true);
    }
    // Trouble reports from before the rollout, about an older version: never its hosts' failure.
    await appendEvents(ctl, names.map((host) => report(host, 'failed', 0, { reason: 'an older failure' })));
    const release = await createUnsignedRelease(
      ctl.store,
      ctl.clock,
      ctl.deps.releaseTrust,
      { name: 'rel-f', description: '', source: null, hosts: names.map((host) => ({ host, storePath: storePath(`nixos-system-${host}`, 'b') })) },
      'operator:test',
    );
    expect(release.ok).toBe(true);
    const started = await ctl.deps.rollouts.start(RolloutSpec.parse({ release: 'rel-f', waves: ['100%'], failureThreshold: { count: HOSTS } }), 'operator:test');
    if (!started.ok) throw new Error(started.message);
    const id = started.value;
    await expect.poll(async () => (await rolloutStatus(ctl.store, id, ctl.clock.now()))!.waves[0]!.counts.pending, { interval: 10 }).toBe(0);

    const { rolloutHosts } = ctl.store.t;
    const members = await ctl.store.q.select({ host: rolloutHosts.host, version: rolloutHosts.manifestVersion }).from(rolloutHosts).where(eq(rolloutHosts.rolloutId, id));
    expect(members).toHaveLength(HOSTS);
    const chatty = members[0]!;
    await appendEvents(
      ctl,
      members.map(({ host, version }) =>
        report(host, 'failed', version!, {
          reason: `switch-to-configuration failed on ${host}`,
          failure: { command: 'switch-to-configuration test', exitCode: 4, signal: null, timedOut: false, outputTail: `unit ${host}.service failed\n` },
        }),
      ),
    );
    // One host went on reporting after its failure (its next attempts), well past the last 50 reports a single-host lookup reads.
    await appendEvents(ctl, Array.from({ length: 60 }, () => report(chatty.host, 'downloading', chatty.version! + 1)));
    await ctl.store.transaction(async (tx) => {
      await tx.update(rolloutHosts).set({ state: 'failed', reason: 'reported failed' }).where(and(eq(rolloutHosts.rolloutId, id)));
    });

    const status = (await rolloutStatus(ctl.store, id, ctl.clock.now()))!;
    const hosts = status.waves[0]!.hosts;
    expect(hosts).toHaveLength(HOSTS);
    for (const view of hosts) {
      expect(view.failure, view.host).toMatchObject({ phase: 'failed', version: view.manifestVersion, reason: `switch-to-configuration failed on ${view.host}` });
    }
    expect(hosts.find((h) => h.host === chatty.host)!.failure?.failure?.outputTail).toBe(`unit ${chatty.host}.service failed\n`);

    // Retention may prune the rollout's first event before its hosts' reports (audit events kept
    // for less time than reports): the failures are still found, from all of the hosts' reports.
    const { events } = ctl.store.t;
    await ctl.store.transaction(async (tx) => {
      await tx.delete(events).where(and(eq(events.rolloutId, id), eq(events.kind, 'rollout-started')));
    });
    const pruned = (await rolloutStatus(ctl.store, id, ctl.clock.now()))!.waves[0]!.hosts;
    expect(pruned.filter((view) => view.failure?.version === view.manifestVersion)).toHaveLength(HOSTS);
  });
});
