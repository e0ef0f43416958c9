import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Activator, type ActivationDeps } from '../../agent/src/activation.js';
import { parseConfig, type AgentConfig, type HealthCheck } from '../../agent/src/config.js';
import { Nix } from '../../agent/src/nix.js';
import { Outbox } from '../../agent/src/outbox.js';
import { createReporter } from '../../agent/src/reporter.js';
import { StateStore } from '../../agent/src/state.js';
import { resolveSystem } from '../../agent/src/system.js';
import { silentLogger } from '../../shared/src/logger.js';
import { buildToplevel } from './nix-fixture.js';

export type SwitchMode = 'ok' | 'slow' | 'fail' | 'hang' | 'fail-boot';

/**
 * A host in a directory: its "/run/current-system", boot default and profile are files under
 * root, and its systems are real store paths whose switch-to-configuration does to those files
 * what NixOS activation does to the real ones.
 */
export interface FakeHost {
  root: string;
  currentSystem: string;
  bootedSystem: string;
  profile: string;
  bootDefault: string;
  log: string;
}

export async function fakeHost(root: string): Promise<FakeHost> {
  await mkdir(join(root, 'run'), { recursive: true });
  await mkdir(join(root, 'profiles'), { recursive: true });
  return {
    root,
    currentSystem: join(root, 'run', 'current-system'),
    bootedSystem: join(root, 'run', 'booted-system'),
    profile: join(root, 'profiles', 'system'),
    bootDefault: join(root, 'boot-default'),
    log: join(root, 'switch.log'),
  };
}

export function buildSystem(host: FakeHost, name: string, mode: SwitchMode = 'ok'): string {
  const fail = mode === 'fail' ? 'echo "starting units"; echo "Job for web.service failed" >&2; exit 4' : '';
  const hang = mode === 'hang' ? 'exec /bin/sleep 600' : '';
  const slow = mode === 'slow' ? '/bin/sleep 1;' : '';
  const failBoot = mode === 'fail-boot' ? 'echo "bootloader broken" >&2; exit 2' : '';
  const script = `#!/bin/sh
self="\${0%/bin/switch-to-configuration}"
echo "$self $1" >> ${host.log}
case "$1" in
  test|switch) ${slow} /bin/ln -sfn "$self" ${host.currentSystem}; ${fail} ${hang} ;;
  boot) ${failBoot} echo "$self" > ${host.bootDefault} ;;
  dry-activate) echo "would restart web.service" ;;
esac
exit 0
`;
  return buildToplevel(host.root, `${name}-${mode}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`, script);
}

/** Points the host's current system and boot default at `system`, as if it had booted it. */
export async function bootInto(host: FakeHost, system: string): Promise<void> {
  await symlink(system, host.currentSystem);
  await symlink(system, host.bootedSystem);
}

export interface Harness {
  activator: Activator;
  state: StateStore;
  outbox: Outbox;
  deps: ActivationDeps;
  phases: () => string[];
  current: () => Promise<string | null>;
}

export async function harness(
  host: FakeHost,
  options: { healthChecks?: HealthCheck[]; reachable?: boolean; switchMs?: number; healthDeadlineMs?: number; nix?: Nix } = {},
): Promise<Harness> {
  const stateDir = join(host.root, 'state');
  await mkdir(stateDir, { recursive: true });
  const state = await StateStore.open(stateDir);
  const outbox = await Outbox.open(stateDir);
  const current = () => resolveSystem(host.currentSystem);
  const report = createReporter({ outbox, onReport: () => {}, currentSystem: current, clock: () => new Date() });
  const deps: ActivationDeps = {
    nix: options.nix ?? new Nix({ stateDir, substituters: [], trustedPublicKeys: [], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000 }),
    state,
    report,
    paths: { profile: host.profile, currentSystem: host.currentSystem, bootedSystem: host.bootedSystem },
    timeouts: { realiseMs: 60_000, switchMs: options.switchMs ?? 20_000, commandMs: 30_000 },
    healthChecks: options.healthChecks ?? [],
    healthDeadlineMs: options.healthDeadlineMs ?? 3_000,
    reboot: { policy: 'never', command: ['false'], blessCommand: null, withoutController: false },
    maintenanceWindows: [],
    windowsApplyTo: 'reboots',
    askRebootGrant: async () => ({ ok: true, value: { protocol: 1, granted: true, reason: '', retryAfterMs: 0 } }),
    grantRetryMs: 1_000,
    useSystemdRun: false,
    checkSystemdUnits: false,
    confirmReachable: async () => options.reachable ?? true,
    clock: () => new Date(),
    logger: silentLogger(),
  };
  return {
    activator: new Activator(deps),
    state,
    outbox,
    deps,
    phases: () => outbox.pending().map((r) => r.phase),
    current,
  };
}

/**
 * The configuration a daemon test's agent runs with on `host`: its state beside the host, quick
 * polls and health deadline, no systemd; `fields` name the controller(s), keys and token.
 */
export function fakeHostAgentConfig(host: FakeHost, fields: Record<string, unknown>): AgentConfig {
  const parsed = parseConfig(
    {
      host: 'web-1',
      stateDir: join(host.root, 'state'),
      pollIntervalMs: 200,
      healthDeadlineMs: 5_000,
      checkSystemdUnits: false,
      useSystemdRun: false,
      paths: { profile: host.profile, currentSystem: host.currentSystem, bootedSystem: host.bootedSystem },
      ...fields,
    },
    'test',
  );
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.config;
}
