import { createHash } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Whether a system the agent just switched to brings a new agent. The NixOS module installs
 * the agent with `restartIfChanged = false` (a switch must never kill the agent running it), so
 * nothing else would restart it, and a rotated release key in the new configuration would stay
 * unused until a reboot.
 *
 * How the agent knows, by comparing what it started with against what the new system provides
 * (paths relative to the system's top level, as the NixOS module lays them out):
 * - configuration: the SHA-256 of the config file it read at start, against that of
 *   `<system>/<configInSystem>` (default `etc/shoal/agent.json`, i.e. /etc/shoal/agent.json);
 * - package: the store path its own entry point lies in, against the store path that
 *   `<system>/<executableInSystem>` (default `sw/bin/shoal-agent`) resolves into.
 * A system that does not provide one of them (not managed by the module) changes nothing.
 */

export interface SelfLayout {
  configInSystem: string | null;
  executableInSystem: string | null;
}

export interface SelfSnapshot {
  configFile: string | null;
  configSha256: string | null;
  /** /nix/store/<hash>-<name> holding the running agent's code; null when it does not run from the store. */
  packagePath: string | null;
}

const STORE_ENTRY = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[^/]+/;

function storeEntryOf(path: string): string | null {
  return STORE_ENTRY.exec(path)?.[0] ?? null;
}

async function sha256Of(file: string): Promise<string | null> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex');
  } catch {
    return null;
  }
}

async function resolved(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

/** What this agent runs with: call at start, before any switch. */
export async function snapshotSelf(configFile: string | undefined, entryPoint: string | undefined): Promise<SelfSnapshot> {
  const entry = entryPoint ? await resolved(entryPoint) : null;
  return {
    configFile: configFile ?? null,
    configSha256: configFile ? await sha256Of(configFile) : null,
    packagePath: entry ? storeEntryOf(entry) : null,
  };
}

/** What differs between the running agent and the one `system` provides; empty when nothing does. */
export async function selfChanges(started: SelfSnapshot, system: string, layout: SelfLayout): Promise<string[]> {
  const changes: string[] = [];
  if (layout.configInSystem && started.configSha256) {
    const file = join(system, layout.configInSystem);
    const now = await sha256Of(file);
    if (now !== null && now !== started.configSha256) changes.push(`configuration ${file} differs from ${started.configFile}`);
  }
  if (layout.executableInSystem && started.packagePath) {
    const target = await resolved(join(system, layout.executableInSystem));
    const now = target ? storeEntryOf(target) : null;
    if (now !== null && now !== started.packagePath) changes.push(`package ${now} replaces ${started.packagePath}`);
  }
  return changes;
}

/**
 * The exit status of an agent that stops to be restarted with its new configuration or
 * package. Not 0, so that `Restart=on-failure` restarts it as well as the module's `Restart=always`;
 * 75 is EX_TEMPFAIL ("try again").
 */
export const RESTART_EXIT_CODE = 75;
