import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, type RunResult } from '../../agent/src/exec.js';
import { LabProcess } from './lab-process.js';
import { childPids } from './pids.js';
import { waitFor } from './wait.js';

/**
 * A real systemd (Debian's) as PID 1 of its own pid, mount, cgroup, network, uts and ipc
 * namespaces, for the agent's systemd paths: `systemd-run --wait` switches and the failed-units
 * health check. What it writes is private (/run, /tmp, /var/log, the cgroup trees,
 * /etc/systemd/system). It boots a target with no dependencies, and every unit with a
 * machine-wide effect is masked: an early version let a transient unit pull in sysinit.target,
 * whose systemd-tmpfiles emptied the machine's real /tmp. Files it must run go elsewhere (/var/tmp).
 *
 * `bin` holds `systemctl` and `systemd-run` wrappers that run the real ones inside the
 * namespaces (nsenter): put it first in PATH and the agent's own code talks to this systemd.
 */
const BOOT_SCRIPT = `
set -e
mount -t proc proc /proc
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/log
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/unified /sys/fs/cgroup/systemd
mount -t cgroup2 none /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t tmpfs tmpfs /etc/systemd/system
# Machine-wide effects a booting systemd would have (tmpfiles empties /tmp, sysctl, binfmt, modules): masked.
for unit in sysinit.target systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer \\
  systemd-sysctl.service systemd-binfmt.service systemd-modules-load.service systemd-random-seed.service \\
  proc-sys-fs-binfmt_misc.automount systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \\
  systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket systemd-journald-audit.socket; do
  ln -s /dev/null /etc/systemd/system/$unit
done
printf '[Unit]\\nDescription=Shoal lab systemd\\nDefaultDependencies=no\\nWants=dbus.socket dbus.service\\n' > /etc/systemd/system/shoal-lab.target
# Every service, transient ones included (systemd-run): no implicit sysinit/basic dependencies.
mkdir -p /etc/systemd/system/service.d /etc/systemd/system/socket.d
printf '[Unit]\\nDefaultDependencies=no\\n' > /etc/systemd/system/service.d/lab.conf
cp /etc/systemd/system/service.d/lab.conf /etc/systemd/system/socket.d/lab.conf
# systemd-run talks to the manager over the system bus: a bus of our own, without the sysinit units the packaged one pulls in.
printf '[Unit]\\nDefaultDependencies=no\\n[Socket]\\nListenStream=/run/dbus/system_bus_socket\\n' > /etc/systemd/system/dbus.socket
printf '[Unit]\\nDefaultDependencies=no\\nRequires=dbus.socket\\n[Service]\\nExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\\n' > /etc/systemd/system/dbus.service
exec /lib/systemd/systemd --system --unit=shoal-lab.target --log-target=console --log-level=notice
`;

export class SystemdNamespace {
  private constructor(
    private readonly process: LabProcess,
    readonly pid: number,
    readonly bin: string,
  ) {}

  static async boot(dir: string): Promise<SystemdNamespace> {
    await mkdir(dir, { recursive: true });
    const process_ = new LabProcess(
      'systemd',
      'unshare',
      ['--pid', '--fork', '--kill-child', '--mount', '--propagation', 'private', '--cgroup', '--net', '--uts', '--ipc', '/bin/sh', '-c', BOOT_SCRIPT],
      { logFile: join(dir, 'systemd.log') },
    );
    try {
      const pid = await waitFor('systemd to start in its namespace', async () => childPids(process_.pid)[0] ?? null, { timeoutMs: 10_000 });
      const bin = join(dir, 'bin');
      await mkdir(bin, { recursive: true });
      for (const tool of ['systemctl', 'systemd-run']) {
        await writeFile(join(bin, tool), `#!/bin/sh\nexec nsenter -t ${pid} -m -p -- /usr/bin/${tool} "$@"\n`);
        await chmod(join(bin, tool), 0o755);
      }
      const systemd = new SystemdNamespace(process_, pid, bin);
      await waitFor(
        'systemd to finish starting',
        async () => {
          const state = await systemd.run(['systemctl', 'is-system-running']);
          const text = state.stdout.trim();
          return text === 'running' || text === 'degraded' ? text : null;
        },
        { timeoutMs: 20_000 },
      );
      return systemd;
    } catch (error) {
      await process_.kill();
      throw new Error(`${(error as Error).message}\n${process_.output()}`);
    }
  }

  /** A command with this systemd's tools first in PATH. */
  run(argv: string[], timeoutMs = 30_000): Promise<RunResult> {
    return runCommand(argv, { timeoutMs, captureStdout: true, env: this.env() });
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, PATH: `${this.bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
  }

  output(): string {
    return this.process.output();
  }

  /** SIGKILL to the namespace's init: the kernel ends everything inside. */
  async stop(): Promise<void> {
    await this.process.kill();
  }
}
