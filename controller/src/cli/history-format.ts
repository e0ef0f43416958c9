import type { HostEvent } from '../../../shared/src/operator-api.js';
import { DEPLOYMENT_FAILURE_PHASES, phaseIn } from '../../../shared/src/phases.js';
import type { CommandFailure, Phase } from '../../../shared/src/protocol.js';
import type { Paint } from './colour.js';
import { failureBlock } from './failure-format.js';
import { generation } from './format.js';
import { shortStorePath } from './release-format.js';
import { rolloutEventText } from './rollout-format.js';
import { localTime } from './time.js';

type Data = Record<string, unknown>;

const str = (value: unknown) => (typeof value === 'string' ? value : '');
const path = (value: unknown) => (typeof value === 'string' && value.startsWith('/nix/store/') ? shortStorePath(value) : '?');
const who = (actor: string) => actor.replace(/^operator:/, '').replace(/^agent:.*/, 'the agent').replace(/^rollout:/, 'rollout ');

const PHASE_WORDS: Record<Phase, string> = {
  accepted: 'accepted',
  refused: 'refused',
  realising: 'is fetching the closure of',
  activating: 'is activating',
  checking: 'is running the health checks of',
  committing: 'is making the boot default',
  healthy: 'is healthy on',
  'pending-reboot': 'waits for a reboot into',
  'dry-activated': 'dry-activated',
  'rolling-back': 'is rolling back from',
  'rolled-back': 'rolled back from',
  failed: 'failed on',
  reconciled: 'reconciled its state with',
  degraded: 'turned unhealthy on',
  recovered: 'is healthy again on',
  rebooting: 'is rebooting into',
  staged: 'has staged (waits for its maintenance window)',
  'awaiting-reboot-grant': 'waits for a reboot grant for',
};

function reportSentence(d: Data): string {
  const detail = (d.detail ?? {}) as { reason?: string; refusal?: string; durationMs?: number };
  const phase = d.phase as Phase;
  const gen = d.manifestVersion === null || d.manifestVersion === undefined ? 'its system' : `generation ${generation(Number(d.manifestVersion))}`;
  const took = typeof detail.durationMs === 'number' && (phase === 'healthy' || phase === 'failed') ? ` after ${Math.round(detail.durationMs / 1000)} s` : '';
  const why = detail.reason ?? (detail.refusal ? `refusal: ${detail.refusal}` : '');
  return `host ${PHASE_WORDS[phase] ?? phase} ${gen}${took}${why ? `: ${why}` : ''}`;
}

/** One event as a sentence: what happened, who did it, to which generation. */
export function eventSentence(event: HostEvent): string {
  const d = event.data as Data;
  switch (event.kind) {
    case 'host-registered':
      return `${who(event.actor)} registered the host${(d.tags as string[] | undefined)?.length ? ` with tags ${(d.tags as string[]).join(', ')}` : ''}`;
    case 'host-enrolled':
      return `the host enrolled itself with enrollment token ${str(d.tokenId)}`;
    case 'desired-set':
      return `${who(event.actor)} set the desired system: generation ${generation(Number(d.version))}, ${path(d.storePath)} (${str(d.action)})`;
    case 'manifest-issued':
    case 'rollout-host-issued':
      return `generation ${generation(Number(d.version))} issued${d.rolloutId ? ` by rollout ${str(d.rolloutId)}` : ''}: ${path(d.storePath)} (${str(d.action)})`;
    case 'manifest-renewed':
      return `generation ${generation(Number(d.version))} re-signed before the last one expired (same system, ${path(d.storePath)})`;
    case 'manifest-withheld':
      return `generation ${generation(Number(d.version))} not re-signed: ${str(d.reason)}`;
    case 'report':
      return reportSentence(d);
    case 'connected':
      return `the agent connected (${str(d.mode) || 'websocket'})`;
    case 'disconnected':
      return `the agent disconnected (${str(d.mode) || 'websocket'})`;
    case 'host-paused':
      return `${who(event.actor)} paused the host: rollouts leave it waiting, set needs --force`;
    case 'host-resumed':
      return `${who(event.actor)} resumed the host`;
    case 'release-created':
      return `${who(event.actor)} created release ${str(d.release)}`;
    case 'reboot-granted': {
      // Grants from before the tag and rollout locks carry only the fleet's numbers.
      const locks = Array.isArray(d.locks) ? (d.locks as Array<{ name: string; rebooting: number; max: number }>) : [{ name: 'fleet', rebooting: Number(d.rebooting), max: Number(d.maxConcurrent) }];
      const text = locks.map((l) => `${l.rebooting} of at most ${l.max} rebooting${l.name === 'fleet' ? '' : ` in ${l.name}`}`).join(', ');
      return `the controller granted a reboot for generation ${generation(Number(d.manifestVersion))} (${text})`;
    }
    case 'reboot-settings-set': {
      const what = [
        d.policy !== undefined ? `policy ${d.policy === null ? 'inherited' : str(d.policy)}` : '',
        d.windows !== undefined ? `windows ${d.windows === null ? 'inherited' : Array.isArray(d.windows) && d.windows.length === 0 ? 'always open' : `${(d.windows as unknown[]).length} set`}` : '',
        d.maxRebooting !== undefined ? `at most ${d.maxRebooting ?? 'any'} rebooting` : '',
      ].filter(Boolean);
      return `${who(event.actor)} set the host's reboot settings: ${what.join(', ')}`;
    }
    case 'reboot-released':
      return `the host left the reboot lock (generation ${generation(Number(d.manifestVersion))} ${str(d.phase)})`;
    default:
      return event.rolloutId ? `rollout ${event.rolloutId}: ${rolloutEventText(event)}` : rolloutEventText(event);
  }
}

/** A host's history, oldest first, one sentence per event; a failed report is followed by what failed and its last lines. */
export function historyLines(events: readonly HostEvent[], paint: Paint): string {
  const lines: string[] = [];
  for (const event of events) {
    const sentence = eventSentence(event);
    const d = event.data as Data;
    const failedPhase = event.kind === 'report' && phaseIn(DEPLOYMENT_FAILURE_PHASES, d.phase) ? d.phase : null;
    const failedReport = failedPhase !== null;
    lines.push(`${localTime(event.at, { seconds: true })}  ${failedReport ? paint.red(sentence) : sentence}`);
    const failure = (d.detail as { failure?: CommandFailure } | undefined)?.failure;
    if (failedPhase !== null && failure) {
      lines.push(...failureBlock({ at: event.at, phase: failedPhase, version: null, reason: null, failure, diagnosis: null }, paint));
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '(no events)\n';
}
