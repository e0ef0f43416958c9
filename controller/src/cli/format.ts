import type { HostStatus } from '../../../shared/src/operator-api.js';
// The fleet page's words for a host's condition: one definition for the dashboard and the CLI.
import { HOST_CONDITIONS, hostCondition, type HostCondition } from '../../../shared/src/host-condition.js';
import type { Paint } from './colour.js';
import { failureBlock } from './failure-format.js';
import { splitStorePath } from '../../../shared/src/store-path.js';

/** "/nix/store/abcd…-name" → its first 7 hash characters, enough to tell generations apart. */
export function shortPath(path: string | null | undefined): string {
  return path ? splitStorePath(path).hash.slice(0, 7) : '-';
}

export function ago(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function fit(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

interface Column {
  title: string;
  width: number;
  cell: (host: HostStatus, now: number) => string;
}

/** "#7": the host's manifest counter is a generation number, not a release version. */
export function generation(version: number | null | undefined): string {
  return version === null || version === undefined ? '-' : `#${version}`;
}

const COLUMNS: Column[] = [
  { title: 'HOST', width: 14, cell: (h) => h.name },
  { title: 'PHASE', width: 12, cell: (h) => h.phase ?? '-' },
  // "*": not yet running the system its newest generation asks for.
  { title: 'GEN', width: 5, cell: (h) => `${generation(h.desired?.version)}${h.desired && h.currentSystem !== h.desired.storePath ? '*' : ''}` },
  { title: 'RELEASE', width: 12, cell: (h) => h.desired?.release ?? '-' },
  { title: 'ROLLOUT', width: 11, cell: (h) => h.desired?.rolloutId ?? '-' },
  { title: 'SEEN', width: 5, cell: (h, now) => ago(h.lastSeenAt, now) },
  { title: 'CONN', width: 9, cell: (h) => h.connection },
];

/** --wide: the systems themselves and the agent's version; wider than 80 columns, on purpose. */
const WIDE: Column[] = [
  { title: 'CURRENT', width: 8, cell: (h) => shortPath(h.currentSystem) },
  { title: 'DESIRED', width: 8, cell: (h) => shortPath(h.desired?.storePath) },
  { title: 'AGENT', width: 10, cell: (h) => h.agentVersion ?? '-' },
];

/** "12 hosts: 9 healthy, 1 failed, 1 deploying, 1 offline" (healthy always, the others when they have hosts). */
export function fleetSummary(hosts: readonly HostStatus[]): string {
  const counts = new Map<HostCondition, number>(HOST_CONDITIONS.map((c) => [c, 0]));
  for (const host of hosts) counts.set(hostCondition(host), counts.get(hostCondition(host))! + 1);
  const parts = (['healthy', 'failed', 'degraded', 'deploying', 'drifted', 'offline', 'idle'] as const).filter((c) => c === 'healthy' || counts.get(c)! > 0).map((c) => `${counts.get(c)} ${c}`);
  // Paused is not a condition (a paused host is also healthy, failed, …): counted apart.
  const paused = hosts.filter((host) => host.paused).length;
  return `${hosts.length} host${hosts.length === 1 ? '' : 's'}: ${parts.join(', ')}${paused > 0 ? ` (${paused} paused)` : ''}`;
}

export interface StatusView {
  now: number;
  paint: Paint;
  wide?: boolean;
  /** The whole fleet, for the summary line, when `hosts` is a filtered part of it. */
  fleet?: readonly HostStatus[];
  filter?: string;
}

/**
 * The fleet at a glance: a summary line, then one row per host (80 columns unless --wide), and
 * under each failed or degraded host what its failure most likely means and the last lines of the failing
 * command's output.
 */
export function statusTable(hosts: readonly HostStatus[], view: StatusView): string {
  const { now, paint } = view;
  const columns = view.wide ? [...COLUMNS, ...WIDE] : COLUMNS;
  const row = (cells: string[]) =>
    cells
      .map((cell, i) => fit(cell, columns[i]!.width))
      .join('  ')
      .trimEnd();
  const fleet = view.fleet ?? hosts;
  const lines = [paint.bold(fleetSummary(fleet))];
  if (view.filter) lines.push(`showing ${hosts.length} (${view.filter})`);
  lines.push('', row(columns.map((c) => c.title)));
  for (const host of hosts) {
    const text = row(columns.map((c) => c.cell(host, now)));
    const health = hostCondition(host);
    lines.push(health === 'failed' ? paint.red(text) : health === 'offline' || health === 'degraded' ? paint.yellow(text) : text);
    if (host.paused) lines.push(paint.yellow(`  paused: rollouts leave it waiting and set needs --force (shoal host resume ${host.name})`));
    // A degraded host failed its health checks on the system it runs: as much a why as a failed deployment.
    if (health !== 'failed' && health !== 'degraded') continue;
    const reason = host.failure?.reason ?? host.lastError;
    if (reason) lines.push(`  ${fit(reason, 78).trimEnd()}`);
    lines.push(...failureBlock(host.failure, paint));
  }
  if (hosts.length === 0) lines.push(view.filter ? '(no hosts match)' : '(no hosts)');
  return `${lines.join('\n')}\n`;
}
