import { afterEach, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { WEEKDAYS } from '../../shared/src/windows.js';
import { rebootLockTimeline, reportEvents } from './deploy-helpers.js';

/**
 * Reboots across hosts (issue 14): maintenance windows with staging ahead of them, the fleet
 * reboot lock the controller keeps, and what a host does when the controller cannot be reached.
 * Windows are defined a few seconds ahead of the real clock (times carry seconds), so nothing
 * waits for real hours.
 */
describe('reboots across the fleet', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const context = () => lab.diagnostics(20);
  afterEach(() => lab?.cleanup());

  async function start(names: string[], config: (name: string) => Record<string, unknown>, args: string[] = []): Promise<Record<string, LabHost>> {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController({ args });
    const hosts: Record<string, LabHost> = {};
    for (const name of names) {
      hosts[name] = await lab.addHost(name, { bootstrap: fixtures.systems.base });
      await hosts[name].start({ config: { healthDeadlineMs: 5_000, ...config(name) }, rebootable: true });
    }
    for (const name of names) await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context);
    return hosts;
  }

  /**
   * Restarts the hosts' agents with a maintenance window opening `inSeconds` from now: only once
   * the lab is up, so a slow start (a loaded machine) cannot let the window open before the test
   * deploys anything.
   */
  async function withWindow(hosts: Record<string, LabHost>, inSeconds: number, config: (name: string) => Record<string, unknown>) {
    const { opens, window } = windowOpeningIn(inSeconds);
    for (const [name, host] of Object.entries(hosts)) {
      await host.stop();
      await host.start({ config: { healthDeadlineMs: 5_000, ...config(name), maintenanceWindows: [window] }, rebootable: true });
    }
    for (const name of Object.keys(hosts)) await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context);
    return opens;
  }

  /** A window on every day, opening `inSeconds` from now (UTC, to the second) for an hour. */
  function windowOpeningIn(inSeconds: number) {
    const time = (d: Date) => d.toISOString().slice(11, 19);
    const opens = new Date(Math.ceil((Date.now() + inSeconds * 1000) / 1000) * 1000);
    return {
      opens,
      window: { days: [...WEEKDAYS], start: time(opens), end: time(new Date(opens.getTime() + 3_600_000)), timeZone: 'UTC' },
    };
  }

  it('window closed: the host stages (closure realised, nothing activated) and activates when the window opens', async () => {
    const policy = () => ({ reboot: { policy: 'when-needed' } });
    const hosts = await start(['win-1'], policy);
    const opens = await withWindow(hosts, 12, policy);
    const host = hosts['win-1']!;
    const target = fixtures.systems.newKernel.path;
    const manifest = await controller.client.setDesired('win-1', target);
    await controller.waitForPhase('win-1', manifest.version, 'staged', 30_000, context);
    // Staged: downloaded, but nothing on the host changed.
    expect(host.hasStorePath(target)).toBe(true);
    expect(host.activations().filter((a) => a.path === target)).toEqual([]);
    expect(host.bootDefault()).toBe(fixtures.systems.base.path);
    expect(host.reboots()).toEqual([]);
    const staged = (await reportEvents(await controller.client.events('win-1'))).find((r) => r.phase === 'staged')!;
    expect(staged.detail.windowOpensAt).toBe(opens.toISOString());
    expect(staged.detail.reboot?.needed).toBe(true);

    await controller.waitForPhase('win-1', manifest.version, 'healthy', 60_000, context);
    const [reboot] = host.reboots();
    expect(reboot!.bootDefault).toBe(target);
    expect(reboot!.at).toBeGreaterThanOrEqual(opens.getTime());
    expect(host.bootedSystem()).toBe(target);
  });

  it('a reboot lock of 1 over 4 hosts: the rollout reboots them one at a time and counts each healthy only after its post-reboot gate', async () => {
    const names = ['lock-1', 'lock-2', 'lock-3', 'lock-4'];
    const hosts = await start(names, () => ({ reboot: { policy: 'when-needed' } }), ['--max-concurrent-reboots', '1']);
    const target = fixtures.systems.newKernel.path;
    await controller.client.createRelease({ name: 'kernel-6.12', hosts: Object.fromEntries(names.map((n) => [n, target])) });
    const plan = await controller.client.plan({ release: 'kernel-6.12', waves: ['100%'] });
    expect(plan.reboots?.map((r) => r.prediction)).toEqual(['unknown', 'unknown', 'unknown', 'unknown']);
    const started = await controller.client.startRollout({ release: 'kernel-6.12', waves: ['100%'], healthDeadlineSeconds: 120, bakeSeconds: 0 });
    const done = await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 180_000, context });
    expect(done.waves.flatMap((w) => w.hosts.map((h) => h.state))).toEqual(['healthy', 'healthy', 'healthy', 'healthy']);

    // From the event log: grants and releases never leave two hosts holding the lock.
    const { events, most, holding } = await rebootLockTimeline(controller, names);
    expect(events.filter((e) => e.kind === 'reboot-granted').map((e) => e.host).sort()).toEqual(names);
    expect(most).toBe(1);
    expect(holding).toBe(0);
    for (const name of names) {
      const host = hosts[name]!;
      expect([name, host.bootedSystem(), host.reboots().length]).toEqual([name, target, 1]);
      const phases = reportEvents(events.filter((e) => e.host === name)).map((r) => r.phase);
      // The rollout saw healthy only after the reboot and the health gate on the new system.
      expect(phases.indexOf('healthy')).toBeGreaterThan(phases.indexOf('rebooting'));
      expect(phases.lastIndexOf('checking')).toBeGreaterThan(phases.indexOf('rebooting'));
    }
  });

  it('controller unreachable: no reboot without its grant unless the local policy allows it', async () => {
    const config = (name: string) => ({
      reboot: { policy: 'when-needed', withoutController: name === 'cut-2' },
      // cut-2's post-reboot gate waits for the controller to be back.
      healthDeadlineMs: 60_000,
    });
    const hosts = await start(['cut-1', 'cut-2'], config);
    await withWindow(hosts, 15, config);
    const target = fixtures.systems.newKernel.path;
    const versions: Record<string, number> = {};
    for (const name of ['cut-1', 'cut-2']) {
      versions[name] = (await controller.client.setDesired(name, target)).version;
      await controller.waitForPhase(name, versions[name]!, 'staged', 30_000, context);
    }
    await controller.stop();

    const step = (host: LabHost) => (host.agentState() as { activation: { step: string } | null } | null)?.activation?.step;
    // cut-1 decided: it waits for a grant it cannot get (its persisted activation says so).
    await hosts['cut-1']!.waitFor('waiting for a reboot grant', () => step(hosts['cut-1']!) === 'awaiting-reboot-grant', 60_000);
    expect(hosts['cut-1']!.reboots()).toEqual([]);
    expect(hosts['cut-1']!.bootDefault()).toBe(fixtures.systems.base.path);
    // cut-2 may decide locally: it rebooted.
    await hosts['cut-2']!.waitFor('rebooted without the controller', () => hosts['cut-2']!.reboots().length === 1, 60_000);

    const back = Date.now();
    await controller.start();
    await controller.waitForPhase('cut-1', versions['cut-1']!, 'healthy', 60_000, context);
    await controller.waitForPhase('cut-2', versions['cut-2']!, 'healthy', 60_000, context);
    expect(hosts['cut-1']!.reboots()).toHaveLength(1);
    expect(hosts['cut-1']!.reboots()[0]!.at).toBeGreaterThan(back);
    expect(hosts['cut-2']!.bootedSystem()).toBe(target);
  });
});
