import {
  waveLabel,
  type RolloutAction,
  type ReleaseProvenance,
  type RolloutList,
  type RolloutState,
  type RolloutStatus,
} from '../../../shared/src/rollout-api.js';
import type { ConnectionMode } from '../../../shared/src/operator-api.js';
import type { JSX } from 'hono/jsx/jsx-runtime';
import { retriesMember } from '../rollouts/retry-plan.js';
import { rollbackPlan } from '../rollouts/rollback-plan.js';
import { applicableActions, commandVerdict, isFinished } from '../rollouts/transitions.js';
import { BAR_PHASES, barPhase, barPhaseLabel, clockTime, storePathParts, type AgentNow } from './format.js';
import { Generation } from './generation.js';
import { Badge, BASE, CsrfField, Layout, LiveState } from './layout.js';
import type { FailureReport } from './queries.js';
import { sessionMay, type DashboardSession } from './sessions.js';

type Wave = RolloutStatus['waves'][number];

const STATE_KIND: Record<RolloutState, string> = {
  running: 'deploying',
  'waiting-approval': 'waiting',
  paused: 'offline',
  halted: 'failed',
  'rolling-back': 'deploying',
  'rolled-back': 'skipped',
  'rollback-failed': 'failed',
  succeeded: 'healthy',
  aborted: 'failed',
};

export const DESTRUCTIVE: ReadonlySet<RolloutAction> = new Set(['abort', 'rollback']);

/** The actions the engine accepts in each state (it checks again; this only decides which buttons to draw). */
export function availableActions(state: RolloutState): RolloutAction[] {
  return applicableActions(state);
}

/** A finished rollout that left hosts without a result can be retried for those hosts (the engine checks again). */
export function canRetry(status: RolloutStatus): boolean {
  return commandVerdict('retry', status.id, status.state).allowed && status.waves.some((w) => w.hosts.some(retriesMember));
}

export function confirmQuestion(action: RolloutAction, status: Pick<RolloutStatus, 'id' | 'release' | 'waves'>): string {
  if (action === 'abort') return `Abort rollout ${status.id}? Hosts keep what they run now; no further host gets ${status.release}.`;
  const plan = rollbackPlan(status.waves.flatMap((wave) => wave.hosts));
  const moves = plan.back.map((move) => `${move.host} → ${storePathParts(move.to)?.name ?? move.to}`);
  const shown = moves.length > 8 ? [...moves.slice(0, 8), `and ${moves.length - 8} more`] : moves;
  const back = moves.length === 0 ? 'No host goes back: none it changed has a system to return to.' : `${moves.length} host${moves.length === 1 ? '' : 's'} go back: ${shown.join(', ')}.`;
  const stay = plan.unrecoverable.length ? ` ${plan.unrecoverable.length} stay as they are (their previous system is unknown): ${plan.unrecoverable.slice(0, 8).join(', ')}.` : '';
  return `Roll back rollout ${status.id}? ${back}${stay}`;
}

/** Which hosts a rollback sends back to which system, in full: asked before the operator confirms. */
export function RollbackPreview(props: { status: RolloutStatus }) {
  const plan = rollbackPlan(props.status.waves.flatMap((wave) => wave.hosts));
  return (
    <div class="rollback-plan">
      {plan.back.length === 0 ? (
        <p>No host goes back: none this rollout changed has a previous system to return to.</p>
      ) : (
        <table class="cards">
          <caption>
            {plan.back.length} host{plan.back.length === 1 ? '' : 's'} get a new manifest for the system they ran before
          </caption>
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">Leaves</th>
              <th scope="col">Goes back to</th>
            </tr>
          </thead>
          <tbody>
            {plan.back.map((move) => (
              <tr data-rollback-host={move.host}>
                <td data-label="Host">{move.host}</td>
                <td data-label="Leaves">
                  <Generation path={move.from} />
                </td>
                <td data-label="Goes back to">
                  <Generation path={move.to} />
                  <code class="path">{move.to}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {plan.unrecoverable.length ? (
        <p>
          Staying as they are (the system they ran before is unknown): {plan.unrecoverable.join(', ')}.
        </p>
      ) : null}
      <p class="muted">Hosts the release never reached are left alone.</p>
    </div>
  );
}

function actionLabel(action: RolloutAction, status: RolloutStatus): string {
  if (action === 'approve') return `Approve ${waveLabel(status.wave, status.waves.length)}`;
  return { pause: 'Pause', resume: 'Resume', abort: 'Abort', rollback: 'Roll back' }[action];
}

/** "wave 2 of 3", "canary (wave 1 of 3)": the API's 1-based number (never past the last wave). */
export function currentWaveLabel(status: Pick<RolloutStatus, 'wave' | 'waves'>): string {
  const number = Math.min(status.wave, status.waves.length);
  return waveLabel(number, status.waves.length, status.waves[number - 1]?.canary ?? false);
}

export function rolloutPath(id: string): string {
  return `${BASE}/rollouts/${encodeURIComponent(id)}`;
}

export function RolloutStateBadge(props: { state: RolloutState }) {
  return <Badge kind={STATE_KIND[props.state]}>{props.state}</Badge>;
}

function thresholdText(status: RolloutStatus): { limit: string; fraction: number } {
  const threshold = status.failureThreshold;
  const total = status.waves.reduce((sum, wave) => sum + wave.hosts.length, 0);
  // What crossing the threshold does: the policy's own word, never "halts" when it rolls back.
  const verb = status.spec.onFailure === 'rollback' ? 'rolls back' : 'halts';
  if ('count' in threshold) {
    // The policy acts when failures exceed the count.
    return { limit: `${verb} above ${threshold.count} failed`, fraction: Math.min(1, status.failures / (threshold.count + 1)) };
  }
  const limit = Math.max(1, (threshold.percent / 100) * total);
  return { limit: `${verb} above ${threshold.percent}% failed (after ${threshold.minSample} finished)`, fraction: Math.min(1, status.failures / limit) };
}

export function RolloutSummary(props: { status: RolloutStatus }) {
  const { status } = props;
  const total = status.waves.reduce((sum, wave) => sum + wave.hosts.length, 0);
  const threshold = thresholdText(status);
  const done = isFinished(status.state);
  const bake = done ? null : status.bakeRemainingSeconds;
  return (
    <>
      <p>
        <RolloutStateBadge state={status.state} /> {status.reason ? <span>{status.reason}</span> : null}
      </p>
      <dl class="stats">
        <div>
          <dt>Wave</dt>
          <dd>
            {done
              ? `${status.state} after ${currentWaveLabel(status)}`
              : `${currentWaveLabel(status)}, ${status.state === 'waiting-approval' ? 'waiting for approval' : status.state === 'paused' ? 'paused' : status.wavePhase}`}
          </dd>
        </div>
        <div>
          <dt>Bake time left</dt>
          <dd>
            {bake === null ? (
              <span class="muted">{done ? 'done' : 'not baking'}</span>
            ) : (
              <span data-countdown={String(bake)} data-testid="bake-countdown">
                {bake >= 60 ? `${Math.floor(bake / 60)} min ${String(bake % 60).padStart(2, '0')} s` : `${bake} s`}
              </span>
            )}
          </dd>
        </div>
        <div>
          <dt>Failures</dt>
          <dd>
            {status.failures} failed; {threshold.limit}
            <div class="threshold" role="meter" aria-label="failures against the threshold" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(threshold.fraction * 100)}>
              <span style={`width:${Math.round(threshold.fraction * 100)}%`}></span>
            </div>
          </dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>
            {status.finished} of {total} hosts
          </dd>
        </div>
      </dl>
    </>
  );
}

export function RolloutActions(props: { status: RolloutStatus; session: DashboardSession }) {
  const { status } = props;
  const retry = canRetry(status) && sessionMay(props.session, 'POST', `/v1/rollouts/${status.id}/retry`);
  const applicable = availableActions(status.state);
  if (applicable.length === 0 && !retry) return <p class="muted">No action applies to a rollout that is {status.state}.</p>;
  const actions = applicable.filter((action) => sessionMay(props.session, 'POST', `/v1/rollouts/${status.id}/${action}`));
  if (actions.length === 0 && !retry) return <p class="muted">Signed in with scope {props.session.operator.scope}: this session may not act on rollouts.</p>;
  return (
    <div class="actions">
      {retry ? (
        <form method="post" action={`${rolloutPath(status.id)}/retry`}>
          <CsrfField session={props.session} />
          <button type="submit" data-focus-key="action-retry" class="primary">
            Retry failed and unreached hosts
          </button>
        </form>
      ) : null}
      {actions.map((action) => (
        <form method="post" action={`${rolloutPath(status.id)}/actions/${action}`} data-confirm={action === 'abort' ? confirmQuestion(action, status) : undefined}>
          <CsrfField session={props.session} />
          <button type="submit" data-focus-key={`action-${action}`} class={action === 'approve' || action === 'resume' ? 'primary' : DESTRUCTIVE.has(action) ? 'danger' : undefined}>
            {actionLabel(action, status)}
          </button>
        </form>
      ))}
    </div>
  );
}

function WaveBar(props: { wave: Wave; current: boolean; status: RolloutStatus; connections: ReadonlyMap<string, ConnectionMode>; agents: ReadonlyMap<string, AgentNow> }) {
  const { wave, current, status } = props;
  const named = wave.hosts.length <= 12;
  const awaitingApproval = current && status.state === 'waiting-approval';
  const c = wave.counts;
  const phaseOf = (host: Wave['hosts'][number]) => barPhase(host.state, props.connections.get(host.host) ?? null, host.paused, props.agents.get(host.host) ?? null);
  const count = (phase: string) => wave.hosts.filter((host) => phaseOf(host) === phase).length;
  const waiting = count('waiting');
  const paused = count('paused');
  const rebooting = count('rebooting');
  const staged = count('staged');
  const awaitingGrant = count('awaiting-reboot-grant');
  const special = waiting + rebooting + staged + awaitingGrant;
  const title = waveLabel(wave.number, status.waves.length);
  return (
    <li class="wave" data-wave={String(wave.index)}>
      <div class="wave-head">
        <span class={current ? 'current' : undefined}>
          {title.charAt(0).toUpperCase() + title.slice(1)}
          {current ? ' (current)' : ''}
        </span>
        {wave.canary ? <span class="canary-mark">canary</span> : null}
        {wave.needsApproval ? <span class="muted">{awaitingApproval ? 'waiting for approval' : wave.approved ? 'approved' : 'needs approval'}</span> : null}
        <span class="muted">
          {c.healthy} healthy · {c.inProgress - special} in progress{waiting ? ` · ${waiting} waiting for an offline agent` : ''}
          {rebooting ? ` · ${rebooting} rebooting` : ''}
          {staged ? ` · ${staged} staged for their window` : ''}
          {awaitingGrant ? ` · ${awaitingGrant} waiting for a reboot grant` : ''} · {c.failed} failed · {c.pending} pending{paused ? ` (${paused} paused, waiting to be resumed)` : ''}{c.skipped ? ` · ${c.skipped} skipped` : ''}
        </span>
      </div>
      <ul class={`bar${current ? ' current' : ''}`} aria-label={`${title} hosts`} style="list-style:none;margin:0">
        {wave.hosts.map((host) => {
          const phase = phaseOf(host);
          const label = `${host.host}: ${barPhaseLabel(phase, props.agents.get(host.host) ?? null)}${host.rollbackState ? `, rollback ${host.rollbackState}` : ''}${host.reason ? ` (${host.reason})` : ''}`;
          return (
            <li style="display:contents">
              <a class={`host-cell s-${phase}`} href={`${BASE}/hosts/${encodeURIComponent(host.host)}`} title={label} aria-label={label} data-host={host.host} data-phase={phase}>
                {named ? host.host : ''}
              </a>
            </li>
          );
        })}
      </ul>
    </li>
  );
}

/** `connections`: each host's connection now, so a host whose agent is offline shows as waiting, not in progress. */
export function RolloutWaves(props: { status: RolloutStatus; connections: ReadonlyMap<string, ConnectionMode>; agents?: ReadonlyMap<string, AgentNow> }) {
  const { status } = props;
  return (
    <>
      <ul class="legend" aria-label="Colours">
        {BAR_PHASES.map((phase) => (
          <li>
            <span class={`swatch host-cell s-${phase}`} style="display:inline-block;min-width:14px;height:14px"></span>
            {phase === 'waiting' ? 'waiting (agent offline)' : phase === 'staged' ? 'staged (waiting for its window)' : phase === 'paused' ? 'paused' : barPhaseLabel(phase)}
          </li>
        ))}
      </ul>
      <ol class="waves">
        {status.waves.map((wave) => (
          <WaveBar wave={wave} current={wave.index === status.waveIndex && !isFinished(status.state)} status={status} connections={props.connections} agents={props.agents ?? new Map()} />
        ))}
      </ol>
    </>
  );
}

export function FailedHosts(props: { failures: Array<{ host: string; reason: string | null; report: FailureReport | null }>; now: number }) {
  if (props.failures.length === 0) return <></>;
  return (
    <section aria-labelledby="failed-heading">
      <h2 id="failed-heading">Failed hosts</h2>
      {props.failures.map((failed) => (
        <div class="failed-host" data-host={failed.host}>
          <h3>
            <a href={`${BASE}/hosts/${encodeURIComponent(failed.host)}`}>{failed.host}</a>
          </h3>
          <p>{failed.reason ?? failed.report?.reason ?? 'failed'}</p>
          {failed.report?.failure ? <FailureDetail failure={failed.report.failure} at={failed.report.at} now={props.now} /> : null}
        </div>
      ))}
    </section>
  );
}

export function FailureDetail(props: { failure: NonNullable<FailureReport['failure']>; at: string; now: number }) {
  const { failure } = props;
  const how = failure.timedOut ? 'timed out' : failure.exitCode !== null ? `exit code ${failure.exitCode}` : `signal ${failure.signal ?? '?'}`;
  return (
    <div class="failure">
      <p>
        <code>{failure.command}</code> failed ({how}) at {clockTime(props.at, props.now)}. Last lines it printed:
      </p>
      <pre class="tail" tabindex={0} aria-label={`output of ${failure.command}`}>
        {failure.outputTail || '(no output)'}
      </pre>
    </div>
  );
}

/** Who vouched for the release this rollout deploys: CI (and from which source) or this controller. */
export function ReleaseProvenanceLine(props: { provenance: ReleaseProvenance | null; now: number }) {
  const p = props.provenance;
  if (!p || p.signedBy === null) return <p class="muted" data-provenance="unsigned">Release not signed (stored before releases carried signed statements).</p>;
  const who = p.signedBy === 'ci' ? `CI release key ${p.keyId ?? '?'}` : `this controller's single key ${p.keyId ?? '?'} (single-key mode)`;
  return (
    <p class="muted" data-provenance={p.signedBy}>
      Release signed by {who}
      {p.signedAt ? `, ${clockTime(p.signedAt, props.now)}` : ''}; floor {p.floor}
      {p.source ? `; built from revision ${p.source.revision ?? '(none)'}${p.source.flakeLockHash ? `, flake.lock sha256 ${p.source.flakeLockHash.slice(0, 12)}…` : ''}` : ''}.
    </p>
  );
}

export function RolloutPage(props: {
  session: DashboardSession;
  status: RolloutStatus;
  provenance: ReleaseProvenance | null;
  failures: Array<{ host: string; reason: string | null; report: FailureReport | null }>;
  now: number;
  /** What the release changes on the rollout's hosts (diff-view.tsx); null without a binary cache. */
  changes?: JSX.Element | null;
  connections: ReadonlyMap<string, ConnectionMode>;
  agents?: ReadonlyMap<string, AgentNow>;
}) {
  const { status } = props;
  const fragments = rolloutFragments(props.status, props.session, props.failures, props.now, props.connections, props.agents);
  return (
    <Layout title={`Rollout ${status.id}`} section="rollouts" session={props.session}>
      <div data-live={`${BASE}/live/rollouts/${encodeURIComponent(status.id)}`}>
        <h1>
          Rollout {status.id}: release {status.release}
        </h1>
        <p class="muted">
          Started {clockTime(status.createdAt, props.now)} by {status.createdBy}
          {status.finishedAt ? `, finished ${clockTime(status.finishedAt, props.now)}` : ''}; action {status.spec.action}, bake {status.spec.bakeSeconds} s, on failure{' '}
          {status.spec.onFailure}.
        </p>
        <ReleaseProvenanceLine provenance={props.provenance} now={props.now} />
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <div id="rollout-summary" aria-live="polite">
          {fragments['rollout-summary']}
        </div>
        <div id="rollout-actions">{fragments['rollout-actions']}</div>
        <h2>Waves</h2>
        <div id="rollout-waves">{fragments['rollout-waves']}</div>
        <div id="rollout-failures">{fragments['rollout-failures']}</div>
      </div>
      <p>
        <a href={`${BASE}/releases/${encodeURIComponent(status.release)}`}>Release {status.release} against what its hosts run now</a>
      </p>
      {props.changes ?? null}
    </Layout>
  );
}

export function rolloutFragments(
  status: RolloutStatus,
  session: DashboardSession,
  failures: Array<{ host: string; reason: string | null; report: FailureReport | null }>,
  now: number,
  connections: ReadonlyMap<string, ConnectionMode>,
  agents: ReadonlyMap<string, AgentNow> = new Map(),
) {
  return {
    'rollout-summary': <RolloutSummary status={status} />,
    'rollout-actions': <RolloutActions status={status} session={session} />,
    'rollout-waves': <RolloutWaves status={status} connections={connections} agents={agents} />,
    'rollout-failures': <FailedHosts failures={failures} now={now} />,
  };
}

export function RolloutListPage(props: { session: DashboardSession; rollouts: RolloutList['rollouts']; now: number }) {
  return (
    <Layout title="Rollouts" section="rollouts" session={props.session}>
      <h1>Rollouts</h1>
      {props.rollouts.length === 0 ? (
        <p>No rollout yet. Start one with <code>shoal rollout start</code> or the operator API.</p>
      ) : (
        <table class="cards">
          <thead>
            <tr>
              <th scope="col">Rollout</th>
              <th scope="col">Release</th>
              <th scope="col">State</th>
              <th scope="col">Wave</th>
              <th scope="col">Hosts</th>
              <th scope="col">Started</th>
              <th scope="col">Finished</th>
            </tr>
          </thead>
          <tbody>
            {props.rollouts.map((rollout) => (
              <tr data-rollout={rollout.id}>
                <td data-label="Rollout">
                  <a href={rolloutPath(rollout.id)}>{rollout.id}</a>
                </td>
                <td data-label="Release">{rollout.release}</td>
                <td data-label="State">
                  <RolloutStateBadge state={rollout.state} /> {rollout.reason ? <div class="muted">{rollout.reason}</div> : null}
                </td>
                <td data-label="Wave">
                  {waveLabel(Math.min(rollout.wave, rollout.waves), rollout.waves)}
                </td>
                <td data-label="Hosts">{rollout.hosts}</td>
                <td data-label="Started">{clockTime(rollout.createdAt, props.now)}</td>
                <td data-label="Finished">{rollout.finishedAt ? clockTime(rollout.finishedAt, props.now) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Layout>
  );
}

export function ConfirmPage(props: { session: DashboardSession; status: RolloutStatus; action: RolloutAction }) {
  const { status, action } = props;
  return (
    <Layout title={`Confirm ${action}`} section="rollouts" session={props.session}>
      <h1>
        {action === 'abort' ? 'Abort' : 'Roll back'} rollout {status.id}?
      </h1>
      <div class="confirm" role="alertdialog" aria-labelledby="confirm-question">
        <p id="confirm-question">{confirmQuestion(action, status)}</p>
        {action === 'rollback' ? <RollbackPreview status={status} /> : null}
        <div class="actions">
          <form method="post" action={`${rolloutPath(status.id)}/actions/${action}`}>
            <CsrfField session={props.session} />
            <input type="hidden" name="confirmed" value="yes" />
            <button type="submit" class="danger">
              Yes, {action === 'abort' ? 'abort' : 'roll back'}
            </button>
          </form>
          <a class="button" href={rolloutPath(status.id)}>
            No, go back
          </a>
        </div>
      </div>
    </Layout>
  );
}
