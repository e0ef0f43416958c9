import type { ConnectionMode } from '../../../shared/src/operator-api.js';
import type { RolloutHostState } from '../../../shared/src/rollout-api.js';

/** The colours of a rollout's wave bars. */
export const BAR_PHASES = ['pending', 'paused', 'waiting', 'in-progress', 'staged', 'awaiting-reboot-grant', 'rebooting', 'healthy', 'failed', 'skipped'] as const;
export type BarPhase = (typeof BAR_PHASES)[number];

/** What the host's agent last said (hosts.phase), and when its maintenance window opens when it is staged. */
export interface AgentNow {
  phase: string | null;
  windowOpensAt: string | null;
}

/**
 * A host the rollout sent a manifest to is only "in progress" once its agent can have it: one
 * that is offline (never connected, or gone) is waiting for its agent, which is what an operator
 * must know to act (start the agent, or let the offline policy decide). A host that said it
 * reboots is rebooting (and offline for a while, which is expected); one that staged its system
 * waits for its maintenance window; one that waits for the fleet reboot lock says so. (Those
 * phases come from the agent, so it has its manifest whether or not it is connected now.)
 */
export function barPhase(state: RolloutHostState, connection: ConnectionMode | null = null, paused = false, agent: AgentNow | null = null): BarPhase {
  // A paused host the rollout has not reached waits for an operator to resume it (hosts/pause.ts).
  if (state === 'pending' && paused) return 'paused';
  if (state !== 'issued' && state !== 'in-progress') return state;
  // These say the agent has its manifest; a staged host activates at its window even while offline.
  if (agent?.phase === 'rebooting' || agent?.phase === 'staged' || agent?.phase === 'awaiting-reboot-grant') return agent.phase;
  return connection === 'offline' ? 'waiting' : 'in-progress';
}

/** How the legend and a host's label name a bar phase. */
export function barPhaseLabel(phase: BarPhase, agent: AgentNow | null = null): string {
  switch (phase) {
    case 'waiting':
      return 'waiting for its agent (offline)';
    case 'paused':
      return 'paused (waits until the host is resumed)';
    case 'staged':
      return agent?.windowOpensAt ? `staged, window opens ${agent.windowOpensAt}` : 'staged, waiting for its maintenance window';
    case 'awaiting-reboot-grant':
      return 'waiting for a reboot grant';
    default:
      return phase;
  }
}

const STORE_PATH = /^\/nix\/store\/([0-9a-z]{32})-(.+)$/;

/** "nixos-system-web-1-24.05" and "abc1234": what an operator recognises a generation by. */
export function storePathParts(path: string | null): { name: string; hash: string } | null {
  if (!path) return null;
  const match = STORE_PATH.exec(path);
  return match ? { name: match[2]!, hash: match[1]!.slice(0, 7) } : { name: path, hash: '' };
}

/** A stable rendering of a timestamp (no "now" in it), for text the browser replaces with "15 s ago". */
export function utcTime(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

export function ago(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "14:03:07" in UTC for today's events, the date too for older ones. */
export function clockTime(iso: string, now: number): string {
  const date = iso.slice(0, 10);
  const time = iso.slice(11, 19);
  return date === new Date(now).toISOString().slice(0, 10) ? `${time} UTC` : `${date} ${time} UTC`;
}

/** Path segments at least this long are hidden when a webhook URL is shown. */
const SECRET_SEGMENT_LENGTH = 16;

/**
 * A webhook URL as the dashboard may show it: origin and path, never user:password, query or
 * fragment, and long path segments replaced by "…", since chat services (Slack, Discord,
 * Mattermost, Teams) put the credential in the path itself.
 */
export function displayWebhookUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(not a valid URL)';
  }
  const path = parsed.pathname
    .split('/')
    .map((segment) => (segment.length >= SECRET_SEGMENT_LENGTH ? '…' : segment))
    .join('/');
  return `${parsed.origin}${path}`;
}
