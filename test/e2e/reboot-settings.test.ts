import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { toBase64 } from '../../shared/src/keys.js';
import type { ManifestPayload } from '../../shared/src/protocol.js';
import { WEEKDAYS } from '../../shared/src/windows.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { serveTampered, storedEnvelope } from './controller-db.js';
import { lastEventId, rebootLockTimeline, reportEvents, waitForReport } from './deploy-helpers.js';

/**
 * Reboot policy, maintenance windows and reboot locks set on the controller per host and per tag
 * (issue 14): they reach the agent signed inside its manifest, and the agent's own configuration
 * sets none of them here. Windows open a few seconds ahead of the real clock.
 */
describe('reboot settings set on the controller', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const context = () => lab.diagnostics(20);
  afterEach(() => lab?.cleanup());

  /** Hosts enrolled with `tags`; their agents set no reboot policy and no windows of their own. */
  async function start(hosts: Record<string, string[]>, options: { args?: string[]; websocket?: boolean } = {}): Promise<Record<string, LabHost>> {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController({ args: options.args ?? [] });
    const started: Record<string, LabHost> = {};
    for (const [name, tags] of Object.entries(hosts)) {
      const host = await lab.addHost(name, { bootstrap: fixtures.systems.base });
      await writeFile(host.paths.enrollToken, `${await controller.enrollmentToken(tags)}\n`, { mode: 0o600 });
      // Plain polls: a row tampered in the database reaches the agent on its next poll; a long-poll
      // (which only a change made through the controller ends) would hold it for 25 s.
      const transport = options.websocket === false ? { websocket: false, pollIntervalMs: 500, longPollSeconds: 0 } : {};
      await host.start({ config: { healthDeadlineMs: 5_000, ...transport }, rebootable: true });
      started[name] = host;
    }
    for (const name of Object.keys(hosts)) await controller.waitForHost(name, 'enrolled', (s) => s.lastSeenAt !== null, 30_000, context);
    return started;
  }

  /** A window on every day, opening `inSeconds` from now (UTC, to the second) for an hour. */
  function windowOpeningIn(inSeconds: number) {
    const time = (d: Date) => d.toISOString().slice(11, 19);
    const opens = new Date(Math.ceil((Date.now() + inSeconds * 1000) / 1000) * 1000);
    return { opens, window: { days: [...WEEKDAYS], start: time(opens), end: time(new Date(opens.getTime() + 3_600_000)), timeZone: 'UTC' } };
  }

  it('policy never set on the host (over its tag’s when-needed) reaches the agent signed: pending-reboot, no reboot; the same manifest with its policy changed on the way is refused', async () => {
    const hosts = await start({ 'pol-1': ['db'] }, { websocket: false });
    const host = hosts['pol-1']!;
    await controller.client.setTagReboot('db', { policy: 'when-needed' });
    const view = await controller.client.setHostReboot('pol-1', { policy: 'never' });
    expect(view.effective).toMatchObject({ policy: 'never', policyFrom: 'host' });

    const target = fixtures.systems.newKernel.path;
    const manifest = await controller.client.setDesired('pol-1', target);
    await controller.waitForPhase('pol-1', manifest.version, 'pending-reboot', 60_000, context);
    const pending = reportEvents(await controller.client.events('pol-1')).find((r) => r.phase === 'pending-reboot')!;
    expect(pending.detail.reason).toMatch(/reboot policy never, set on the controller/);
    expect(host.reboots()).toEqual([]);
    expect(host.bootDefault()).toBe(target);

    // An attacker between controller and agent turns the policy into `always` (and the version up, so it is new).
    const genuine = storedEnvelope(lab, 'pol-1', manifest.version);
    const payload = JSON.parse(Buffer.from(genuine.payload, 'base64').toString('utf8')) as ManifestPayload;
    expect(payload.reboot).toEqual({ policy: 'never', windows: null, windowsForAll: false });
    const forged = { ...payload, version: manifest.version + 1, reboot: { ...payload.reboot!, policy: 'always' } };
    const marker = await lastEventId(controller, 'pol-1');
    serveTampered(lab, 'pol-1', { ...genuine, payload: toBase64(Buffer.from(JSON.stringify(forged))) }, target);
    const refused = await waitForReport(controller, 'pol-1', 'the refusal', () => true, { afterEventId: marker, context });
    expect(refused.phase).toBe('refused');
    expect(refused.detail.refusal).toBe('bad-signature');
    expect(host.reboots()).toEqual([]);
  });

  it('windows set on the host’s tag make it stage (realised, nothing activated) and activate when they open; rollout activateWithinWindows holds back a change without a reboot too', async () => {
    const hosts = await start({ 'win-1': ['web'], 'win-2': ['web'] });
    const { opens, window } = windowOpeningIn(15);
    await controller.client.setTagReboot('web', { policy: 'when-needed', windows: [window] });

    // win-1: a kernel change (needs a reboot) by hand; win-2: a change without one, by a rollout that activates within windows.
    const kernel = fixtures.systems.newKernel.path;
    const v2 = fixtures.systems.v2.path;
    const manifest = await controller.client.setDesired('win-1', kernel);
    await controller.client.createRelease({ name: 'plain', hosts: { 'win-2': v2 } });
    const rollout = await controller.client.startRollout({ release: 'plain', waves: ['100%'], activateWithinWindows: true, healthDeadlineSeconds: 120 });

    await controller.waitForPhase('win-1', manifest.version, 'staged', 30_000, context);
    const win2 = await controller.waitForHost('win-2', 'staged', (s) => s.phase === 'staged', 30_000, context);
    for (const [name, target] of [['win-1', kernel], ['win-2', v2]] as const) {
      const host = hosts[name]!;
      expect(host.hasStorePath(target)).toBe(true);
      expect(host.activations().filter((a) => a.path === target)).toEqual([]);
      const staged = reportEvents(await controller.client.events(name)).find((r) => r.phase === 'staged')!;
      expect(staged.detail.windowOpensAt).toBe(opens.toISOString());
    }
    expect(win2.desired?.rolloutId).toBe(rollout.id);

    await controller.waitForPhase('win-1', manifest.version, 'healthy', 90_000, context);
    expect(hosts['win-1']!.reboots()[0]!.at).toBeGreaterThanOrEqual(opens.getTime());
    expect(hosts['win-1']!.bootedSystem()).toBe(kernel);
    await controller.waitForRollout(rollout.id, 'succeeded', { timeoutMs: 90_000, context });
    const activated = hosts['win-2']!.activations().find((a) => a.path === v2)!;
    expect(activated.at).toBeGreaterThanOrEqual(opens.getTime());
    expect(hosts['win-2']!.reboots()).toEqual([]);
  });

  it('a tag reboot lock of 1 over 3 hosts: never two of them rebooting at once (from the event log), though the fleet-wide lock allows 3', async () => {
    const names = ['tl-1', 'tl-2', 'tl-3'];
    const hosts = await start(Object.fromEntries(names.map((n) => [n, ['db']])), { args: ['--max-concurrent-reboots', '3'] });
    await controller.client.setTagReboot('db', { policy: 'when-needed', maxRebooting: 1 });
    const target = fixtures.systems.newKernel.path;
    await controller.client.createRelease({ name: 'kernel', hosts: Object.fromEntries(names.map((n) => [n, target])) });
    const started = await controller.client.startRollout({ release: 'kernel', waves: ['100%'], healthDeadlineSeconds: 120 });
    const done = await controller.waitForRollout(started.id, 'succeeded', { timeoutMs: 240_000, context });
    expect(done.waves.flatMap((w) => w.hosts.map((h) => h.state))).toEqual(['healthy', 'healthy', 'healthy']);

    const { events, most, holding } = await rebootLockTimeline(controller, names);
    expect(events.filter((e) => e.kind === 'reboot-granted').map((e) => e.host).sort()).toEqual(names);
    expect(most).toBe(1);
    expect(holding).toBe(0);
    // The grants name the lock that applied: the tag's, under the fleet's.
    for (const grant of events.filter((e) => e.kind === 'reboot-granted')) {
      expect(grant.data.locks).toEqual([
        { name: 'fleet', rebooting: expect.any(Number), max: 3 },
        { name: 'tag db', rebooting: 1, max: 1 },
      ]);
    }
    for (const name of names) expect([name, hosts[name]!.bootedSystem(), hosts[name]!.reboots().length]).toEqual([name, target, 1]);
  });
});
