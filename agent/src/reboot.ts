import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { assessReboot, type BootFacts, type RebootAssessment } from '../../shared/src/reboot.js';
import type { AgentConfig } from './config.js';
import { runCommand, type RunResult } from './exec.js';

/**
 * What a host reads to decide about reboots, and the one way it reboots. The facts are the same
 * a release carries (shared/src/release-statement.ts SystemFacts), read here from the systems
 * on disk, so the agent's answer and the controller's prediction agree.
 */

async function resolved(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

async function inhibitors(system: string): Promise<string | null> {
  try {
    return await readFile(join(system, 'switch-inhibitors'), 'utf8');
  } catch {
    return null;
  }
}

/** kernel, initrd, kernel-modules (resolved) and switch-inhibitors of a system; all null for no system. */
export async function bootFacts(system: string | null): Promise<BootFacts> {
  if (system === null) return { kernel: null, initrd: null, kernelModules: null, switchInhibitors: null };
  const [kernel, initrd, kernelModules, switchInhibitors] = await Promise.all([
    resolved(join(system, 'kernel')),
    resolved(join(system, 'initrd')),
    resolved(join(system, 'kernel-modules')),
    inhibitors(system),
  ]);
  return { kernel, initrd, kernelModules, switchInhibitors };
}

/** Compares the target with the booted system (kernel, initrd, modules) and the running one (inhibitors). */
export async function assessOnHost(booted: string | null, running: string | null, target: string): Promise<RebootAssessment> {
  const [b, r, t] = await Promise.all([bootFacts(booted ?? running), bootFacts(running), bootFacts(target)]);
  return assessReboot(b, r, t);
}

/**
 * Runs the configured reboot command (`systemctl reboot` on NixOS). It returns once the reboot
 * is under way; the agent is then stopped by it.
 */
export function requestReboot(reboot: AgentConfig['reboot'], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return runCommand(reboot.command, { timeoutMs: 60_000, env });
}

/** Marks the running boot good for systemd-boot's boot counting, where configured; only after the health gate. */
export async function blessBoot(reboot: AgentConfig['reboot'], env?: NodeJS.ProcessEnv): Promise<RunResult | null> {
  if (reboot.blessCommand === null) return null;
  return runCommand(reboot.blessCommand, { timeoutMs: 60_000, env });
}
