import type { HostEvent, HostStatus } from '../../../shared/src/operator-api.js';
import type { CommandFailure } from '../../../shared/src/protocol.js';
import { ago, clockTime, duration, hostCondition, storePathParts } from './format.js';
import { Generation } from './fleet-page.js';
import { Badge, BASE, Layout, LiveState } from './layout.js';
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

const FAILED_PHASES = new Set(['failed', 'rolled-back', 'refused']);

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
    if (FAILED_PHASES.has(phase)) return 'k-failed';
    if (phase === 'healthy') return 'k-healthy';
    return 'k-report';
  }
  if (event.kind === 'rollout-host-failed') return 'k-failed';
  if (event.kind === 'rollout-host-healthy') return 'k-healthy';
  if (event.kind === 'manifest-issued' || event.kind === 'desired-set') return 'k-manifest';
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
      const failed = FAILED_PHASES.has(report.phase ?? '');
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
    case 'rollout-host-issued':
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

export function HostSummary(props: { host: HostStatus; now: number }) {
  const { host } = props;
  const condition = hostCondition(host);
  return (
    <dl class="stats">
      <div>
        <dt>Status</dt>
        <dd>
          <Badge kind={condition}>{condition}</Badge> {host.phase ?? ''}
        </dd>
      </div>
      <div>
        <dt>Current</dt>
        <dd>
          <Generation path={host.currentSystem} />
        </dd>
      </div>
      <div>
        <dt>Desired</dt>
        <dd>
          <Generation path={host.desired?.storePath ?? null} version={host.desired?.version} />
        </dd>
      </div>
      <div>
        <dt>Connection</dt>
        <dd>
          {host.connection}, last seen {ago(host.lastSeenAt, props.now)}
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

export function hostFragments(host: HostStatus, events: HostEvent[], generations: GenerationRow[], now: number) {
  return {
    'host-summary': <HostSummary host={host} now={now} />,
    'host-generations': <HostGenerations generations={generations} host={host} now={now} />,
    'host-timeline': <HostTimeline events={events} now={now} />,
  };
}

export function HostPage(props: { session: DashboardSession; host: HostStatus; events: HostEvent[]; generations: GenerationRow[]; now: number }) {
  const fragments = hostFragments(props.host, props.events, props.generations, props.now);
  return (
    <Layout title={props.host.name} section="fleet" session={props.session}>
      <div data-live={`${BASE}/live/hosts/${encodeURIComponent(props.host.name)}`}>
        <h1>Host {props.host.name}</h1>
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <div id="host-summary" aria-live="polite">
          {fragments['host-summary']}
        </div>
        <h2>Generations</h2>
        <div id="host-generations">{fragments['host-generations']}</div>
        <h2>Timeline</h2>
        <div id="host-timeline">{fragments['host-timeline']}</div>
      </div>
    </Layout>
  );
}
