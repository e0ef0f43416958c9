import type { HostStatus } from './operator-api.js';
import { DEPLOYMENT_FAILURE_PHASES, HEALTH_FAILURE_PHASES, phaseIn, SETTLED_PHASES } from './phases.js';

/**
 * What a host needs from an operator, most urgent first: the fleet page sorts by this order and
 * colours by it (each condition also has a word, so colour is never the only signal).
 *
 * - failed: its last deployment failed, was rolled back or refused.
 * - degraded: the agent reports the host unhealthy after a deployment settled (the `degraded` phase).
 * - offline: no websocket and no poll within three poll intervals.
 * - deploying: it has a desired system it has not reached yet.
 * - drifted: it settled on its desired manifest but runs a system no Shoal activation explains
 *   (changed by hand): the controller's `drift` (controller/src/hosts/drift.ts), not guessed here.
 * - healthy: it runs its desired system.
 * - idle: nothing was ever asked of it.
 */
export const HOST_CONDITIONS = ['failed', 'degraded', 'offline', 'deploying', 'drifted', 'healthy', 'idle'] as const;
export type HostCondition = (typeof HOST_CONDITIONS)[number];

export function isFailedPhase(phase: string | null): boolean {
  return phaseIn(DEPLOYMENT_FAILURE_PHASES, phase);
}

export function hostCondition(host: HostStatus): HostCondition {
  const phase = host.phase;
  const aboutDesired = host.desired === null || host.reportedVersion === host.desired.version;
  if (isFailedPhase(phase) && aboutDesired) return 'failed';
  if (phaseIn(HEALTH_FAILURE_PHASES, phase) && aboutDesired) return 'degraded';
  if (host.connection === 'offline') return 'offline';
  if (host.desired === null) return isFailedPhase(phase) ? 'failed' : 'idle';
  const settled = host.reportedVersion === host.desired.version && phaseIn(SETTLED_PHASES, phase);
  if (!settled) return 'deploying';
  return host.drift ? 'drifted' : 'healthy';
}

/** 0 for the most urgent condition. */
export function conditionRank(condition: HostCondition): number {
  return HOST_CONDITIONS.indexOf(condition);
}
