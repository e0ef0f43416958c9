import type { Report } from '../../../shared/src/protocol.js';
import { waveNumber } from '../../../shared/src/rollout-api.js';
import type { Db } from '../db/open.js';
import { appendEvent } from '../events.js';
import { markAccepted, markFinished, markRollbackResult, reportedMember } from './members.js';
import { reportEffect } from './transitions.js';

/**
 * Records what a report means for the rollout that issued its manifest, inside the transaction
 * that stores the report: a report is counted exactly once, and a crash cannot lose the result.
 * Returns the rollout to advance, if any. `db` is the handle that transaction is open on (the
 * statements, run for every report, are prepared on it once).
 */
export function recordReport(db: Db, host: string, report: Report, now: number): string | null {
  const version = report.manifestVersion;
  if (version === null || report.storePath === null) return null;
  const member = reportedMember(db, host, version);
  if (!member) return null;
  const effect = reportEffect(member, report);
  const key = { rolloutId: member.rolloutId, host };
  const event = (kind: 'rollout-host-healthy' | 'rollout-host-failed', data: Record<string, unknown>) =>
    appendEvent(db, { host, at: now, kind, actor: `rollout:${member.rolloutId}`, rolloutId: member.rolloutId, data });
  switch (effect.kind) {
    case 'none':
      return null;
    case 'progress':
      break;
    case 'accepted':
      markAccepted(db, key, now);
      break;
    case 'healthy':
      markFinished(db, key, 'healthy', null, now);
      event('rollout-host-healthy', { wave: waveNumber(member.wave), version });
      break;
    case 'failed':
      markFinished(db, key, 'failed', effect.reason, now);
      event(
        'rollout-host-failed',
        effect.degraded ? { wave: member.wave, version, reason: effect.reason, degraded: true } : { wave: waveNumber(member.wave), version, reason: effect.reason },
      );
      break;
    case 'rollback':
      markRollbackResult(db, key, effect.healthy);
      event(effect.healthy ? 'rollout-host-healthy' : 'rollout-host-failed', { rollback: true, version, ...(effect.healthy ? {} : { reason: effect.reason }) });
      break;
  }
  return member.rolloutId;
}
