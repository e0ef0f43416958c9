import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failedUnits, runSwitch, unitName } from '../../agent/src/system.js';
import { SystemdNamespace } from '../lab/systemd-namespace.js';

/**
 * The agent's systemd paths against a real systemd (PID 1 of its own namespaces): a switch
 * under `systemd-run --wait`, its exit status and its deadline, and the failed-units check.
 */
describe('the agent against a real systemd', () => {
  let dir: string;
  let systemd: SystemdNamespace;
  let savedPath: string | undefined;

  beforeAll(async () => {
    // Not /tmp: the namespace has a /tmp of its own.
    dir = await mkdtemp('/var/tmp/shoal-systemd-');
    systemd = await SystemdNamespace.boot(join(dir, 'systemd'));
    // The agent's systemctl calls without an env of their own (failedUnits, the kill after a timeout) use this process's PATH.
    savedPath = process.env.PATH;
    process.env.PATH = systemd.env().PATH;
  }, 60_000);
  afterAll(async () => {
    process.env.PATH = savedPath;
    await systemd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A stand-in system whose switch-to-configuration runs `body`. */
  async function system(name: string, body: string): Promise<string> {
    const path = join(dir, name);
    await mkdir(join(path, 'bin'), { recursive: true });
    await writeFile(join(path, 'bin', 'switch-to-configuration'), `#!/bin/sh\n${body}\n`);
    await chmod(join(path, 'bin', 'switch-to-configuration'), 0o755);
    return path;
  }

  it('runs a switch as a transient unit, passing its output and exit status through', async () => {
    const ok = await runSwitch(await system('good', 'echo "switching to $1 in $(grep -o shoal-switch-1-test.service /proc/self/cgroup | head -n 1)"'), 'test', {
      timeoutMs: 30_000,
      systemdUnit: `${unitName('switch', 1)}-test`,
      env: systemd.env(),
    });
    expect(ok.ok && ok.outputTail).toBe('switching to test in shoal-switch-1-test.service');

    const failed = await runSwitch(await system('bad', 'echo "unit foo.service failed"; exit 4'), 'test', {
      timeoutMs: 30_000,
      systemdUnit: `${unitName('switch', 2)}-test`,
      env: systemd.env(),
    });
    expect(failed.ok).toBe(false);
    if (!failed.ok) expect(failed.failure).toMatchObject({ exitCode: 4, timedOut: false, outputTail: 'unit foo.service failed' });
  });

  it('stops the unit of a switch that hangs past its deadline, not just systemd-run', async () => {
    const unit = `${unitName('switch', 3)}-test`;
    const result = await runSwitch(await system('hang', 'echo started; exec sleep 600'), 'test', { timeoutMs: 2_000, systemdUnit: unit, env: systemd.env() });
    expect(!result.ok && result.failure.timedOut).toBe(true);
    const active = await systemd.run(['systemctl', 'is-active', `${unit}.service`]);
    expect(active.stdout.trim()).not.toBe('active');
    expect(active.stdout.trim()).toMatch(/^(inactive|failed|unknown)$/);
  });

  it('keeps the machine-wide boot units out of it (they would empty the real /tmp)', async () => {
    const sysinit = await systemd.run(['systemctl', 'is-active', 'sysinit.target', 'systemd-tmpfiles-setup.service']);
    expect(sysinit.stdout.trim().split('\n')).toEqual(['inactive', 'inactive']);
  });

  it('lists failed units by name, as the health gate reads them', async () => {
    expect(await failedUnits(30_000)).toEqual({ units: [] });
    const broken = await systemd.run(['systemd-run', '--wait', '--unit=shoal-lab-broken', '/bin/false']);
    expect(broken.ok).toBe(false);
    expect(await failedUnits(30_000)).toEqual({ units: ['shoal-lab-broken.service'] });
  });
});
