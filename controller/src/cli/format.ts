import type { HostEvent, HostStatus } from '../../../shared/src/operator-api.js';
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

const COLUMNS: Array<[string, number]> = [
  ['HOST', 14],
  ['PHASE', 14],
  ['CURRENT', 8],
  ['DESIRED', 8],
  ['VER', 5],
  ['SEEN', 6],
  ['CONN', 9],
];

/** At most 80 columns: the status of a fleet must read in a plain terminal. */
export function statusTable(hosts: readonly HostStatus[], now: number): string {
  const row = (cells: string[]) =>
    cells
      .map((cell, i) => fit(cell, COLUMNS[i]![1]))
      .join('  ')
      .trimEnd();
  const lines = [row(COLUMNS.map(([title]) => title))];
  const errors: string[] = [];
  for (const host of hosts) {
    const drift = host.desired && host.currentSystem !== host.desired.storePath ? '*' : '';
    lines.push(
      row([
        host.name,
        host.phase ?? '-',
        shortPath(host.currentSystem),
        `${shortPath(host.desired?.storePath)}${drift}`,
        host.desired ? `v${host.desired.version}` : '-',
        ago(host.lastSeenAt, now),
        host.connection,
      ]),
    );
    if (host.lastError) errors.push(fit(`${host.name}: ${host.lastError}`, 80).trimEnd());
  }
  if (hosts.length === 0) lines.push('(no hosts)');
  if (errors.length > 0) lines.push('', ...errors);
  return `${lines.join('\n')}\n`;
}

function describe(event: HostEvent): string {
  const data = event.data as Record<string, unknown>;
  switch (event.kind) {
    case 'desired-set':
    case 'manifest-issued':
    case 'manifest-renewed':
      return `v${String(data.version)} ${String(data.storePath)} (${String(data.action)})`;
    case 'report': {
      const detail = (data.detail ?? {}) as Record<string, unknown>;
      const why = detail.reason ?? detail.refusal ?? '';
      return `#${String(data.seq)} ${String(data.phase)} v${String(data.manifestVersion ?? '-')}${why ? `: ${String(why)}` : ''}`;
    }
    default:
      return Object.keys(data).length > 0 ? JSON.stringify(data) : '';
  }
}

export function historyLines(events: readonly HostEvent[]): string {
  const lines = events.map((event) =>
    [event.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), fit(event.kind, 16), fit(event.actor, 20), describe(event)].join('  ').trimEnd(),
  );
  return lines.length > 0 ? `${lines.join('\n')}\n` : '(no events)\n';
}
