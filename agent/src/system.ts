import { access, constants, realpath, stat } from 'node:fs/promises';
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
