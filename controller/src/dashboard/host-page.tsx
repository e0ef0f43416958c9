import type { HostEvent, HostStatus } from '../../../shared/src/operator-api.js';
import type { CommandFailure } from '../../../shared/src/protocol.js';
import { hostCondition, isFailedPhase } from '../../../shared/src/host-condition.js';
import { clockTime, duration, storePathParts } from './format.js';
import { Generation } from './generation.js';
import { ACTION_CHOICES, HOST_ACTIONS } from './host-actions.js';
import { Badge, BASE, CsrfField, Layout, LiveState, RelativeTime } from './layout.js';
import type { Generation as GenerationRow } from './queries.js';
import { FailureDetail, rolloutPath } from './rollout-page.js';
import type { DashboardSession } from './sessions.js';

interface ReportData {
  phase?: string;
  manifestVersion?: number | null;
  reportedAt?: string;
  storePath?: string | null;
  detail?: { reason?: string; refusal?: string; failure?: CommandFailure; durationMs?: number };
}


/**
 * How long the host stood in each reported phase: until its next report about the same manifest
 * (the agent's own clock, so transport delays do not count). A terminal report gets the time since
 * the manifest was accepted instead.
 */
export function phaseDurations(events: HostEvent[]): Map<number, { inPhaseMs: number | null; sinceAcceptedMs: number | null }> {
  const chronological = events.filter((event) => event.kind === 'report').sort((a, b) => a.id - b.id);
  const result = new Map<number, { inPhaseMs: number | null; sinceAcceptedMs: number | null }>();
  const accepted = new Map<number, number>();
  chronological.forEach((event, i) => {
    const data = event.data as ReportData;
    const at = Date.parse(data.reportedAt ?? event.at);
    const version = data.manifestVersion ?? -1;
    if (data.phase === 'accepted') accepted.set(version, at);
    const next = chronological.slice(i + 1).find((later) => ((later.data as ReportData).manifestVersion ?? -1) === version);
    const nextAt = next ? Date.parse((next.data as ReportData).reportedAt ?? next.at) : null;
    const start = accepted.get(version);
    result.set(event.id, {
      inPhaseMs: nextAt === null ? null : nextAt - at,
      sinceAcceptedMs: nextAt === null && start !== undefined && data.phase !== 'accepted' ? at - start : null,
    });
  });
  return result;
}

function eventClass(event: HostEvent): string {
  if (event.kind === 'report') {
    const phase = (event.data as ReportData).phase ?? '';
    if (isFailedPhase(phase)) return 'k-failed';
    if (phase === 'healthy') return 'k-healthy';
    return 'k-report';
  }
  if (event.kind === 'rollout-host-failed') return 'k-failed';
  if (event.kind === 'rollout-host-healthy') return 'k-healthy';
  if (event.kind === 'manifest-issued' || event.kind === 'rollout-host-issued' || event.kind === 'desired-set') return 'k-manifest';
  return 'k-other';
}

function RolloutLink(props: { id: string | null | undefined }) {
  return props.id ? (
    <>
      {' '}
      in rollout <a href={rolloutPath(props.id)}>{props.id}</a>
    </>
  ) : null;
}

function EventBody(props: { event: HostEvent; durations: ReturnType<typeof phaseDurations>; now: number }) {
  const { event } = props;
  const data = event.data as Record<string, unknown>;
  switch (event.kind) {
    case 'desired-set':
    case 'manifest-issued':
    case 'rollout-host-issued':
    case 'manifest-renewed': {
      const parts = storePathParts((data.storePath as string | undefined) ?? null);
      const verb = event.kind === 'manifest-renewed' ? 'renewed' : 'issued';
      return (
        <>
          Manifest v{String(data.version)} {verb}: {parts?.name} <code>{parts?.hash}</code> ({String(data.action)}) by {event.actor}
          <RolloutLink id={(data.rolloutId as string | null) ?? event.rolloutId} />
        </>
      );
    }
    case 'report': {
      const report = data as ReportData;
      const timing = props.durations.get(event.id);
      const failed = isFailedPhase(report.phase ?? null);
      return (
        <>
          <Badge kind={failed ? 'failed' : report.phase === 'healthy' ? 'healthy' : 'deploying'}>{report.phase}</Badge> manifest v{String(report.manifestVersion ?? '—')}
          {timing?.inPhaseMs != null ? <span class="muted"> · {duration(timing.inPhaseMs)} in this phase</span> : null}
          {timing?.sinceAcceptedMs != null ? <span class="muted"> · {duration(timing.sinceAcceptedMs)} after it was accepted</span> : null}
          {report.detail?.durationMs !== undefined ? <span class="muted"> · took {duration(report.detail.durationMs)}</span> : null}
          {report.detail?.reason ? <div>{report.detail.reason}</div> : null}
          {report.detail?.refusal ? <div>refused: {report.detail.refusal}</div> : null}
          {report.detail?.failure ? <FailureDetail failure={report.detail.failure} at={event.at} now={props.now} /> : null}
        </>
      );
    }
    case 'connected':
    case 'disconnected':
      return (
        <>
          {String(data.mode ?? 'agent')} {event.kind}
        </>
      );
    case 'rollout-host-healthy':
    case 'rollout-host-failed':
    case 'rollout-host-skipped':
      return (
        <>
          {event.kind.replace('rollout-host-', '')}
          {data.rollback ? ' (rollback)' : ''}
          <RolloutLink id={event.rolloutId} />
          {data.reason ? `: ${String(data.reason)}` : ''}
        </>
      );
    default:
      return (
        <>
          {event.kind} by {event.actor}
          <RolloutLink id={event.rolloutId} />
        </>
      );
  }
}

export function HostTimeline(props: { events: HostEvent[]; now: number }) {
  if (props.events.length === 0) return <p>No events yet.</p>;
  const durations = phaseDurations(props.events);
  return (
    <ol class="timeline" reversed>
      {props.events.map((event) => (
        <li class={eventClass(event)} data-kind={event.kind}>
          <time datetime={event.at}>{clockTime(event.at, props.now)}</time>
          <EventBody event={event} durations={durations} now={props.now} />
        </li>
      ))}
    </ol>
  );
}

/** A whole store path, wrapped anywhere so it fits a phone. */
function FullPath(props: { path: string | null | undefined }) {
  return props.path ? <code class="path">{props.path}</code> : null;
}

export function HostSummary(props: { host: HostStatus; now: number | null }) {
  const { host } = props;
  const condition = hostCondition(host);
  return (
    <dl class="stats">
      <div>
        <dt>Status</dt>
        <dd>
          <Badge kind={condition}>{condition}</Badge> {host.phase ?? ''}
          {host.paused ? (
            <div class="paused-note">
              <Badge kind="paused">paused</Badge> rollouts leave it waiting in its wave; setting its desired system needs force
            </div>
          ) : null}
        </dd>
      </div>
      <div>
        <dt>Current</dt>
        <dd>
          <Generation path={host.currentSystem} />
          <FullPath path={host.currentSystem} />
        </dd>
      </div>
      <div>
        <dt>Desired</dt>
        <dd>
          <Generation path={host.desired?.storePath ?? null} version={host.desired?.version} />
          <FullPath path={host.desired?.storePath} />
          {host.desired?.rolloutId ? (
            <div>
              from rollout <a href={rolloutPath(host.desired.rolloutId)}>{host.desired.rolloutId}</a>
            </div>
          ) : null}
        </dd>
      </div>
      <div>
        <dt>Connection</dt>
        <dd>
          {host.connection}, last seen <RelativeTime iso={host.lastSeenAt} now={props.now} />
        </dd>
      </div>
      <div>
        <dt>Tags</dt>
        <dd>{host.tags.length ? host.tags.join(', ') : 'none'}</dd>
      </div>
      {host.lastError ? (
        <div>
          <dt>Last error</dt>
          <dd>{host.lastError}</dd>
        </div>
      ) : null}
    </dl>
  );
}

export function HostGenerations(props: { generations: GenerationRow[]; host: HostStatus; now: number }) {
  if (props.generations.length === 0) return <p>No manifest was ever issued to this host.</p>;
  return (
    <table class="cards">
      <thead>
        <tr>
          <th scope="col">Version</th>
          <th scope="col">System</th>
          <th scope="col">Action</th>
          <th scope="col">Issued</th>
          <th scope="col">Rollout</th>
        </tr>
      </thead>
      <tbody>
        {props.generations.map((generation) => {
          const marks = [
            generation.version === props.host.desired?.version ? 'desired' : null,
            generation.storePath === props.host.currentSystem ? 'running' : null,
          ].filter(Boolean);
          return (
            <tr>
              <td data-label="Version">
                v{generation.version} {marks.length ? <strong>({marks.join(', ')})</strong> : null}
              </td>
              <td data-label="System">
                <Generation path={generation.storePath} />
              </td>
              <td data-label="Action">{generation.action}</td>
              <td data-label="Issued">{clockTime(generation.issuedAt, props.now)}</td>
              <td data-label="Rollout">{generation.rolloutId ? <a href={rolloutPath(generation.rolloutId)}>{generation.rolloutId}</a> : '—'}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** `live`: rendered for the live stream, where the browser keeps "ago" texts current itself. */
export function hostFragments(host: HostStatus, events: HostEvent[], generations: GenerationRow[], now: number, live = false) {
  return {
    'host-summary': <HostSummary host={host} now={live ? null : now} />,
    'host-generations': <HostGenerations generations={generations} host={host} now={now} />,
    'host-timeline': <HostTimeline events={events} now={now} />,
  };
}

/** What an operator can change about this host, each confirmed on a page of its own before anything happens. */
export function HostActions(props: { host: HostStatus; session: DashboardSession; allowed: ReadonlySet<string> }) {
  const path = hostPath(props.host.name);
  if (props.allowed.size === 0) return <p class="muted">Your token's scope allows no change to this host.</p>;
  return (
    <div class="host-actions">
      {props.allowed.has('set-desired') ? (
        <form method="post" action={`${path}/actions/set-desired`} class="filters">
          <CsrfField session={props.session} />
          <label>
            Store path
            <input type="text" name="storePath" required class="mono wide" placeholder="/nix/store/…-nixos-system-…" value={props.host.desired?.storePath ?? ''} autocomplete="off" spellcheck={false} />
          </label>
          <label>
            Action
            <select name="action">
              {ACTION_CHOICES.map((action) => (
                <option value={action} selected={action === (props.host.desired?.action ?? 'safe-switch')}>
                  {action}
                </option>
              ))}
            </select>
          </label>
          {props.host.paused ? (
            <label class="check">
              <input type="checkbox" name="force" value="yes" /> although paused
            </label>
          ) : null}
          <button type="submit">{HOST_ACTIONS['set-desired']!.label}…</button>
        </form>
      ) : null}
      {(['pause', 'resume', 'remove'] as const)
        .filter((name) => props.allowed.has(name) && (HOST_ACTIONS[name]!.offered?.(props.host) ?? true))
        .map((name) => (
          <form method="post" action={`${path}/actions/${name}`} class="host-action">
            <CsrfField session={props.session} />
            <button type="submit" class={name === 'remove' ? 'danger' : undefined} data-action={name}>
              {HOST_ACTIONS[name]!.label}…
            </button>
          </form>
        ))}
    </div>
  );
}

/** The no-JavaScript "are you sure?" of a host action, carrying its fields to the real request. */
export function HostConfirmPage(props: { session: DashboardSession; host: string; action: string; question: string; fields: Record<string, string> }) {
  return (
    <Layout title={`Confirm: ${props.host}`} section="fleet" session={props.session}>
      <h1>{HOST_ACTIONS[props.action]?.label ?? props.action}: {props.host}?</h1>
      <div class="confirm" role="alertdialog" aria-labelledby="confirm-question">
        <p id="confirm-question">{props.question}</p>
        {props.fields.storePath ? <FullPath path={props.fields.storePath} /> : null}
        <div class="actions">
          <form method="post" action={`${hostPath(props.host)}/actions/${props.action}`}>
            <CsrfField session={props.session} />
            {Object.entries(props.fields).map(([name, value]) => (
              <input type="hidden" name={name} value={value} />
            ))}
            <input type="hidden" name="confirmed" value="yes" />
            <button type="submit" class="danger">
              Yes, do it
            </button>
          </form>
          <a class="button" href={hostPath(props.host)}>
            No, go back
          </a>
        </div>
      </div>
    </Layout>
  );
}

export function hostPath(name: string): string {
  return `${BASE}/hosts/${encodeURIComponent(name)}`;
}

export function HostPage(props: { session: DashboardSession; host: HostStatus; events: HostEvent[]; generations: GenerationRow[]; now: number; allowed: ReadonlySet<string> }) {
  const fragments = hostFragments(props.host, props.events, props.generations, props.now);
  return (
    <Layout title={props.host.name} section="fleet" session={props.session} now={props.now}>
      <div data-live={`${BASE}/live/hosts/${encodeURIComponent(props.host.name)}`}>
        <h1>Host {props.host.name}</h1>
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <div id="host-summary" aria-live="polite">
          {fragments['host-summary']}
        </div>
        <h2>Actions</h2>
        <HostActions host={props.host} session={props.session} allowed={props.allowed} />
        <h2>Generations</h2>
        <div id="host-generations">{fragments['host-generations']}</div>
        <h2>Timeline</h2>
        <div id="host-timeline">{fragments['host-timeline']}</div>
      </div>
    </Layout>
  );
}
