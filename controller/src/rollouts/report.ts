import type { Report } from '../../../shared/src/protocol.js';
import { RolloutHostState, RolloutRollbackState, waveNumber } from '../../../shared/src/rollout-api.js';
import type { Store } from '../db/store.js';
import type { NewEvent } from '../events.js';
import { memberOfKey, reportedMembers, writeMemberResults, type MemberResult, type ReportedMemberRow } from './members.js';
import { reportEffect } from './transitions.js';

const MEMBER = RolloutHostState.enum;
const ROLLBACK = RolloutRollbackState.enum;

/** A newly stored report and its host. */
export interface HostReport {
  host: string;
  report: Report;
}

/** What a report meant for a rollout: the rollout to advance (if any), and the events to log before the report's own. */
export interface ReportOutcome {
  rolloutId: string | null;
  events: NewEvent[];
}

const NOTHING: ReportOutcome = { rolloutId: null, events: [] };

/**
 * Records what reports mean for the rollouts that issued their manifests, inside the transaction
 * that stores them: a report is counted exactly once, and a crash cannot lose the result. `reports`
 * come in each host's seq order; a member's later reports see what its earlier ones changed, as if
 * recorded one after the other, and each member is written once. One outcome per report, in order;
 * the caller logs the events (with the report events, in one statement).
 */
export async function recordReports(store: Store, reports: readonly HostReport[], now: number): Promise<ReportOutcome[]> {
  const versioned = reports.filter(({ report }) => report.manifestVersion !== null && report.storePath !== null);
  if (versioned.length === 0) return reports.map(() => NOTHING);
  const members = await reportedMembers(store, versioned.map(({ host, report }) => ({ host, version: report.manifestVersion! })));
  const results = new Map<ReportedMemberRow, MemberResult>();
  const outcomes = reports.map(({ host, report }): ReportOutcome => {
    const version = report.manifestVersion;
    const member = version === null || report.storePath === null ? undefined : members.get(memberOfKey(host, version));
    if (!member || version === null) return NOTHING;
    const effect = reportEffect(member, report);
    let result = results.get(member);
    if (!result) results.set(member, (result = { rolloutId: member.rolloutId, host }));
    const event = (kind: 'rollout-host-healthy' | 'rollout-host-failed', data: Record<string, unknown>): NewEvent[] => [
      { host, at: now, kind, actor: `rollout:${member.rolloutId}`, rolloutId: member.rolloutId, data },
    ];
    // The member object changes with each effect, so that the host's next report is judged against what this one did.
    switch (effect.kind) {
      case 'none':
        return NOTHING;
      case 'progress':
        return { rolloutId: member.rolloutId, events: [] };
      case 'accepted':
        member.state = MEMBER['in-progress'];
        result.acceptedAt = now;
        return { rolloutId: member.rolloutId, events: [] };
      case 'healthy':
        member.state = MEMBER.healthy;
        result.finished = { state: 'healthy', reason: null, at: now };
        return { rolloutId: member.rolloutId, events: event('rollout-host-healthy', { wave: waveNumber(member.wave), version }) };
      case 'failed':
        member.state = MEMBER.failed;
        result.finished = { state: 'failed', reason: effect.reason, at: now };
        return {
          rolloutId: member.rolloutId,
          events: event('rollout-host-failed', { wave: waveNumber(member.wave), version, reason: effect.reason, ...(effect.degraded ? { degraded: true } : {}) }),
        };
      case 'rollback':
        member.rollbackState = effect.healthy ? ROLLBACK.healthy : ROLLBACK.failed;
        result.rollbackState = member.rollbackState;
        return {
          rolloutId: member.rolloutId,
          events: event(effect.healthy ? 'rollout-host-healthy' : 'rollout-host-failed', { rollback: true, version, ...(effect.healthy ? {} : { reason: effect.reason }) }),
        };
    }
  });
  await writeMemberResults(store, [...results.values()]);
  return outcomes;
}
