import type { FleetDiff, HostDiff, PackageChange, PreflightResult } from '../../../shared/src/closure-api.js';
import { bytes, count, versions } from '../closure-diff/describe.js';
import { BASE, Layout } from './layout.js';
import type { DashboardSession } from './sessions.js';

/** Where one host's diff (from what it runs to `target`) is shown. */
export function hostDiffPath(host: string, target: string): string {
  return `${BASE}/hosts/${encodeURIComponent(host)}/diff?target=${encodeURIComponent(target)}`;
}

const HOST_LINKS = 20;

function ChangeTable(props: { changes: ReadonlyArray<Pick<PackageChange, 'name' | 'kind' | 'before' | 'after' | 'reboot'> & { hosts?: number }> }) {
  if (props.changes.length === 0) return <p class="muted">No package changes.</p>;
  const withHosts = props.changes.some((c) => c.hosts !== undefined);
  return (
    <table class="cards">
      <thead>
        <tr>
          <th scope="col">Package</th>
          <th scope="col">Change</th>
          {withHosts ? <th scope="col">Hosts</th> : null}
          <th scope="col">Note</th>
        </tr>
      </thead>
      <tbody>
        {props.changes.map((c) => (
          <tr>
            <td>{c.name}</td>
            <td>{versions(c)}</td>
            {withHosts ? <td>{c.hosts?.toLocaleString('en-US')}</td> : null}
            <td>{c.reboot ? 'reboot' : ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function PreflightView(props: { preflight: PreflightResult }) {
  const { preflight } = props;
  if (preflight.outcome === 'not-configured') return <p class="muted">Cache preflight: the controller reads no binary cache (config "caches").</p>;
  if (preflight.outcome === 'passed') return <p>Cache preflight passed: all {count(preflight.paths, 'path')} of the target closures are in the cache, signed by a trusted key.</p>;
  return (
    <>
      <p class="flash error" role="alert">
        Cache preflight failed: {count(preflight.problems.length, 'path')} cannot be served to the hosts; a rollout would be refused.
      </p>
      <ul>
        {preflight.problems.slice(0, 50).map((p) => (
          <li>
            <code>{p.path}</code>: {p.kind} ({p.detail}); {count(p.hosts.length, 'host')}: {p.hosts.slice(0, 10).join(', ')}
            {p.hosts.length > 10 ? ', …' : ''}
          </li>
        ))}
      </ul>
    </>
  );
}

/** A release's changes across the hosts: each package change by reach, the download, hosts grouped by change set, each host's diff a link. */
export function FleetDiffView(props: { diff: FleetDiff; drifted: readonly string[] }) {
  const { diff } = props;
  const targetOf = new Map(diff.perHost.map((h) => [h.host, h.target]));
  return (
    <section aria-label="What the release changes">
      <h2>What it changes</h2>
      <p>
        {count(diff.hosts - diff.upToDate, 'host')} change{diff.upToDate ? ` (${diff.upToDate} already up to date)` : ''}; {bytes(diff.downloadBytes)} to download in total
        {diff.largestDownload ? `, largest ${diff.largestDownload.host} ${bytes(diff.largestDownload.bytes)}` : ''}
        {diff.rebootHosts ? `; ${count(diff.rebootHosts, 'host')} need a reboot` : ''}.
      </p>
      {props.drifted.length > 0 ? (
        <p class="flash error">
          Drifted (running a system Shoal did not install): {props.drifted.slice(0, HOST_LINKS).map((h, i) => <>{i > 0 ? ', ' : ''}<a href={hostDiffPath(h, targetOf.get(h) ?? '')}>{h}</a></>)}
        </p>
      ) : null}
      {diff.incomplete.length > 0 ? <p class="muted">Partly known (current system unknown or not in the cache): {diff.incomplete.slice(0, HOST_LINKS).join(', ')}{diff.incomplete.length > HOST_LINKS ? ', …' : ''}</p> : null}
      <ChangeTable changes={diff.packages} />
      <h3>Hosts by change set</h3>
      {diff.groups.map((group) => (
        <details>
          <summary>
            {count(group.hosts.length, 'host')}: {group.changes.length === 0 ? 'nothing to change' : group.changes.slice(0, 6).map((c) => c.name).join(', ')}
            {group.changes.length > 6 ? `, +${group.changes.length - 6}` : ''} · {bytes(group.downloadBytes)}
          </summary>
          <p>
            {group.hosts.slice(0, HOST_LINKS).map((h, i) => (
              <>
                {i > 0 ? ', ' : ''}
                <a href={hostDiffPath(h, targetOf.get(h) ?? '')}>{h}</a>
              </>
            ))}
            {group.hosts.length > HOST_LINKS ? ` and ${group.hosts.length - HOST_LINKS} more` : ''}
          </p>
        </details>
      ))}
    </section>
  );
}

export function ReleaseDiffPage(props: { session: DashboardSession; release: string; diff: FleetDiff | null; preflight: PreflightResult; drifted: readonly string[] }) {
  return (
    <Layout title={`Release ${props.release}`} section="rollouts" session={props.session}>
      <h1>Release {props.release}</h1>
      <p class="muted">Against what each of its hosts runs now, read from the binary cache.</p>
      <PreflightView preflight={props.preflight} />
      {props.diff ? <FleetDiffView diff={props.diff} drifted={props.drifted} /> : <p class="muted">No diff: the controller reads no binary cache.</p>}
    </Layout>
  );
}

export function HostDiffPage(props: { session: DashboardSession; diff: HostDiff }) {
  const { diff } = props;
  return (
    <Layout title={`${diff.host}: diff`} section="fleet" session={props.session}>
      <h1>
        <a href={`${BASE}/hosts/${encodeURIComponent(diff.host)}`}>{diff.host}</a>: what changes
      </h1>
      {diff.drifted ? <p class="flash error">Drifted: this host runs a system Shoal did not install.</p> : null}
      <p>
        From <code>{diff.current ?? 'unknown'}</code> to <code>{diff.target}</code>.
      </p>
      {diff.note ? <p class="muted">{diff.note}</p> : null}
      <p>
        {count(diff.newPaths, 'path')} to download, {bytes(diff.downloadBytes)} ({bytes(diff.downloadNarBytes)} unpacked); closure{' '}
        {diff.closureBytesBefore === null ? '?' : bytes(diff.closureBytesBefore)} → {bytes(diff.closureBytesAfter)}
        {diff.reboot ? '; needs a reboot' : ''}.
      </p>
      <ChangeTable changes={diff.changes} />
    </Layout>
  );
}
