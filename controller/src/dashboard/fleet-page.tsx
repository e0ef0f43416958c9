import { HOST_CONDITIONS, type HostCondition } from '../../../shared/src/host-condition.js';
import type { UnknownHost } from '../../../shared/src/operator-api.js';
import type { JSX } from 'hono/jsx/jsx-runtime';
import type { RolloutStatus } from '../../../shared/src/rollout-api.js';
import { Generation } from './generation.js';
import { FLEET_PAGE_SIZE, fleetQuery, type FleetRow, type FleetView } from './fleet-view.js';
import { Badge, BASE, Layout, LiveState, RelativeTime } from './layout.js';
import type { LiveState as LiveStateData } from './live-state.js';
import { currentWaveLabel, rolloutPath, RolloutStateBadge } from './rollout-page.js';
import type { DashboardSession } from './sessions.js';
import { UnknownHosts } from './unknown-hosts.js';

/** The key of the row that stands in for an empty table (host names cannot contain parentheses). */
const EMPTY_ROW = '(none)';
const COLUMNS = 7;

/** One link per rollout that needs watching: what an operator looks at first. */
export function RolloutStrip(props: { rollouts: RolloutStatus[] }) {
  if (props.rollouts.length === 0) return <></>;
  return (
    <ul class="strip" aria-label="Rollouts in progress">
      {props.rollouts.map((rollout) => {
        const total = rollout.waves.reduce((sum, wave) => sum + wave.hosts.length, 0);
        return (
          <li data-rollout={rollout.id} data-state={rollout.state}>
            <a href={rolloutPath(rollout.id)}>
              Rollout {rollout.id}: {rollout.release}
            </a>{' '}
            <RolloutStateBadge state={rollout.state} />{' '}
            <span class="muted">
              {currentWaveLabel(rollout)} · {rollout.finished} of {total} hosts done
              {rollout.failures ? ` · ${rollout.failures} failed` : ''}
            </span>
          </li>
        );
      })}
    </ul>
  );
}

/** Count tiles: each is a link to the hosts it counts (within the current tag and search). */
export function FleetCounts(props: { view: FleetView }) {
  const { view } = props;
  const tile = (status: HostCondition | null, count: number, label: JSX.Element | string) => (
    <li class={count === 0 && status !== null ? 'zero' : undefined}>
      <a href={`${BASE}${fleetQuery(view.filter, { status })}`} aria-current={view.filter.status === status ? 'true' : undefined} data-status-link={status ?? 'all'}>
        <strong>{count}</strong> {label}
      </a>
    </li>
  );
  return (
    <>
      <ul class="counts" aria-label="Hosts by status (links filter the table)">
        {tile(null, view.matching, view.filter.tag || view.filter.q ? 'matching' : 'hosts')}
        {HOST_CONDITIONS.map((condition) => tile(condition, view.counts.get(condition) ?? 0, <Badge kind={condition}>{condition}</Badge>))}
      </ul>
      <p class="muted" id="fleet-shown">
        {view.shown === 0
          ? `No host matches, of ${view.total}.`
          : `Showing ${(view.filter.page - 1) * FLEET_PAGE_SIZE + 1}–${(view.filter.page - 1) * FLEET_PAGE_SIZE + view.rows.length} of ${view.shown}${view.shown !== view.total ? ` matching (${view.total} hosts in all)` : ' hosts'}, most urgent first.`}
      </p>
    </>
  );
}

/** One table row. `now` null renders times as fixed text the browser turns relative: the live stream's form, unchanged from one render to the next. */
export function FleetHostRow(props: { row: FleetRow; now: number | null }) {
  const { host, condition } = props.row;
  const drift = condition !== 'drifted' && host.desired !== null && host.currentSystem !== null && host.currentSystem !== host.desired.storePath;
  return (
    <tr data-key={host.name} data-host={host.name} data-status={condition}>
      <td data-label="Host">
        <a href={`${BASE}/hosts/${encodeURIComponent(host.name)}`}>{host.name}</a>
      </td>
      <td data-label="Status">
        <Badge kind={condition}>{condition}</Badge> {host.phase ? <span class="muted">{host.phase}</span> : null}
        {host.paused ? (
          <>
            {' '}
            <Badge kind="paused">paused</Badge>
          </>
        ) : null}
        {host.lastError ? <div class="muted wrap">{host.lastError}</div> : null}
      </td>
      <td data-label="Current">
        <Generation path={host.currentSystem} />
        {drift ? <span class="drift">not the desired one yet</span> : null}
      </td>
      <td data-label="Desired">
        <Generation path={host.desired?.storePath ?? null} version={host.desired?.version} />
        {host.desired?.rolloutId ? (
          <a class="muted" href={rolloutPath(host.desired.rolloutId)}>
            {host.desired.rolloutId}
          </a>
        ) : null}
      </td>
      <td data-label="Last seen">
        {/* A connected host is seen all the time; its ticking timestamp would make every row change at every ping. */}
        {host.connection === 'offline' ? <RelativeTime iso={host.lastSeenAt} now={props.now} /> : 'now'}
      </td>
      <td data-label="Connection">{host.connection}</td>
      <td data-label="Tags">
        {host.tags.map((tag) => (
          <span class="tag">{tag}</span>
        ))}
      </td>
    </tr>
  );
}

function EmptyRow() {
  return (
    <tr data-key={EMPTY_ROW}>
      <td colspan={COLUMNS}>No host matches.</td>
    </tr>
  );
}

export function FleetPager(props: { view: FleetView }) {
  const { view } = props;
  if (view.pages <= 1) return <></>;
  const page = view.filter.page;
  return (
    <nav class="pager" aria-label="Pages">
      {page > 1 ? <a href={`${BASE}${fleetQuery(view.filter, { page: page - 1 })}`}>← Previous</a> : null}
      <span>
        Page {page} of {view.pages}
      </span>
      {page < view.pages ? <a href={`${BASE}${fleetQuery(view.filter, { page: page + 1 })}`}>Next →</a> : null}
    </nav>
  );
}

/** The rows of the table, keyed by host name: the live stream sends only rows that changed. */
export function fleetRows(view: FleetView, now: number | null): Array<[string, string]> {
  if (view.rows.length === 0) return [[EMPTY_ROW, String(<EmptyRow />)]];
  return view.rows.map((row) => [row.host.name, String(<FleetHostRow row={row} now={now} />)]);
}

/** What the fleet page's live stream keeps current; with `now` null it does not change while the fleet does not. */
export function fleetLiveState(view: FleetView, rollouts: RolloutStatus[]): LiveStateData {
  return {
    parts: {
      'fleet-rollouts': String(<RolloutStrip rollouts={rollouts} />),
      'fleet-counts': String(<FleetCounts view={view} />),
      'fleet-pager': String(<FleetPager view={view} />),
    },
    lists: { 'fleet-rows': fleetRows(view, null) },
  };
}

/** One query-string filter: "any <name>" or one of `choices`. */
function FilterSelect(props: { label: string; name: string; choices: readonly string[]; selected: string | null }) {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="">any {props.name}</option>
        {props.choices.map((choice) => (
          <option value={choice} selected={choice === props.selected}>
            {choice}
          </option>
        ))}
      </select>
    </label>
  );
}

function SearchForm(props: { view: FleetView }) {
  const { filter, tags } = props.view;
  return (
    <form class="filters" method="get" action={BASE} role="search" aria-label="Filter hosts" data-fleet-search>
      <label>
        Search
        <input type="search" name="q" value={filter.q ?? ''} placeholder="host, tag or system name" autocomplete="off" spellcheck={false} />
      </label>
      <FilterSelect label="Tag" name="tag" choices={tags} selected={filter.tag} />
      <FilterSelect label="Status" name="status" choices={HOST_CONDITIONS} selected={filter.status} />
      <button type="submit">Filter</button>
      {filter.tag || filter.status || filter.q ? <a href={BASE}>Show all</a> : null}
    </form>
  );
}

export function FleetPage(props: { session: DashboardSession; view: FleetView; rollouts: RolloutStatus[]; now: number; liveUrl: string; unknownHosts?: UnknownHost[] }) {
  const { view } = props;
  return (
    <Layout title="Fleet" section="fleet" session={props.session} now={props.now}>
      <div data-live={props.liveUrl} data-fleet>
        <h1>Fleet</h1>
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <div id="fleet-rollouts">
          <RolloutStrip rollouts={props.rollouts} />
        </div>
        <div id="fleet-counts" aria-live="polite">
          <FleetCounts view={view} />
        </div>
        <SearchForm view={view} />
        <div id="fleet-table">
          <table class="cards">
            <caption class="sr-only">Hosts, most urgent first</caption>
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
            <tbody id="fleet-rows">{view.rows.length === 0 ? <EmptyRow /> : view.rows.map((row) => <FleetHostRow row={row} now={props.now} />)}</tbody>
          </table>
        </div>
        <div id="fleet-pager">
          <FleetPager view={view} />
        </div>
      </div>
      <UnknownHosts hosts={props.unknownHosts ?? []} />
    </Layout>
  );
}
