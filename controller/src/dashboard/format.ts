import type { HostStatus } from '../../../shared/src/operator-api.js';
import type { RolloutHostState } from '../../../shared/src/rollout-api.js';

/** What the fleet page colours a host by; each has a word too, so colour is never the only signal. */
export const HOST_CONDITIONS = ['failed', 'degraded', 'offline', 'deploying', 'healthy', 'idle'] as const;
export type HostCondition = (typeof HOST_CONDITIONS)[number];

const FAILED_PHASES = new Set(['failed', 'rolled-back', 'refused']);
const SETTLED_PHASES = new Set(['healthy', 'reconciled', 'pending-reboot', 'dry-activated', 'recovered']);

export function hostCondition(host: HostStatus): HostCondition {
  // A health check fails on the system the host runs now (the agent's health monitor said so).
  if (host.phase === 'degraded' && host.connection !== 'offline') return 'degraded';
  if (host.phase && FAILED_PHASES.has(host.phase) && (host.desired === null || host.reportedVersion === host.desired.version)) return 'failed';
  if (host.connection === 'offline') return 'offline';
  if (host.desired === null) return host.phase && FAILED_PHASES.has(host.phase) ? 'failed' : 'idle';
  const settled = host.reportedVersion === host.desired.version && host.phase !== null && SETTLED_PHASES.has(host.phase);
  return settled ? 'healthy' : 'deploying';
}

/** The five colours of a rollout's wave bars. */
export type BarPhase = 'pending' | 'in-progress' | 'healthy' | 'failed' | 'skipped';

export function barPhase(state: RolloutHostState): BarPhase {
  return state === 'issued' || state === 'in-progress' ? 'in-progress' : state;
}

const STORE_PATH = /^\/nix\/store\/([0-9a-z]{32})-(.+)$/;

/** "nixos-system-web-1-24.05" and "abc1234": what an operator recognises a generation by. */
export function storePathParts(path: string | null): { name: string; hash: string } | null {
  if (!path) return null;
  const match = STORE_PATH.exec(path);
  return match ? { name: match[2]!, hash: match[1]!.slice(0, 7) } : { name: path, hash: '' };
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
