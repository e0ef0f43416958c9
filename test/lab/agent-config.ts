import type { z } from 'zod';
import type { AgentConfig } from '../../agent/src/config.js';

/** The agent's config file as written (before defaults): checked against the agent's own schema. */
export type AgentConfigFile = z.input<typeof AgentConfig>;

/**
 * Lab hosts' health check: the running system's etc/health must say "ok" (fail-health
 * systems say "bad"). It reads /run/current-system, so it checks whatever is active.
 */
export const LAB_HEALTH_CHECK = {
  name: 'lab-health',
  command: [
    '/bin/sh',
    '-c',
    'h=$(/bin/cat /run/current-system/etc/health 2>&1); [ "$h" = ok ] || { echo "etc/health says: $h" >&2; exit 1; }',
  ],
  timeoutMs: 5_000,
};

export interface LabAgentSettings {
  host: string;
  controllerUrl: string;
  /** Controller replicas to fail over between (controllerUrl first; the agent lists each once). */
  controllerUrls?: string[];
  /** CI's keys ("name:base64"): statements inside assignments must be signed by one. */
  trustedReleaseKeys: string[];
  /** The controller's keys: assignments must be signed by one. */
  trustedControllerKeys: string[];
  stateDir: string;
  enrollmentTokenFile: string | null;
  substituters: string[];
  trustedPublicKeys: string[];
}

/**
 * Lab defaults: short intervals and deadlines so failures show within seconds, no systemd
 * (lab hosts have none), default paths (each host has its own /nix and /run). `overrides`
 * replace top-level fields; `timeouts` and `paths` are merged one level deep.
 */
export function labAgentConfig(settings: LabAgentSettings, overrides: Partial<AgentConfigFile> = {}): AgentConfigFile {
  const base: AgentConfigFile = {
    ...settings,
    pollIntervalMs: 1_000,
    websocket: true,
    healthChecks: [LAB_HEALTH_CHECK],
    healthDeadlineMs: 5_000,
    checkSystemdUnits: false,
    useSystemdRun: false,
    timeouts: { realiseMs: 60_000, switchMs: 5_000, commandMs: 15_000 },
    logLevel: 'debug',
  };
  return {
    ...base,
    ...overrides,
    timeouts: { ...base.timeouts, ...overrides.timeouts },
    ...(overrides.paths ? { paths: overrides.paths } : {}),
  };
}
