import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { reportEvents } from './deploy-helpers.js';

/**
 * Reboots (issue 14): the agent knows before activating whether the new system needs a reboot
 * or refuses a live switch, takes the boot + reboot path when its policy says so, runs the health
 * gate after the reboot, and reboots back once when that fails. Lab hosts reboot for real as far
 * as the agent can tell: it is killed, /run is emptied, the boot default is booted, it starts again.
 */
describe('reboots', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const hosts: Record<string, LabHost> = {};
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    const policies = { 'kernel-1': 'when-needed', 'inhib-1': 'when-needed', 'sick-1': 'when-needed', 'never-1': 'never', 'never-2': 'never' } as const;
    await Promise.all(
      Object.entries(policies).map(async ([name, policy]) => {
        hosts[name] = await lab.addHost(name, { bootstrap: fixtures.systems.base });
        await hosts[name].start({ config: { reboot: { policy }, healthDeadlineMs: 3_000 }, rebootable: true });
      }),
    );
    for (const name of Object.keys(policies)) {
      await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context);
    }
  });
  afterAll(() => lab?.cleanup());

  async function reports(name: string, version: number) {
    return reportEvents(await controller.client.events(name)).filter((r) => r.manifestVersion === version);
  }

  it('kernel change, policy when-needed: says so before activating, boots and reboots, passes the health gate after the reboot, healthy', async () => {
    const host = hosts['kernel-1']!;
    const target = fixtures.systems.newKernel.path;
    const manifest = await controller.client.setDesired('kernel-1', target);
    await controller.waitForPhase('kernel-1', manifest.version, 'healthy', 60_000, context);
    const phases = await reports('kernel-1', manifest.version);
    const activating = phases.find((r) => r.phase === 'activating')!;
    expect(activating.detail.reboot).toEqual({ needed: true, liveSwitchPossible: true, reasons: ['kernel', 'initrd', 'kernel-modules'] });
    const order = phases.map((r) => r.phase);
    expect(order.indexOf('rebooting')).toBeGreaterThan(order.indexOf('activating'));
    expect(order.lastIndexOf('checking')).toBeGreaterThan(order.indexOf('rebooting'));
    expect(phases.at(-1)!.phase).toBe('healthy');
    expect(host.bootedSystem()).toBe(target);
    expect(host.currentSystem()).toBe(target);
    expect(host.reboots().map((r) => r.bootDefault)).toEqual([target]);
    // Never switched live: the reboot is what activated it.
    expect(host.activations().filter((a) => a.path === target).map((a) => a.action)).not.toContain('test');
  });

  it('inhibitors differ: never runs `test`, takes boot + reboot', async () => {
    const host = hosts['inhib-1']!;
    const target = fixtures.systems.newInhibitors.path;
    const manifest = await controller.client.setDesired('inhib-1', target);
    await controller.waitForPhase('inhib-1', manifest.version, 'healthy', 60_000, context);
    const activating = (await reports('inhib-1', manifest.version)).find((r) => r.phase === 'activating')!;
    expect(activating.detail.reboot).toEqual({ needed: true, liveSwitchPossible: false, reasons: ['switch-inhibitors'] });
    const actions = host.activations().filter((a) => a.path === target).map((a) => a.action);
    expect(actions).toContain('boot');
    expect(actions).not.toContain('test');
    expect(actions).not.toContain('switch');
    expect(host.bootedSystem()).toBe(target);
    expect(host.reboots()).toHaveLength(1);
  });

  it('post-reboot health fails: reboots back into the previous system once, reports rolled-back with the reason', async () => {
    const host = hosts['sick-1']!;
    const base = fixtures.systems.base.path;
    const target = fixtures.systems.newKernelFailHealth.path;
    const manifest = await controller.client.setDesired('sick-1', target);
    await controller.waitForPhase('sick-1', manifest.version, 'rolled-back', 90_000, context);
    const final = (await reports('sick-1', manifest.version)).at(-1)!;
    expect(final.phase).toBe('rolled-back');
    expect(final.detail.reason).toMatch(/^post-reboot health gate: health check lab-health failed.*; rebooted back into the previous system$/);
    expect(host.bootedSystem()).toBe(base);
    expect(host.bootDefault()).toBe(base);
    // Into the new system, then back: two reboots, never a third.
    expect(host.reboots().map((r) => r.bootDefault)).toEqual([target, base]);
    const state = host.agentState() as { activation: unknown; lastResult: { phase: string } };
    expect(state.activation).toBeNull();
    expect(state.lastResult.phase).toBe('rolled-back');
  });

  it('policy never: inhibitors differ → boot default set, pending-reboot, no reboot', async () => {
    const host = hosts['never-1']!;
    const target = fixtures.systems.newInhibitors.path;
    const manifest = await controller.client.setDesired('never-1', target);
    const status = await controller.waitForPhase('never-1', manifest.version, 'pending-reboot', 30_000, context);
    expect(status.phase).toBe('pending-reboot');
    expect(host.bootDefault()).toBe(target);
    expect(host.currentSystem()).toBe(fixtures.systems.base.path);
    expect(host.activations().filter((a) => a.path === target).map((a) => a.action)).toEqual(['boot']);
    expect(host.reboots()).toEqual([]);
  });

  it('policy never: a kernel change switches live and waits for a reboot (pending-reboot)', async () => {
    const host = hosts['never-2']!;
    const target = fixtures.systems.newKernel.path;
    const manifest = await controller.client.setDesired('never-2', target);
    const status = await controller.waitForPhase('never-2', manifest.version, 'pending-reboot', 30_000, context);
    expect(status.phase).toBe('pending-reboot');
    expect(host.currentSystem()).toBe(target);
    expect(host.bootedSystem()).toBe(fixtures.systems.base.path);
    expect(host.reboots()).toEqual([]);
  });
});
