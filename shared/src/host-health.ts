import type { HostStatus } from './operator-api.js';
import type { Phase } from './protocol.js';

/**
 * The four words a fleet summary uses ("12 hosts: 9 healthy, 1 failed, 1 deploying, 1 offline"),
 * in the order an operator attends to them. A failed host counts as failed even when offline:
 * it needs someone either way.
 */
export const HOST_HEALTH = ['failed', 'offline', 'deploying', 'healthy'] as const;
export type HostHealth = (typeof HOST_HEALTH)[number];

const FAILED_PHASES: ReadonlySet<Phase> = new Set(['failed', 'rolled-back', 'refused']);
const IN_PROGRESS_PHASES: ReadonlySet<Phase> = new Set(['accepted', 'realising', 'activating', 'checking', 'committing', 'rolling-back', 'pending-reboot']);

export function hostHealth(host: Pick<HostStatus, 'phase' | 'connection' | 'desired' | 'reportedVersion'>): HostHealth {
  if (host.phase !== null && FAILED_PHASES.has(host.phase)) return 'failed';
  if (host.connection === 'offline') return 'offline';
  // Not yet reported on its newest manifest, or still working on it, or waiting for a reboot into it.
  const unanswered = host.desired !== null && host.reportedVersion !== host.desired.version;
  if (unanswered || (host.phase !== null && IN_PROGRESS_PHASES.has(host.phase))) return 'deploying';
  return 'healthy';
}
