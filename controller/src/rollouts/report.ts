import type { Report } from '../../../shared/src/protocol.js';
import { waveNumber } from '../../../shared/src/rollout-api.js';
import type { Store } from '../db/store.js';
import { appendEvent } from '../events.js';
import { markAccepted, markFinished, markRollbackResult, reportedMember } from './members.js';
import { reportEffect } from './transitions.js';

/**
 * Records what a report means for the rollout that issued its manifest, inside the transaction
 * that stores the report: a report is counted exactly once, and a crash cannot lose the result.
 * Returns the rollout to advance, if any. Its statements join that transaction through `store.q`.
 */
export async function recordReport(store: Store, host: string, report: Report, now: number): Promise<string | null> {
  const version = report.manifestVersion;
  if (version === null || report.storePath === null) return null;
  const member = await reportedMember(store, host, version);
  if (!member) return null;
  const effect = reportEffect(member, report);
  const key = { rolloutId: member.rolloutId, host };
  const event = (kind: 'rollout-host-healthy' | 'rollout-host-failed', data: Record<string, unknown>) =>
    appendEvent(store, { host, at: now, kind, actor: `rollout:${member.rolloutId}`, rolloutId: member.rolloutId, data });
  switch (effect.kind) {
    case 'none':
      return null;
    case 'progress':
      break;
    case 'accepted':
      await markAccepted(store, key, now);
      break;
    case 'healthy':
      await markFinished(store, key, 'healthy', null, now);
      await event('rollout-host-healthy', { wave: waveNumber(member.wave), version });
      break;
    case 'failed':
      await markFinished(store, key, 'failed', effect.reason, now);
      await event('rollout-host-failed', { wave: waveNumber(member.wave), version, reason: effect.reason, ...(effect.degraded ? { degraded: true } : {}) });
      break;
    case 'rollback':
      await markRollbackResult(store, key, effect.healthy);
      await event(effect.healthy ? 'rollout-host-healthy' : 'rollout-host-failed', { rollback: true, version, ...(effect.healthy ? {} : { reason: effect.reason }) });
      break;
  }
  return member.rolloutId;
}
