import { DEPLOYMENT_SUCCESS_PHASES, HEALTH_TRANSITION_PHASES, TERMINAL_PHASES } from '../../../shared/src/phases.js';
import type { Report } from '../../../shared/src/protocol.js';
import {
  ACTIVE_ROLLOUT_STATES,
  FINISHED_ROLLOUT_STATES,
  RolloutHostState,
  RolloutAction,
  type RolloutPlan,
  type RolloutRollbackState,
  type RolloutSpec,
  RolloutState,
} from '../../../shared/src/rollout-api.js';

/*
 * The rules of a rollout, as pure functions: which rollout or member state follows from an
 * operator's command, a host's report, a deadline or a count. The engine and the advance loop read
 * and write the database and apply what these decide; the dashboard asks the same rules which
 * buttons to draw.
 */

const MEMBER = RolloutHostState.enum;
/** Members that hold a manifest of the rollout and have no result yet. */
export const IN_FLIGHT_MEMBER_STATES: ReadonlySet<RolloutHostState> = new Set([MEMBER.issued, MEMBER['in-progress']]);
const ACTIVE: ReadonlySet<RolloutState> = new Set(ACTIVE_ROLLOUT_STATES);
const FINISHED: ReadonlySet<RolloutState> = new Set(FINISHED_ROLLOUT_STATES);

export function isActive(state: RolloutState): boolean {
  return ACTIVE.has(state);
}

export function isFinished(state: RolloutState): boolean {
  return FINISHED.has(state);
}

// ---- Operator commands ----

/** What an operator can ask of a rollout: the actions that move it, and a retry (a new rollout for what it left undone). */
export type RolloutCommand = RolloutAction | 'retry';

const ROLLING_BACK_OR_BACK: readonly RolloutState[] = ['rolling-back', 'rolled-back', 'rollback-failed'];

/** A command that applies in `states`, worded "a rollout that is a, b or c". */
function inStates(states: readonly RolloutState[]): { from: readonly RolloutState[]; appliesTo: string } {
  const listed = states.length === 1 ? states[0]! : `${states.slice(0, -1).join(', ')} or ${states.at(-1)}`;
  return { from: states, appliesTo: `a rollout that is ${listed}` };
}

/**
 * The states each command applies in, and how a refusal words them. A rolling-back rollout can be
 * aborted (its hosts keep the manifests they were sent, but it no longer owns them); a rollback
 * applies to any rollout not already rolling back or rolled back, finished ones included.
 */
export const COMMAND_ALLOWED_FROM: Readonly<Record<RolloutCommand, { from: readonly RolloutState[]; appliesTo: string }>> = {
  approve: inStates(['waiting-approval']),
  pause: inStates(['running', 'waiting-approval']),
  resume: inStates(['paused']),
  abort: inStates(ACTIVE_ROLLOUT_STATES),
  rollback: {
    from: RolloutState.options.filter((state) => !ROLLING_BACK_OR_BACK.includes(state)),
    appliesTo: 'a rollout that is not already rolling back or rolled back',
  },
  retry: { from: FINISHED_ROLLOUT_STATES, appliesTo: `a finished rollout (${FINISHED_ROLLOUT_STATES.join(', ')})` },
};

export type CommandVerdict =
  /** `next`: the rollout's state once the command applied (a retry leaves it as it is: it starts another). */
  | { allowed: true; next: RolloutState }
  /** `message`: why not, naming the states the command applies in. */
  | { allowed: false; message: string };

/**
 * Whether `command` applies to rollout `id` in `state`, and the state it leads to. `gated`: the
 * current wave still needs an operator's approval, so a resume returns to waiting for it.
 */
export function commandVerdict(command: RolloutCommand, id: string, state: RolloutState, options: { gated?: boolean } = {}): CommandVerdict {
  const rule = COMMAND_ALLOWED_FROM[command];
  if (!rule.from.includes(state)) return { allowed: false, message: `rollout ${id} is ${state}; ${command} applies only to ${rule.appliesTo}` };
  switch (command) {
    case 'approve':
      return { allowed: true, next: 'running' };
    case 'pause':
      return { allowed: true, next: 'paused' };
    case 'resume':
      return { allowed: true, next: options.gated ? 'waiting-approval' : 'running' };
    case 'abort':
      return { allowed: true, next: 'aborted' };
    case 'rollback':
      return { allowed: true, next: 'rolling-back' };
    case 'retry':
      return { allowed: true, next: state };
  }
}

/** The actions that apply to a rollout in `state` (the dashboard's buttons). */
export function applicableActions(state: RolloutState): RolloutAction[] {
  return RolloutAction.options.filter((action) => COMMAND_ALLOWED_FROM[action].from.includes(state));
}

// ---- Waves ----

/** Whether wave `index` waits for an operator before it starts. */
export function waveGated(plan: RolloutPlan, index: number, approvedThrough: number): boolean {
  return plan.waves[index]?.needsApproval === true && approvedThrough < index;
}

/** What entering wave `index` means: past the last wave the rollout succeeded; a gated wave waits for approval. */
export function waveEntry(plan: RolloutPlan, index: number, approvedThrough: number): 'succeeded' | 'waiting-approval' | 'started' {
  if (index >= plan.waves.length) return 'succeeded';
  return waveGated(plan, index, approvedThrough) ? 'waiting-approval' : 'started';
}

/** Member states counted across the rollout and within its current wave. */
export interface Counts {
  failed: number;
  finished: number;
  lastFinishedAt: number | null;
  waveSize: number;
  wavePending: number;
  waveInFlight: number;
}

/** Adds `n` members in `state` (finished last at `lastFinishedAt`) to `counts`; `current`: they belong to the current wave. */
export function countMembers(counts: Counts, state: RolloutHostState, n: number, current: boolean, lastFinishedAt: number | null): void {
  if (state === 'failed') counts.failed += n;
  if (state === 'failed' || state === 'healthy') counts.finished += n;
  if (lastFinishedAt !== null) counts.lastFinishedAt = Math.max(counts.lastFinishedAt ?? 0, lastFinishedAt);
  if (!current) return;
  counts.waveSize += n;
  if (state === 'pending') counts.wavePending += n;
  if (IN_FLIGHT_MEMBER_STATES.has(state)) counts.waveInFlight += n;
}

/** Why the failure threshold stops the rollout, or null while it holds. */
export function thresholdTripped(spec: RolloutSpec, { failed, finished }: Pick<Counts, 'failed' | 'finished'>): string | null {
  const threshold = spec.failureThreshold;
  if ('count' in threshold) {
    return failed > threshold.count ? `${failed} host(s) failed; at most ${threshold.count} allowed` : null;
  }
  if (finished < threshold.minSample || finished === 0) return null;
  const percent = (failed / finished) * 100;
  return percent > threshold.percent
    ? `${failed} of ${finished} finished hosts failed (${percent.toFixed(1)}%); at most ${threshold.percent}% allowed`
    : null;
}

/**
 * Why the progress deadline stops the rollout, or null. Progress is a wave starting (or being
 * approved, or resumed) or a host finishing; time spent paused or waiting for approval is not the
 * rollout's fault.
 */
export function progressStalled(
  spec: RolloutSpec,
  rollout: { waveStartedAt: number | null; createdAt: number },
  lastFinishedAt: number | null,
  now: number,
): string | null {
  if (spec.progressDeadlineSeconds === null) return null;
  const lastProgress = Math.max(rollout.waveStartedAt ?? rollout.createdAt, lastFinishedAt ?? 0);
  return now - lastProgress >= spec.progressDeadlineSeconds * 1000 ? `no progress for ${spec.progressDeadlineSeconds}s (progress deadline)` : null;
}

/** Where a failed rollout goes: back to the previous systems, or halted where it stands. */
export function onFailureState(spec: RolloutSpec): 'rolling-back' | 'halted' {
  return spec.onFailure === 'rollback' ? 'rolling-back' : 'halted';
}

/**
 * What a deploying wave does next once the hosts that could be issued are: wait while any host has
 * no result; then bake (when the rollout bakes and the wave has hosts) or move to the next wave.
 */
export function deployingWaveNext(spec: RolloutSpec, counts: Pick<Counts, 'wavePending' | 'waveInFlight' | 'waveSize'>): 'wait' | 'bake' | 'next' {
  if (counts.wavePending > 0 || counts.waveInFlight > 0) return 'wait';
  return spec.bakeSeconds > 0 && counts.waveSize > 0 ? 'bake' : 'next';
}

/** Whether a baking wave has baked long enough. */
export function bakeDone(spec: RolloutSpec, bakeStartedAt: number, now: number): boolean {
  return now - bakeStartedAt >= spec.bakeSeconds * 1000;
}

// ---- Host deadlines ----

export type DeadlineVerdict =
  | null
  /** `withdraw`: take the manifest back (the host never answered it; it should not deploy when it returns). */
  | { state: 'failed' | 'skipped'; reason: string; withdraw: boolean };

/**
 * What the deadlines make of a member in flight. An issued member whose host is offline has the
 * offline wait, counted from `offlineSince`, and then fails (or is skipped, when the rollout says
 * so); otherwise it has the health deadline, counted from `healthSince`.
 */
export function hostDeadline(
  spec: RolloutSpec,
  member: { state: RolloutHostState; offline: boolean; offlineSince: number; healthSince: number },
  now: number,
): DeadlineVerdict {
  if (!IN_FLIGHT_MEMBER_STATES.has(member.state)) return null;
  if (member.state === 'issued' && member.offline) {
    if (now - member.offlineSince < spec.offline.waitSeconds * 1000) return null;
    return {
      state: spec.offline.then === 'skip' ? 'skipped' : 'failed',
      reason: `offline for ${spec.offline.waitSeconds}s after its manifest was issued`,
      withdraw: true,
    };
  }
  if (now - member.healthSince < spec.healthDeadlineSeconds * 1000) return null;
  return { state: 'failed', reason: `no healthy report within ${spec.healthDeadlineSeconds}s`, withdraw: false };
}

/** Whether a member's rollback ran out of its health deadline without a healthy report. */
export function rollbackOverdue(spec: RolloutSpec, member: { rollbackState: RolloutRollbackState | null }, since: number, now: number): boolean {
  return member.rollbackState === 'issued' && now - since >= spec.healthDeadlineSeconds * 1000;
}

/** How a rollback ends once no member's rollback is in flight; null while one is. */
export function rollbackSettled(members: ReadonlyArray<{ rollbackState: RolloutRollbackState | null }>): 'rolled-back' | 'rollback-failed' | null {
  if (members.some((m) => m.rollbackState === 'issued')) return null;
  // Hosts that did not return are a failure of their own, not a rollback that happened.
  return members.some((m) => m.rollbackState === 'failed') ? 'rollback-failed' : 'rolled-back';
}

// ---- Reports ----

/** What a report needs of the rollout member its manifest belongs to. */
export interface ReportedMember {
  rolloutId: string;
  wave: number;
  state: RolloutHostState;
  targetPath: string;
  manifestVersion: number | null;
  previousSystem: string | null;
  rollbackState: RolloutRollbackState | null;
  rollbackVersion: number | null;
  rolloutState: RolloutState;
  waveIndex: number;
}

/** The part of a report the rules read. */
export type ReportFacts = Pick<Report, 'phase' | 'manifestVersion' | 'storePath' | 'detail'>;

export type ReportEffect =
  /** Not this rollout's business (another system, a stale version, a phase that decides nothing). */
  | { kind: 'none' }
  /** The host is still deploying the rollout's system: nothing changes, but the rollout is looked at. */
  | { kind: 'progress' }
  /** An issued member's host started on it: it becomes in-progress. */
  | { kind: 'accepted' }
  | { kind: 'healthy' }
  /** `degraded`: it had proved healthy and turned unhealthy while its wave was watched. */
  | { kind: 'failed'; reason: string; degraded: boolean }
  /** The result of the member's rollback. */
  | { kind: 'rollback'; healthy: boolean; reason: string | null };

export function failureReason(report: ReportFacts): string {
  const { detail } = report;
  if (detail.failure) {
    const how = detail.failure.timedOut ? 'timed out' : `exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'}`;
    return `${report.phase}: ${detail.failure.command} (${how})${detail.reason ? `: ${detail.reason}` : ''}`;
  }
  return `${report.phase}${detail.refusal ? ` (${detail.refusal})` : ''}${detail.reason ? `: ${detail.reason}` : ''}`;
}

/** What a host's report means for the rollout member its manifest version belongs to. */
export function reportEffect(member: ReportedMember, report: ReportFacts): ReportEffect {
  const version = report.manifestVersion;
  if (version === null || report.storePath === null) return { kind: 'none' };
  const terminal = TERMINAL_PHASES.has(report.phase);
  const success = DEPLOYMENT_SUCCESS_PHASES.has(report.phase);
  // The path must match too: a refusal of some other manifest that happens to carry this version number is not this host's result.
  const forward =
    member.manifestVersion !== null &&
    version >= member.manifestVersion &&
    (member.rollbackVersion === null || version < member.rollbackVersion) &&
    report.storePath === member.targetPath;

  if (forward && report.phase === 'degraded') {
    // The bake watches its wave: a host that proved healthy and turns unhealthy while its wave is
    // the current one counts as failed against the threshold.
    const watched = member.state === 'healthy' && member.wave === member.waveIndex && (member.rolloutState === 'running' || member.rolloutState === 'paused');
    if (!watched) return { kind: 'none' };
    return { kind: 'failed', reason: `degraded after it reported healthy: ${report.detail.reason ?? 'a health check fails'}`, degraded: true };
  }
  if (HEALTH_TRANSITION_PHASES.has(report.phase)) return { kind: 'none' };

  if (forward && IN_FLIGHT_MEMBER_STATES.has(member.state)) {
    if (!terminal) return member.state === 'issued' ? { kind: 'accepted' } : { kind: 'progress' };
    return success ? { kind: 'healthy' } : { kind: 'failed', reason: failureReason(report), degraded: false };
  }
  if (!terminal) return { kind: 'none' };

  const rollback =
    member.rollbackVersion !== null && version >= member.rollbackVersion && member.rollbackState === 'issued' && report.storePath === member.previousSystem;
  if (rollback) return { kind: 'rollback', healthy: success, reason: success ? null : failureReason(report) };
  return { kind: 'none' };
}
