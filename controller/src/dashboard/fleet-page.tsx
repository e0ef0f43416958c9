import type { HostStatus, UnknownHost } from '../../../shared/src/operator-api.js';
import { ago, hostCondition, HOST_CONDITIONS, storePathParts, type HostCondition } from './format.js';
import { Badge, BASE, Layout, LiveState } from './layout.js';
import type { DashboardSession } from './sessions.js';
import { UnknownHosts } from './unknown-hosts.js';

export interface FleetFilter {
  tag: string | null;
  status: HostCondition | null;
}

export function parseFleetFilter(query: Record<string, string>): FleetFilter {
  const tag = query.tag?.trim() || null;
  const status = (HOST_CONDITIONS as readonly string[]).includes(query.status ?? '') ? (query.status as HostCondition) : null;
  return { tag, status };
}

export function fleetQuery(filter: FleetFilter): string {
  const params = new URLSearchParams();
  if (filter.tag) params.set('tag', filter.tag);
  if (filter.status) params.set('status', filter.status);
  const text = params.toString();
  return text ? `?${text}` : '';
}

function matches(host: HostStatus, filter: FleetFilter): boolean {
  if (filter.tag && !host.tags.includes(filter.tag)) return false;
  return !filter.status || hostCondition(host) === filter.status;
}

export function Generation(props: { path: string | null; version?: number | undefined }) {
  const parts = storePathParts(props.path);
  if (!parts) return <span class="muted">none</span>;
  return (
    <span class="gen" title={props.path ?? ''}>
      {parts.name} <span class="mono">{parts.hash}</span>
      {props.version !== undefined ? <span class="muted"> v{props.version}</span> : null}
    </span>
  );
}

/** The counts above the table; a live region, so a screen reader hears "2 failed" when it changes. */
export function FleetCounts(props: { hosts: HostStatus[]; shown: number }) {
  const by = new Map<HostCondition, number>();
  for (const host of props.hosts) by.set(hostCondition(host), (by.get(hostCondition(host)) ?? 0) + 1);
  return (
    <>
      <ul class="counts" aria-label="Hosts by status">
        <li>
          <strong>{props.hosts.length}</strong> hosts
        </li>
        {HOST_CONDITIONS.map((condition) => (
          <li>
            <strong>{by.get(condition) ?? 0}</strong> <Badge kind={condition}>{condition}</Badge>
          </li>
        ))}
      </ul>
      {props.shown !== props.hosts.length ? <p class="muted">Showing {props.shown} of {props.hosts.length} hosts.</p> : null}
    </>
  );
}

export function FleetTable(props: { hosts: HostStatus[]; now: number }) {
  if (props.hosts.length === 0) return <p>No host matches.</p>;
  return (
    <table class="cards">
      <caption class="sr-only">Hosts</caption>
      <thead>
        <tr>
          <th scope="col">Host</th>
          <th scope="col">Status</th>
          <th scope="col">Current</th>
          <th scope="col">Desired</th>
          <th scope="col">Last seen</th>
          <th scope="col">Connection</th>
          <th scope="col">Tags</th>
        </tr>
      </thead>
      <tbody>
        {props.hosts.map((host) => {
          const condition = hostCondition(host);
          const drift = host.desired !== null && host.currentSystem !== host.desired.storePath;
          return (
            <tr data-host={host.name} data-status={condition}>
              <td data-label="Host">
                <a href={`${BASE}/hosts/${encodeURIComponent(host.name)}`}>{host.name}</a>
              </td>
              <td data-label="Status">
                <Badge kind={condition}>{condition}</Badge> {host.phase ? <span class="muted">{host.phase}</span> : null}
                {host.lastError ? <div class="muted">{host.lastError}</div> : null}
              </td>
              <td data-label="Current">
                <Generation path={host.currentSystem} />
                {drift ? <span class="drift">not the desired one</span> : null}
              </td>
              <td data-label="Desired">
                <Generation path={host.desired?.storePath ?? null} version={host.desired?.version} />
              </td>
              <td data-label="Last seen">{ago(host.lastSeenAt, props.now)}</td>
              <td data-label="Connection">{host.connection}</td>
              <td data-label="Tags">
                {host.tags.map((tag) => (
                  <span class="tag">{tag}</span>
                ))}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function fleetFragments(all: HostStatus[], filter: FleetFilter, now: number) {
  const shown = all.filter((host) => matches(host, filter));
  return {
    'fleet-counts': <FleetCounts hosts={all} shown={shown.length} />,
    'fleet-table': <FleetTable hosts={shown} now={now} />,
  };
}

export function FleetPage(props: { session: DashboardSession; hosts: HostStatus[]; filter: FleetFilter; now: number; unknownHosts?: UnknownHost[] }) {
  const { filter } = props;
  const tags = [...new Set(props.hosts.flatMap((host) => host.tags))].sort();
  const fragments = fleetFragments(props.hosts, filter, props.now);
  return (
    <Layout title="Fleet" section="fleet" session={props.session}>
      <div data-live={`${BASE}/live/fleet${fleetQuery(filter)}`}>
        <h1>Fleet</h1>
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <div id="fleet-counts" aria-live="polite">
          {fragments['fleet-counts']}
        </div>
        <form class="filters" method="get" action={BASE} role="search" aria-label="Filter hosts">
          <label>
            Tag
            <select name="tag">
              <option value="">any tag</option>
              {tags.map((tag) => (
                <option value={tag} selected={tag === filter.tag}>
                  {tag}
                </option>
              ))}
            </select>
          </label>
          <label>
            Status
            <select name="status">
              <option value="">any status</option>
              {HOST_CONDITIONS.map((condition) => (
                <option value={condition} selected={condition === filter.status}>
                  {condition}
                </option>
              ))}
            </select>
          </label>
          <button type="submit">Filter</button>
          {filter.tag || filter.status ? <a href={BASE}>Show all</a> : null}
        </form>
        <div id="fleet-table">{fragments['fleet-table']}</div>
      </div>
      <UnknownHosts hosts={props.unknownHosts ?? []} />
    </Layout>
  );
}
