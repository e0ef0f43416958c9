import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LAB_HEALTH_CHECK } from '../lab/agent-config.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import type { LabSystem } from '../lab/systems.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { waitFor } from '../lab/wait.js';

/** What switch-to-configuration does to the paths an agent reads, per action and fault. */
describe('lab switch-to-configuration', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let host: LabHost;
  let base: LabSystem;

  const sw = (system: LabSystem, action: string, options: { signal?: AbortSignal } = {}) =>
    host.exec([`${system.path}/bin/switch-to-configuration`, action], options);

  beforeAll(async () => {
    fixtures = await labFixtures();
    base = fixtures.systems.base;
    lab = await Lab.start({ fixtures });
    host = await lab.addHost('activation-1', { bootstrap: base });
    for (const system of Object.values(fixtures.systems)) {
      if (system.name !== fixtures.systems.untrusted.name) expect((await host.realise(system.path)).exitCode).toBe(0);
    }
  });
  afterAll(() => lab?.cleanup());
  beforeEach(async () => {
    expect((await sw(base, 'switch')).exitCode).toBe(0);
  });

  it('bootstraps a host as installed: profile, current, booted system and boot default all on base', () => {
    expect(host.generations()).toEqual([{ number: 1, path: base.path }]);
    expect(host.profileSystem()).toBe(base.path);
    expect(host.bootedSystem()).toBe(base.path);
    expect(host.bootDefault()).toBe(base.path);
  });

  it('switch points current-system and the boot default at the new system and logs it', async () => {
    const v2 = fixtures.systems.v2;
    expect((await sw(v2, 'switch')).exitCode).toBe(0);
    expect(host.currentSystem()).toBe(v2.path);
    expect(host.bootDefault()).toBe(v2.path);
    expect(host.activations().at(-1)).toMatchObject({ action: 'switch', path: v2.path });
  });

  it('test activates without touching the boot default; boot sets only the boot default', async () => {
    const { v2, v3 } = fixtures.systems;
    expect((await sw(v2, 'test')).exitCode).toBe(0);
    expect([host.currentSystem(), host.bootDefault()]).toEqual([v2.path, base.path]);
    expect((await sw(v3, 'boot')).exitCode).toBe(0);
    expect([host.currentSystem(), host.bootDefault()]).toEqual([v2.path, v3.path]);
  });

  it('dry-activate changes nothing but is logged', async () => {
    const result = await sw(fixtures.systems.v2, 'dry-activate');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('would restart');
    expect([host.currentSystem(), host.bootDefault()]).toEqual([base.path, base.path]);
    expect(host.activations().at(-1)?.action).toBe('dry-activate');
  });

  it('refuses an unknown action', async () => {
    const result = await sw(fixtures.systems.v2, 'reboot');
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('Usage');
  });

  it('fail-switch leaves the failed system active and exits 1 naming the failed unit', async () => {
    const failing = fixtures.systems.failSwitch;
    const result = await sw(failing, 'test');
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('the following units failed: lab-app.service');
    expect(host.currentSystem()).toBe(failing.path);
  });

  it('fail-switch-early exits 1 and changes nothing', async () => {
    const result = await sw(fixtures.systems.failSwitchEarly, 'switch');
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('nothing was changed');
    expect([host.currentSystem(), host.bootDefault()]).toEqual([base.path, base.path]);
  });

  it('hang-switch activates and never returns; killing the host leaves no sleeper behind', async () => {
    const hanging = fixtures.systems.hangSwitch;
    const sleepers = () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            // Only this host's sleepers: other lab hosts may be hanging on purpose right now.
            const environ = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('2147483647') && environ.includes(`HOME=${host.paths.home}`);
          } catch {
            return false;
          }
        });
    const kill = new AbortController();
    const switching = sw(hanging, 'test', { signal: kill.signal });
    try {
      await waitFor('the hanging switch to be asleep', () => sleepers().length === 1);
    } finally {
      kill.abort();
    }
    const result = await switching;
    expect(result.signal).toBe('SIGKILL');
    expect(host.currentSystem()).toBe(hanging.path);
    expect(sleepers()).toEqual([]);
  });

  it('fail-health activates, and the lab health check then fails saying why', async () => {
    expect((await sw(fixtures.systems.failHealth, 'test')).exitCode).toBe(0);
    const check = await host.exec(LAB_HEALTH_CHECK.command);
    expect(check.exitCode).toBe(1);
    expect(check.stderr).toContain('etc/health says: bad');
    expect((await sw(fixtures.systems.v2, 'test')).exitCode).toBe(0);
    expect((await host.exec(LAB_HEALTH_CHECK.command)).exitCode).toBe(0);
  });
  it('reboots into the boot default: current and booted system follow it, /run starts empty', async () => {
    const { v2, v3 } = fixtures.systems;
    expect((await sw(v2, 'test')).exitCode).toBe(0);
    expect((await sw(v3, 'boot')).exitCode).toBe(0);
    await host.sh('echo left-over > /run/stale-file');

    await host.reboot();

    expect([host.currentSystem(), host.bootedSystem(), host.bootDefault()]).toEqual([v3.path, v3.path, v3.path]);
    expect((await host.exec(['/bin/ls', '/run/stale-file'])).exitCode).not.toBe(0);
    expect(host.activations().length).toBeGreaterThan(0);
    await host.sh(`/bin/ln -sfn ${base.path} /run/booted-system`);
  });
});
