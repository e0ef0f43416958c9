import type { RolloutHostState, RolloutPlan, RolloutRollbackState, RolloutSpec } from '../../../shared/src/rollout-api.js';

/** Whether a retry takes this member again: it has no healthy result, or a rollback moved it back off the release. */
export function retriesMember(member: { state: RolloutHostState; rollbackState: RolloutRollbackState | null }): boolean {
  return member.state !== 'healthy' || member.rollbackState !== null;
}

/**
 * What a retry of a finished rollout starts: its release and settings, for only the hosts it left
 * unfinished (see retriesMember), in their old waves and order with their approvals, minus the
 * hosts already healthy; null when there is no such host.
 */
export function retrySpec(
  spec: RolloutSpec,
  plan: RolloutPlan,
  members: ReadonlyArray<{ host: string; state: RolloutHostState; rollbackState: RolloutRollbackState | null }>,
): RolloutSpec | null {
  const again = new Set(members.filter(retriesMember).map((m) => m.host));
  if (again.size === 0) return null;
  const waves: Array<{ hosts: string[]; needsApproval: boolean }> = [];
  for (const wave of plan.waves) {
    const hosts = wave.hosts.filter((h) => again.has(h));
    if (hosts.length > 0) waves.push({ hosts, needsApproval: wave.needsApproval });
  }
  return {
    ...spec,
    selector: { hosts: waves.flatMap((w) => w.hosts) },
    canary: 0,
    waves: waves.map((w) => ({ hosts: w.hosts })),
    approvalBefore: waves.flatMap((w, index) => (w.needsApproval ? [index] : [])),
  };
}
