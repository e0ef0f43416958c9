import type { Phase } from './protocol.js';

/**
 * The phase sets, each defined once and named for what it means. A phase set is typed by the
 * `Phase` enum, so a misspelt phase does not compile.
 */

/** The last phase of one manifest's activation: healthy, rolled-back, failed, refused, pending-reboot, dry-activated. */
export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set<Phase>(['refused', 'healthy', 'pending-reboot', 'dry-activated', 'rolled-back', 'failed']);

/** Health transitions of a system already running, after its manifest's terminal phase; never an activation's result. */
export const HEALTH_TRANSITION_PHASES: ReadonlySet<Phase> = new Set<Phase>(['degraded', 'recovered']);

/** Terminal phases of an activation that succeeded (a deployment's success: rollout member, metrics). */
export const DEPLOYMENT_SUCCESS_PHASES: ReadonlySet<Phase> = new Set<Phase>(['healthy', 'pending-reboot', 'dry-activated']);

/** Terminal phases of an activation that did not succeed: the deployment failed, was rolled back or refused. */
export const DEPLOYMENT_FAILURE_PHASES: ReadonlySet<Phase> = new Set<Phase>(['failed', 'rolled-back', 'refused']);

/** A running system's health failing after its deployment settled; not a deployment failure. */
export const HEALTH_FAILURE_PHASES: ReadonlySet<Phase> = new Set<Phase>(['degraded']);

/** Phases an operator should see a reason for: a failed deployment or a failing health check. */
export const TROUBLE_PHASES: ReadonlySet<Phase> = new Set<Phase>([...DEPLOYMENT_FAILURE_PHASES, ...HEALTH_FAILURE_PHASES]);

/**
 * Phases in which a host rests on its manifest without trouble: a successful deployment, a
 * reconciliation, or a recovery from `degraded` (which settles like healthy).
 */
export const SETTLED_PHASES: ReadonlySet<Phase> = new Set<Phase>([...DEPLOYMENT_SUCCESS_PHASES, 'reconciled', 'recovered']);

/** Whether `phase` is in `set`; accepts an untyped value (a stored event's data) without a cast. */
export function phaseIn(set: ReadonlySet<Phase>, phase: unknown): phase is Phase {
  return typeof phase === 'string' && (set as ReadonlySet<string>).has(phase);
}
