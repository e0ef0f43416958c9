import { access, constants, readFile, realpath, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Action } from '../../shared/src/protocol.js';
import { isStorePath } from '../../shared/src/store-path.js';
import { runCommand, type RunResult } from './exec.js';

/** What the agent reads from and does to the running system, outside of Nix itself. */

/** `readlink -f` of a system link, when it resolves to a top-level store path; null otherwise (or when absent). */
export async function resolveSystem(link: string): Promise<string | null> {
  try {
    const target = await realpath(link);
    return isStorePath(target) ? target : null;
  } catch {
    return null;
  }
}

export async function hasSwitchScript(storePath: string): Promise<boolean> {
  try {
    await access(switchScript(storePath), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function switchScript(storePath: string): string {
  return join(storePath, 'bin', 'switch-to-configuration');
}

async function onPath(program: string, pathVar: string | undefined): Promise<boolean> {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** "auto" means: this host runs systemd (systemctl exists and /run/systemd/system is a directory). */
export async function systemdRunning(pathVar = process.env.PATH): Promise<boolean> {
  try {
    if (!(await stat('/run/systemd/system')).isDirectory()) return false;
  } catch {
    return false;
  }
  return onPath('systemctl', pathVar);
}

export async function resolveAuto(setting: 'auto' | boolean, detect: () => Promise<boolean>): Promise<boolean> {
  return setting === 'auto' ? detect() : setting;
}

export type SwitchAction = 'switch' | 'boot' | 'test' | 'dry-activate';

export interface SwitchOptions {
  timeoutMs: number;
  /** Set on NixOS: the switch runs in its own transient unit, so it survives the agent's own restart. */
  systemdUnit?: string;
  env?: NodeJS.ProcessEnv;
  onSpawn?: (pid: number) => void;
}

/** `switch-to-configuration <action>`, under `systemd-run --wait` (as nixos-rebuild does) when asked to. */
export function switchCommand(storePath: string, action: SwitchAction, systemdUnit?: string): string[] {
  const script = [switchScript(storePath), action];
  if (!systemdUnit) return script;
  return [
    'systemd-run',
    '--wait',
    '--collect',
    '--pipe',
    '--quiet',
    '--no-ask-password',
    '--service-type=exec',
    `--unit=${systemdUnit}`,
    ...script,
  ];
}

export async function runSwitch(storePath: string, action: SwitchAction, options: SwitchOptions): Promise<RunResult> {
  const result = await runCommand(switchCommand(storePath, action, options.systemdUnit), {
    timeoutMs: options.timeoutMs,
    env: options.env,
    onSpawn: options.onSpawn,
  });
  if (!result.ok && result.failure.timedOut && options.systemdUnit) {
    // Killing systemd-run does not stop the unit it started; stop the switch itself.
    await runCommand(['systemctl', 'kill', '--signal=SIGKILL', `${options.systemdUnit}.service`], { timeoutMs: 30_000 });
    await runCommand(['systemctl', 'stop', `${options.systemdUnit}.service`], { timeoutMs: 30_000 });
  }
  return result;
}

/** Waits while a switch unit from before the agent's restart is still running. */
export async function waitForUnit(unit: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const active = await runCommand(['systemctl', 'is-active', '--quiet', `${unit}.service`], { timeoutMs: 10_000 });
    if (!active.ok) return;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

export function unitName(kind: 'switch' | 'rollback', version: number): string {
  return `shoal-${kind}-${version}`;
}

/** Names of failed systemd units; null when they cannot be listed. */
export async function failedUnits(timeoutMs: number): Promise<{ units: string[] } | { error: RunResult & { ok: false } }> {
  const result = await runCommand(['systemctl', 'list-units', '--state=failed', '--no-legend', '--plain', '--no-pager'], {
    timeoutMs,
    captureStdout: true,
  });
  if (!result.ok) return { error: result };
  const units = result.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.length > 0);
  return { units };
}

export function switchActionFor(action: Action): SwitchAction {
  switch (action) {
    case 'safe-switch':
      return 'test';
    case 'switch':
      return 'switch';
    case 'boot':
      return 'boot';
    case 'dry-activate':
      return 'dry-activate';
  }
}

/** A process as the kernel knows it: pid plus start time and boot, so a reused pid is never mistaken for it. */
export interface ProcessIdentity {
  pid: number;
  startTicks: number;
  bootId: string;
}

async function startTicks(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields are counted after the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

async function bootId(): Promise<string | null> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return null;
  }
}

export async function processIdentity(pid: number): Promise<ProcessIdentity | null> {
  const [ticks, boot] = await Promise.all([startTicks(pid), bootId()]);
  return ticks === null || boot === null ? null : { pid, startTicks: ticks, bootId: boot };
}

/**
 * Without systemd-run a switch the agent started keeps running after the agent died (it has
 * its own process group). Before rolling back over it, stop it, or it could finish activating
 * the target after the rollback. Only the very process recorded is killed, never a reused pid.
 */
export async function killOrphanedSwitch(recorded: ProcessIdentity): Promise<boolean> {
  const now = await processIdentity(recorded.pid);
  if (!now || now.startTicks !== recorded.startTicks || now.bootId !== recorded.bootId) return false;
  try {
    process.kill(-recorded.pid, 'SIGKILL');
  } catch {
    return false;
  }
  return true;
}
