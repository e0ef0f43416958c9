import { and, asc, eq } from 'drizzle-orm';
import type { ConnectionMode, EventKind } from '../../../shared/src/operator-api.js';
import { TERMINAL_PHASES, type Report } from '../../../shared/src/protocol.js';
import type { RolloutPlan, RolloutSpec, RolloutState } from '../../../shared/src/rollout-api.js';
import type { Tx } from '../db/open.js';
import { hosts, rolloutHosts, rollouts, type ManifestRow, type RolloutHostRow, type RolloutRow } from '../db/schema.js';
import { appendEvent } from '../events.js';
import { issueInTransaction } from '../manifests/issue.js';
import type { ManifestSigner } from '../manifests/signer.js';

export interface AdvanceContext {
  signer: ManifestSigner;
  manifestTtlMs: number;
  connection(host: string): ConnectionMode;
  /**
   * When this controller process started: no host deadline counts time before it, because a
   * host cannot report to a controller that is down (its report waits in the agent's outbox).
   */
  startedAt: number;
  /**
   * The last time each host with an issued manifest was seen offline, in memory only: a host
   * that comes back within the offline wait gets its health deadline from its return.
   */
  offlineSeen: Map<string, number>;
}

const SUCCESS_PHASES = new Set(['healthy', 'pending-reboot', 'dry-activated']);
const IN_FLIGHT = new Set(['issued', 'in-progress']);
const FINISHED = new Set(['healthy', 'failed', 'skipped']);
/** Bound on transitions per advance, far above what one call needs (each wave moves at most twice). */
const MAX_STEPS = 1000;

function failureReason(report: Report): string {
  const { detail } = report;
  if (detail.failure) {
    const how = detail.failure.timedOut ? 'timed out' : `exit ${detail.failure.exitCode ?? detail.failure.signal ?? '?'}`;
    return `${report.phase}: ${detail.failure.command} (${how})${detail.reason ? `: ${detail.reason}` : ''}`;
  }
  return `${report.phase}${detail.refusal ? ` (${detail.refusal})` : ''}${detail.reason ? `: ${detail.reason}` : ''}`;
}

/** One transition of one rollout; `rollout` is kept in step with the database row it was read from. */
class Step {
  readonly issued: ManifestRow[] = [];
  constructor(
    private readonly tx: Tx,
    private readonly ctx: AdvanceContext,
    readonly rollout: RolloutRow,
    readonly spec: RolloutSpec,
    readonly plan: RolloutPlan,
    readonly now: number,
  ) {}

  event(kind: EventKind, data: Record<string, unknown>, host: string | null = null): void {
    appendEvent(this.tx, { host, at: this.now, kind, actor: `rollout:${this.rollout.id}`, rolloutId: this.rollout.id, data });
  }

  update(values: Partial<RolloutRow>): void {
    Object.assign(this.rollout, values, { updatedAt: this.now });
    this.tx.update(rollouts).set({ ...values, updatedAt: this.now }).where(eq(rollouts.id, this.rollout.id)).run();
  }

  finish(state: RolloutState, kind: EventKind, reason: string | null): void {
    this.update({ state, reason, finishedAt: this.now });
    this.event(kind, { reason, waveIndex: this.rollout.waveIndex });
  }

  members(wave?: number): RolloutHostRow[] {
    const where = wave === undefined
      ? eq(rolloutHosts.rolloutId, this.rollout.id)
      : and(eq(rolloutHosts.rolloutId, this.rollout.id), eq(rolloutHosts.wave, wave));
    return this.tx.select().from(rolloutHosts).where(where).orderBy(asc(rolloutHosts.position)).all();
  }

  setMember(member: RolloutHostRow, values: Partial<RolloutHostRow>): void {
    Object.assign(member, values);
    this.tx
      .update(rolloutHosts)
      .set(values)
      .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)))
      .run();
  }

  issue(host: string, storePath: string): ManifestRow {
    const row = issueInTransaction(
      this.tx,
      this.ctx.signer,
      this.now,
      this.ctx.manifestTtlMs,
      { host, storePath, action: this.spec.action, rolloutId: this.rollout.id },
      { kind: 'manifest-issued', actor: `rollout:${this.rollout.id}` },
    );
    this.issued.push(row);
    return row;
  }

  fail(member: RolloutHostRow, reason: string, state: 'failed' | 'skipped' = 'failed'): void {
    this.setMember(member, { state, reason, finishedAt: this.now });
    this.event(state === 'failed' ? 'rollout-host-failed' : 'rollout-host-skipped', { reason, wave: member.wave }, member.host);
  }

  connection(host: string): ConnectionMode {
    return this.ctx.connection(host);
  }

  /** The moment a host deadline starts counting: never before this controller could hear the host. */
  deadlineBase(since: number, host?: string): number {
    return Math.max(since, this.ctx.startedAt, host === undefined ? 0 : (this.ctx.offlineSeen.get(host) ?? 0));
  }

  sawOffline(host: string): void {
    this.ctx.offlineSeen.set(host, this.now);
  }

  /** A new rollout enters its first wave (or waits for approval before it). */
  startWaveZero(): void {
    startWave(this, 0);
  }

  currentSystem(host: string): string | null {
    return this.tx.select({ currentSystem: hosts.currentSystem }).from(hosts).where(eq(hosts.name, host)).get()?.currentSystem ?? null;
  }
}

/** A host that has not answered within its deadlines counts as failed (or skipped, when offline and the rollout says so). */
function applyDeadlines(step: Step, members: RolloutHostRow[]): void {
  const healthMs = step.spec.healthDeadlineSeconds * 1000;
  const offlineMs = step.spec.offline.waitSeconds * 1000;
  for (const member of members) {
    if (!IN_FLIGHT.has(member.state)) continue;
    if (member.state === 'issued' && step.connection(member.host) === 'offline') {
      step.sawOffline(member.host);
      if (step.now - step.deadlineBase(member.issuedAt!) >= offlineMs) {
        const reason = `offline for ${step.spec.offline.waitSeconds}s after its manifest was issued`;
        step.fail(member, reason, step.spec.offline.then === 'skip' ? 'skipped' : 'failed');
      }
      continue;
    }
    const since = member.acceptedAt !== null ? step.deadlineBase(member.acceptedAt) : step.deadlineBase(member.issuedAt!, member.host);
    if (step.now - since >= healthMs) step.fail(member, `no healthy report within ${step.spec.healthDeadlineSeconds}s`);
  }
}

function thresholdTripped(spec: RolloutSpec, members: RolloutHostRow[]): string | null {
  const failed = members.filter((m) => m.state === 'failed').length;
  const finished = members.filter((m) => m.state === 'healthy' || m.state === 'failed').length;
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

/** Moves every host this rollout changed back to the system it ran before, as new signed versions. */
export function beginRollback(step: Step, reason: string): void {
  let issued = 0;
  const unrecoverable: string[] = [];
  for (const member of step.members()) {
    if (member.state === 'pending' || member.state === 'skipped' || member.rollbackState !== null) continue;
    if (!member.previousSystem) {
      unrecoverable.push(member.host);
      continue;
    }
    if (member.previousSystem === member.targetPath) continue;
    const manifest = step.issue(member.host, member.previousSystem);
    step.setMember(member, { rollbackState: 'issued', rollbackVersion: manifest.version, rollbackIssuedAt: step.now });
    issued += 1;
  }
  step.update({ state: 'rolling-back', reason });
  step.event('rollout-rolling-back', { reason, hosts: issued, unrecoverable });
}

function onFailure(step: Step, reason: string): void {
  if (step.spec.onFailure === 'rollback') beginRollback(step, reason);
  else step.finish('halted', 'rollout-halted', reason);
}

function startWave(step: Step, index: number): void {
  if (index >= step.plan.waves.length) {
    step.finish('succeeded', 'rollout-succeeded', null);
    return;
  }
  const wave = step.plan.waves[index]!;
  step.update({ waveIndex: index, wavePhase: 'deploying', waveStartedAt: step.now, bakeStartedAt: null });
  if (wave.needsApproval && step.rollout.approvedThrough < index) {
    step.update({ state: 'waiting-approval' });
    step.event('rollout-waiting-approval', { waveIndex: index, hosts: wave.hosts.length });
    return;
  }
  step.event('rollout-wave-started', { waveIndex: index, canary: wave.canary, hosts: wave.hosts });
}

function advanceRunning(step: Step): boolean {
  const { rollout, spec } = step;
  const all = step.members();
  if (spec.progressDeadlineSeconds !== null) {
    // Progress is a wave starting (or being approved, or resumed) or a host finishing; time spent
    // paused or waiting for approval is not the rollout's fault.
    const lastProgress = Math.max(rollout.waveStartedAt ?? rollout.createdAt, ...all.map((m) => m.finishedAt ?? 0));
    if (step.now - lastProgress >= spec.progressDeadlineSeconds * 1000) {
      onFailure(step, `no progress for ${spec.progressDeadlineSeconds}s (progress deadline)`);
      return false;
    }
  }
  const wave = all.filter((m) => m.wave === rollout.waveIndex);
  applyDeadlines(step, wave);
  const tripped = thresholdTripped(spec, all);
  if (tripped) {
    onFailure(step, tripped);
    return false;
  }

  if (rollout.wavePhase === 'deploying') {
    const inFlight = wave.filter((m) => IN_FLIGHT.has(m.state)).length;
    let capacity = spec.concurrency === null ? Infinity : spec.concurrency - inFlight;
    for (const member of wave) {
      if (capacity <= 0) break;
      if (member.state !== 'pending') continue;
      capacity -= 1;
      issueMember(step, member);
    }
    if (!wave.every((m) => FINISHED.has(m.state))) return false;
    if (spec.bakeSeconds > 0 && wave.length > 0) {
      step.update({ wavePhase: 'baking', bakeStartedAt: step.now });
      step.event('rollout-wave-baking', { waveIndex: rollout.waveIndex, bakeSeconds: spec.bakeSeconds });
      return false;
    }
    startWave(step, rollout.waveIndex + 1);
    return true;
  }

  if (step.now - rollout.bakeStartedAt! >= spec.bakeSeconds * 1000) {
    startWave(step, rollout.waveIndex + 1);
    return true;
  }
  return false;
}

function advanceRollingBack(step: Step): void {
  const healthMs = step.spec.healthDeadlineSeconds * 1000;
  const members = step.members().filter((m) => m.rollbackState !== null);
  for (const member of members) {
    if (member.rollbackState === 'issued' && step.now - step.deadlineBase(member.rollbackIssuedAt!) >= healthMs) {
      step.setMember(member, { rollbackState: 'failed' });
      step.event('rollout-host-failed', { reason: `rollback: no healthy report within ${step.spec.healthDeadlineSeconds}s`, rollback: true }, member.host);
    }
  }
  if (members.some((m) => m.rollbackState === 'issued')) return;
  const failed = members.filter((m) => m.rollbackState === 'failed').map((m) => m.host);
  step.update({ state: 'rolled-back', finishedAt: step.now });
  step.event('rollout-rolled-back', { hosts: members.length, failed, reason: step.rollout.reason });
}

function issueMember(step: Step, member: RolloutHostRow): void {
  // Read before issuing: this is the system a rollback returns the host to.
  const previousSystem = step.currentSystem(member.host);
  const manifest = step.issue(member.host, member.targetPath);
  step.setMember(member, { state: 'issued', manifestVersion: manifest.version, issuedAt: step.now, previousSystem });
  step.event('rollout-host-issued', { wave: member.wave, version: manifest.version, storePath: member.targetPath, previousSystem }, member.host);
}

export function openStep(tx: Tx, ctx: AdvanceContext, rolloutId: string, now: number): Step | null {
  const rollout = tx.select().from(rollouts).where(eq(rollouts.id, rolloutId)).get();
  if (!rollout) return null;
  return new Step(tx, ctx, rollout, rollout.spec as RolloutSpec, rollout.plan as RolloutPlan, now);
}

/** Advances one rollout as far as it can go right now; returns the manifests issued (to announce after commit). */
export function advanceRollout(tx: Tx, ctx: AdvanceContext, rolloutId: string, now: number): ManifestRow[] {
  const step = openStep(tx, ctx, rolloutId, now);
  if (!step) return [];
  for (let i = 0; i < MAX_STEPS; i++) {
    const state = step.rollout.state as RolloutState;
    if (state === 'running') {
      if (!advanceRunning(step)) break;
    } else {
      if (state === 'rolling-back') advanceRollingBack(step);
      break;
    }
  }
  return step.issued;
}

/**
 * Records what a report means for the rollout that issued its manifest, inside the transaction
 * that stores the report: a report is counted exactly once, and a crash cannot lose the result.
 * Returns the rollout to advance, if any.
 */
export function recordReport(tx: Tx, host: string, report: Report, now: number): string | null {
  const version = report.manifestVersion;
  if (version === null) return null;
  const terminal = TERMINAL_PHASES.has(report.phase);
  const success = SUCCESS_PHASES.has(report.phase);

  const member = tx
    .select()
    .from(rolloutHosts)
    .where(and(eq(rolloutHosts.host, host), eq(rolloutHosts.manifestVersion, version)))
    .get();
  // The path must match too: a refusal of some other manifest that happens to carry this version number is not this host's result.
  if (member && IN_FLIGHT.has(member.state) && report.storePath === member.targetPath) {
    const where = and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, host));
    const actor = `rollout:${member.rolloutId}`;
    if (!terminal) {
      if (member.state === 'issued') tx.update(rolloutHosts).set({ state: 'in-progress', acceptedAt: now }).where(where).run();
    } else if (success) {
      tx.update(rolloutHosts).set({ state: 'healthy', finishedAt: now, reason: null }).where(where).run();
      appendEvent(tx, { host, at: now, kind: 'rollout-host-healthy', actor, rolloutId: member.rolloutId, data: { wave: member.wave, version } });
    } else {
      const reason = failureReason(report);
      tx.update(rolloutHosts).set({ state: 'failed', finishedAt: now, reason }).where(where).run();
      appendEvent(tx, { host, at: now, kind: 'rollout-host-failed', actor, rolloutId: member.rolloutId, data: { wave: member.wave, version, reason } });
    }
    return member.rolloutId;
  }

  const rollingBack = tx
    .select()
    .from(rolloutHosts)
    .where(and(eq(rolloutHosts.host, host), eq(rolloutHosts.rollbackVersion, version)))
    .get();
  if (rollingBack && rollingBack.rollbackState === 'issued' && terminal && report.storePath === rollingBack.previousSystem) {
    tx.update(rolloutHosts)
      .set({ rollbackState: success ? 'healthy' : 'failed' })
      .where(and(eq(rolloutHosts.rolloutId, rollingBack.rolloutId), eq(rolloutHosts.host, host)))
      .run();
    appendEvent(tx, {
      host,
      at: now,
      kind: success ? 'rollout-host-healthy' : 'rollout-host-failed',
      actor: `rollout:${rollingBack.rolloutId}`,
      rolloutId: rollingBack.rolloutId,
      data: { rollback: true, version, ...(success ? {} : { reason: failureReason(report) }) },
    });
    return rollingBack.rolloutId;
  }
  return null;
}

export type { Step };
