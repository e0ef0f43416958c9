import type { HostEvent } from './operator-api.js';
import { waveLabel, waveNumber } from './rollout-api.js';

/**
 * Audit events as sentences for people: the CLI's `watch` and `history` lines and the `text` of
 * every webhook delivery (what chat tools post) are the same words.
 */

/** 330 → "5m30s": bake and deadline times as an operator says them. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? `${Math.floor((s % 86400) / 3600)}h` : ''}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Reasons from reports start with the phase ("failed: …", "rolled-back: …"); others get "failed: ". */
export function failure(reason: string): string {
  return /^(failed|rolled-back|refused)\b/.test(reason) ? reason : `failed: ${reason}`;
}

/** A rollout's audit event as a sentence, without its time. */
export function rolloutEventText(event: HostEvent): string {
  const d = event.data as Record<string, unknown>;
  // Events carry `wave` (1-based); events recorded before that carried a 0-based `waveIndex`.
  // `waves` (the total) is on events recorded since wave numbers read "wave 2 of 3".
  const number = typeof d.wave === 'number' ? d.wave : typeof d.waveIndex === 'number' ? waveNumber(d.waveIndex) : null;
  const wave = (canary = false) => (number === null ? 'wave ?' : waveLabel(number, typeof d.waves === 'number' ? d.waves : null, canary));
  const by = typeof d.actor === 'string' ? ` by ${d.actor}` : '';
  const host = event.host ?? '';
  let text: string;
  switch (event.kind) {
    case 'rollout-started':
      text = `started: waves of ${(d.waves as number[] | undefined)?.join(', ') ?? '?'} hosts${by}${(d.preflight as { skipped?: boolean } | null | undefined)?.skipped ? ' (cache preflight failed; skipped)' : ''}`;
      break;
    case 'rollout-wave-started':
      text = `${wave(d.canary === true)} started: ${plural((d.hosts as string[] | undefined)?.length ?? 0, 'host')}`;
      break;
    case 'rollout-wave-baking':
      text = `${wave()} healthy, baking for ${duration(Number(d.bakeSeconds ?? 0))}`;
      break;
    case 'rollout-waiting-approval':
      text = `${wave()} waits for approval`;
      break;
    case 'rollout-approved':
      text = `${wave()} approved${by}`;
      break;
    case 'rollout-paused':
      text = `paused${by}`;
      break;
    case 'rollout-resumed':
      text = `resumed${by}`;
      break;
    case 'rollout-host-issued':
      text = `${host}: generation #${String(d.version)} issued (${wave()})`;
      break;
    case 'rollout-host-healthy':
      text = `${host}: healthy${d.rollback ? ' on its previous system (rollback)' : ''}`;
      break;
    case 'rollout-host-failed':
      text = `${host}: ${d.rollback ? 'rollback ' : ''}${failure(String(d.reason ?? ''))}`;
      break;
    case 'rollout-host-skipped':
      text = `${host}: skipped: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-rolling-back':
      text = `rolling back ${plural(Number(d.hosts ?? 0), 'host')}: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-rolled-back':
      text = `rolled back${(d.failed as string[] | undefined)?.length ? `; failed on ${(d.failed as string[]).join(', ')}` : ''}`;
      break;
    case 'rollout-rollback-failed':
      text = `rollback failed: ${(d.failed as string[] | undefined)?.join(', ') ?? ''} did not return to the previous system`;
      break;
    case 'rollout-retried':
      text = `retried as ${String(d.retryId ?? '')}`;
      break;
    case 'rollout-halted':
      text = `halted: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-aborted':
      text = `aborted: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-succeeded':
      text = 'succeeded';
      break;
    default:
      text = `${event.kind}${host ? ` ${host}` : ''}`;
  }
  return text;
}
