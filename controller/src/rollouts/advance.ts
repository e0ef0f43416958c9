import { and, asc, eq, sql } from 'drizzle-orm';
import type { ConnectionMode, EventKind } from '../../../shared/src/operator-api.js';
import { DEPLOYMENT_SUCCESS_PHASES, HEALTH_TRANSITION_PHASES, TERMINAL_PHASES } from '../../../shared/src/phases.js';
import type { Report } from '../../../shared/src/protocol.js';
import {
  ACTIVE_ROLLOUT_STATES,
  RolloutHostState,
  RolloutRollbackState,
  waveNumber,
  type RolloutPlan,
  type RolloutSpec,
  type RolloutState,
} from '../../../shared/src/rollout-api.js';
import type { Db, Tx } from '../db/open.js';
import { prepared, statement } from '../db/prepared.js';
import { rolloutHosts, rollouts, type ManifestRow, type RolloutHostRow, type RolloutRow } from '../db/schema.js';
import { appendEvent } from '../events.js';
import { issueBatchInTransaction, issueInTransaction, type BatchItem, type IssueCause } from '../manifests/issue.js';
import type { ManifestSigner } from '../manifests/signer.js';
import { authoriseStatement, type ReleaseTrust } from '../manifests/statements.js';
import { rollbackChoice } from './rollback-plan.js';

export interface AdvanceContext {
  /**
   * The database handle the open transaction runs on: hot statements are prepared on it once per
   * process (a transaction handle lives for one transaction only).
   */
  db: Db;
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
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
  /**
   * Since when each healthy host of a baking wave has been offline (key: rollout id and host), in
   * memory only: the bake fails a host that stays away, not one whose connection blinked.
   */
  bakeOfflineSince: Map<string, number>;
  /**
   * Spec and plan of active rollouts, parsed once: they never change after the start, and a
   * 10,000-host plan is 200 KB of JSON that every tick would otherwise parse again.
   */
  definitions: Map<string, { spec: RolloutSpec; plan: RolloutPlan }>;
}

/**
 * Host deadlines need every in-flight host of the wave read and checked; that is the timer's job.
 * Ticks after reports and after an issue batch skip them (a deadline is then noticed at the next
 * timer tick, a second later at most).
 */
export interface AdvanceOptions {
  deadlines: boolean;
}

/**
 * Manifests issued per transaction. A larger wave is issued in several transactions, each announced
 * right after its commit with the event loop free in between: agents keep being served, and the
 * first hosts start while the last are still being signed.
 */
export const ISSUE_BATCH = 500;

/**
 * How long a healthy host of the current wave may be offline before the bake counts it as failed:
 * an agent whose websocket drops polls at once, so a blink is over long before this.
 */
export const BAKE_OFFLINE_GRACE_MS = 10_000;

// Member states go into SQL as parameters from the typed enums, so a misspelt state does not compile.
const MEMBER = RolloutHostState.enum;
const ROLLBACK = RolloutRollbackState.enum;
const IN_FLIGHT: ReadonlySet<RolloutHostState> = new Set([MEMBER.issued, MEMBER['in-progress']]);
/** `state in (${IN_FLIGHT_PLACEHOLDERS})` takes `...IN_FLIGHT` as its parameters. */
const IN_FLIGHT_PLACEHOLDERS = [...IN_FLIGHT].map(() => '?').join(', ');
/** Bound on transitions per advance, far above what one call needs (each wave moves at most twice). */
const MAX_STEPS = 1000;
const ACTIVE: ReadonlySet<RolloutState> = new Set(ACTIVE_ROLLOUT_STATES);

/** The rollout row without its spec and plan (those come from AdvanceContext.definitions). */
export type RolloutProgress = Omit<RolloutRow, 'spec' | 'plan'>;

/** The columns a deadline check needs, for each host of the wave in flight. */
interface InFlightMember {
  rolloutId: string;
  host: string;
  wave: number;
  state: RolloutHostState;
  issuedAt: number | null;
  acceptedAt: number | null;
}

/**
 * Member states counted in SQL (no member rows read): the whole rollout for the failure threshold
 * and the progress deadline, the current wave for issuing and for its end.
 */
interface Counts {
  failed: number;
  finished: number;
  lastFinishedAt: number | null;
  waveSize: number;
  wavePending: number;
  waveInFlight: number;
}

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
  /** Set when pending hosts of the wave were left for the next transaction (ISSUE_BATCH reached). */
  more = false;
  deadlines = true;
  constructor(
    private readonly tx: Tx,
    private readonly ctx: AdvanceContext,
    readonly rollout: RolloutProgress,
    readonly spec: RolloutSpec,
    readonly plan: RolloutPlan,
    readonly now: number,
    /** Every manifest issued in this transaction, whoever asked for it: the caller announces them all after commit. */
    readonly issued: ManifestRow[] = [],
  ) {}

  event(kind: EventKind, data: Record<string, unknown>, host: string | null = null): void {
    // Events about a wave say of how many, so a webhook's text can read "wave 2 of 3" on its own.
    const withTotal = 'wave' in data ? { ...data, waves: this.plan.waves.length } : data;
    appendEvent(this.ctx.db, { host, at: this.now, kind, actor: `rollout:${this.rollout.id}`, rolloutId: this.rollout.id, data: withTotal });
  }

  update(values: Partial<RolloutProgress>): void {
    Object.assign(this.rollout, values, { updatedAt: this.now });
    this.tx.update(rollouts).set({ ...values, updatedAt: this.now }).where(eq(rollouts.id, this.rollout.id)).run();
    if (values.state !== undefined && !ACTIVE.has(values.state)) this.ctx.definitions.delete(this.rollout.id);
  }

  finish(state: RolloutState, kind: EventKind, reason: string | null): void {
    this.update({ state, reason, finishedAt: this.now });
    this.event(kind, { reason, wave: waveNumber(this.rollout.waveIndex) });
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

  /**
   * Issues `storePath` to `host` with the release statement that authorises it (this rollout's
   * release first); returns why not when none does (two-key mode: only CI authorises systems).
   * `previousVersion`: the host's desired version, when the caller has read it already.
   */
  issue(host: string, storePath: string, previousVersion?: number | null): ManifestRow | string {
    const authorised = authoriseStatement(this.ctx.db, this.ctx.releaseTrust, host, storePath, { now: this.now, release: this.rollout.release });
    if (!authorised.ok) return authorised.reason;
    const row = issueInTransaction(
      this.ctx.db,
      this.ctx.signer,
      this.now,
      this.ctx.manifestTtlMs,
      { host, storePath, action: this.spec.action, rolloutId: this.rollout.id, authority: authorised.authority },
      this.issueCause(),
      previousVersion,
    );
    this.issued.push(row);
    return row;
  }

  issueCause(): IssueCause {
    return { kind: 'manifest-issued', actor: `rollout:${this.rollout.id}` };
  }

  /** A manifest this rollout would have issued but no statement authorises: the host keeps what it has, the log says why. */
  withheld(host: string, storePath: string, reason: string): void {
    this.event('manifest-withheld', { storePath, reason }, host);
  }

  fail(member: InFlightMember, reason: string, state: 'failed' | 'skipped' = 'failed'): void {
    statement(this.ctx.db, 'update rollout_hosts set state = ?, reason = ?, finished_at = ? where rollout_id = ? and host = ?').run(
      state,
      reason,
      this.now,
      member.rolloutId,
      member.host,
    );
    member.state = state;
    this.event(state === 'failed' ? 'rollout-host-failed' : 'rollout-host-skipped', { reason, wave: waveNumber(member.wave) }, member.host);
  }

  /**
   * Takes this rollout's manifest back from a host that never answered it (offline past its wait):
   * its desired state returns to the system it ran, so when it comes back it does not deploy a
   * release that no rollout is watching any more.
   */
  withdraw(member: InFlightMember): void {
    const row = statement(
      this.ctx.db,
      'select previous_system as previousSystem, target_path as targetPath from rollout_hosts where rollout_id = ? and host = ?',
    ).get(member.rolloutId, member.host) as { previousSystem: string | null; targetPath: string };
    if (!row.previousSystem || row.previousSystem === row.targetPath) return;
    const manifest = this.issue(member.host, row.previousSystem);
    if (typeof manifest === 'string') return this.withheld(member.host, row.previousSystem, manifest);
    statement(
      this.ctx.db,
      'update rollout_hosts set rollback_state = ?, rollback_version = ?, rollback_issued_at = ? where rollout_id = ? and host = ?',
    ).run(ROLLBACK.issued, manifest.version, this.now, member.rolloutId, member.host);
  }

  /** Hosts of `wave` that hold a manifest and have no result yet. */
  inFlight(wave: number): InFlightMember[] {
    return statement(
      this.ctx.db,
      `select rollout_id as rolloutId, host, wave, state, issued_at as issuedAt, accepted_at as acceptedAt from rollout_hosts
       where rollout_id = ? and wave = ? and state in (${IN_FLIGHT_PLACEHOLDERS}) order by position`,
    ).all(this.rollout.id, wave, ...IN_FLIGHT) as InFlightMember[];
  }

  counts(wave: number): Counts {
    const rows = statement(
      this.ctx.db,
      `select wave = ? as current, state, count(*) as n, max(finished_at) as lastFinishedAt
       from rollout_hosts where rollout_id = ? group by 1, 2`,
    ).all(wave, this.rollout.id) as Array<{ current: number; state: RolloutHostState; n: number; lastFinishedAt: number | null }>;
    const counts: Counts = { failed: 0, finished: 0, lastFinishedAt: null, waveSize: 0, wavePending: 0, waveInFlight: 0 };
    for (const { current, state, n, lastFinishedAt } of rows) {
      if (state === 'failed') counts.failed += n;
      if (state === 'failed' || state === 'healthy') counts.finished += n;
      if (lastFinishedAt !== null) counts.lastFinishedAt = Math.max(counts.lastFinishedAt ?? 0, lastFinishedAt);
      if (!current) continue;
      counts.waveSize += n;
      if (state === 'pending') counts.wavePending += n;
      if (IN_FLIGHT.has(state)) counts.waveInFlight += n;
    }
    return counts;
  }

  /**
   * Issues up to `limit` pending hosts of `wave`, in plan order. One query reads what each needs
   * (its target, the system it runs now, its desired version); each host's manifest and its member
   * row change in this transaction, so no host is issued twice whatever happens next. A host whose
   * target no trusted statement authorises fails at once, with the reason, and is never issued.
   * A paused host is not issued: it stays pending, so its wave waits for it. `full`: the batch
   * took all `limit` hosts it asked for, so more unpaused hosts may be pending (fewer: none is).
   */
  issuePending(wave: number, limit: number): { issued: number; refused: number; full: boolean } {
    const pending = statement(
      this.ctx.db,
      `select rh.host as host, rh.target_path as targetPath, h.current_system as currentSystem, h.desired_version as desiredVersion
       from rollout_hosts rh join hosts h on h.name = rh.host
       where rh.rollout_id = ? and rh.wave = ? and rh.state = ? and h.paused = 0 order by rh.position limit ?`,
    ).all(this.rollout.id, wave, MEMBER.pending, Number.isFinite(limit) ? limit : -1) as Array<{
      host: string;
      targetPath: string;
      currentSystem: string | null;
      desiredVersion: number | null;
    }>;
    const markIssued = statement(
      this.ctx.db,
      `update rollout_hosts set state = ?, manifest_version = ?, issued_at = ?, previous_system = ? where rollout_id = ? and host = ?`,
    );
    let refused = 0;
    const batch: BatchItem[] = [];
    // Read before issuing: the system each runs now is where a rollback returns the host.
    const previousSystems = new Map<string, string | null>();
    for (const member of pending) {
      const authorised = authoriseStatement(this.ctx.db, this.ctx.releaseTrust, member.host, member.targetPath, { now: this.now, release: this.rollout.release });
      if (!authorised.ok) {
        refused += 1;
        this.fail({ rolloutId: this.rollout.id, host: member.host, wave, state: 'pending', issuedAt: null, acceptedAt: null }, authorised.reason);
        continue;
      }
      previousSystems.set(member.host, member.currentSystem);
      batch.push({
        desired: { host: member.host, storePath: member.targetPath, action: this.spec.action, rolloutId: this.rollout.id, authority: authorised.authority },
        previousVersion: member.desiredVersion,
      });
    }
    // The member rows are written while the batch is being signed (see issueBatchInTransaction),
    // with one event per host: it says what `manifest-issued` would (the rollout's audit log and
    // the host's history both show it), half the rows of two events per host.
    const rows = issueBatchInTransaction(this.ctx.db, this.ctx.signer, this.now, this.ctx.manifestTtlMs, batch, null, (planned) => {
      for (const { host, version, storePath, action, floor } of planned) {
        const previousSystem = previousSystems.get(host) ?? null;
        markIssued.run(MEMBER.issued, version, this.now, previousSystem, this.rollout.id, host);
        this.event('rollout-host-issued', { wave: waveNumber(wave), version, storePath, action, floor, rolloutId: this.rollout.id, previousSystem }, host);
      }
    });
    this.issued.push(...rows);
    return { issued: pending.length - refused, refused, full: pending.length === limit };
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

  /**
   * A paused rollout's host clocks stand still, as its bake and wave clocks do: on resume, the
   * issue and acceptance times of hosts in flight move on by the pause, and offline stretches
   * seen before it start again.
   */
  shiftHostClocks(pausedForMs: number): void {
    statement(
      this.ctx.db,
      `update rollout_hosts set issued_at = issued_at + ?, accepted_at = accepted_at + ?
       where rollout_id = ? and state in (${IN_FLIGHT_PLACEHOLDERS})`,
    ).run(pausedForMs, pausedForMs, this.rollout.id, ...IN_FLIGHT);
    const prefix = `${this.rollout.id}\0`;
    for (const key of this.ctx.bakeOfflineSince.keys()) if (key.startsWith(prefix)) this.ctx.bakeOfflineSince.delete(key);
  }

  /**
   * The bake watches its wave: a host of the current wave that already proved healthy but has
   * been offline past the grace since counts as failed. Returns how many it failed. A `boot`
   * rollout is left alone: its hosts are expected to reboot.
   */
  watchBake(wave: number): number {
    if (this.spec.action === 'boot') return 0;
    const healthy = statement(
      this.ctx.db,
      `select rollout_id as rolloutId, host, wave, state, issued_at as issuedAt, accepted_at as acceptedAt from rollout_hosts
       where rollout_id = ? and wave = ? and state = ? order by position`,
    ).all(this.rollout.id, wave, MEMBER.healthy) as InFlightMember[];
    let failed = 0;
    for (const member of healthy) {
      const key = `${this.rollout.id}\0${member.host}`;
      if (this.connection(member.host) !== 'offline') {
        this.ctx.bakeOfflineSince.delete(key);
        continue;
      }
      const since = this.ctx.bakeOfflineSince.get(key) ?? this.now;
      this.ctx.bakeOfflineSince.set(key, since);
      if (this.now - since < BAKE_OFFLINE_GRACE_MS) continue;
      this.ctx.bakeOfflineSince.delete(key);
      this.fail(member, `went offline during the bake of wave ${wave} (after it reported healthy)`);
      failed += 1;
    }
    return failed;
  }

  /** A new rollout enters its first wave (or waits for approval before it). */
  startWaveZero(): void {
    startWave(this, 0);
  }
}

/**
 * A host that has not answered within its deadlines counts as failed (or skipped, when offline and
 * the rollout says so); `counts` follows.
 */
function applyDeadlines(step: Step, members: InFlightMember[], counts: Counts): void {
  const failHost = (member: InFlightMember, reason: string, state: 'failed' | 'skipped' = 'failed') => {
    step.fail(member, reason, state);
    counts.waveInFlight -= 1;
    if (state === 'failed') {
      counts.failed += 1;
      counts.finished += 1;
    }
  };
  const healthMs = step.spec.healthDeadlineSeconds * 1000;
  const offlineMs = step.spec.offline.waitSeconds * 1000;
  for (const member of members) {
    if (!IN_FLIGHT.has(member.state)) continue;
    if (member.state === 'issued' && step.connection(member.host) === 'offline') {
      step.sawOffline(member.host);
      if (step.now - step.deadlineBase(member.issuedAt!) >= offlineMs) {
        const reason = `offline for ${step.spec.offline.waitSeconds}s after its manifest was issued`;
        failHost(member, reason, step.spec.offline.then === 'skip' ? 'skipped' : 'failed');
        step.withdraw(member);
      }
      continue;
    }
    const since = member.acceptedAt !== null ? step.deadlineBase(member.acceptedAt) : step.deadlineBase(member.issuedAt!, member.host);
    if (step.now - since >= healthMs) failHost(member, `no healthy report within ${step.spec.healthDeadlineSeconds}s`);
  }
}

function thresholdTripped(spec: RolloutSpec, { failed, finished }: Counts): string | null {
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
  const withheld: string[] = [];
  for (const member of step.members()) {
    const choice = rollbackChoice(member);
    if (choice === 'unrecoverable') unrecoverable.push(member.host);
    if (choice !== 'back') continue;
    const manifest = step.issue(member.host, member.previousSystem!);
    if (typeof manifest === 'string') {
      step.withheld(member.host, member.previousSystem!, manifest);
      withheld.push(member.host);
      continue;
    }
    step.setMember(member, { rollbackState: 'issued', rollbackVersion: manifest.version, rollbackIssuedAt: step.now });
    issued += 1;
  }
  step.update({ state: 'rolling-back', reason });
  step.event('rollout-rolling-back', { reason, hosts: issued, unrecoverable, withheld });
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
    step.event('rollout-waiting-approval', { wave: waveNumber(index), hosts: wave.hosts.length });
    return;
  }
  step.event('rollout-wave-started', { wave: waveNumber(index), canary: wave.canary, hosts: wave.hosts });
}

function advanceRunning(step: Step): boolean {
  const { rollout, spec } = step;
  const counts = step.counts(rollout.waveIndex);
  if (spec.progressDeadlineSeconds !== null) {
    // Progress is a wave starting (or being approved, or resumed) or a host finishing; time spent
    // paused or waiting for approval is not the rollout's fault.
    const lastProgress = Math.max(rollout.waveStartedAt ?? rollout.createdAt, counts.lastFinishedAt ?? 0);
    if (step.now - lastProgress >= spec.progressDeadlineSeconds * 1000) {
      onFailure(step, `no progress for ${spec.progressDeadlineSeconds}s (progress deadline)`);
      return false;
    }
  }
  if (step.deadlines && counts.waveInFlight > 0) applyDeadlines(step, step.inFlight(rollout.waveIndex), counts);
  // Healthy and failed both count as finished: a host the bake fails moves from one to the other.
  if (step.deadlines) counts.failed += step.watchBake(rollout.waveIndex);
  const tripped = thresholdTripped(spec, counts);
  if (tripped) {
    onFailure(step, tripped);
    return false;
  }

  if (rollout.wavePhase === 'deploying') {
    const capacity = spec.concurrency === null ? Infinity : spec.concurrency - counts.waveInFlight;
    const budget = Math.max(0, ISSUE_BATCH - step.issued.length);
    if (counts.wavePending > 0 && capacity > 0) {
      const { issued, refused, full } = step.issuePending(rollout.waveIndex, Math.min(capacity, budget));
      counts.wavePending -= issued + refused;
      counts.waveInFlight += issued;
      counts.failed += refused;
      counts.finished += refused;
      // Paused hosts left pending wait for their resume: no reason to come back soon for them.
      if (counts.wavePending > 0 && capacity > budget && full) step.more = true;
      // Hosts refused here failed without ever being in flight: when they were the wave's last,
      // no report will come to re-check the threshold, and the wave would count as done.
      const trippedByRefusals = refused > 0 ? thresholdTripped(spec, counts) : null;
      if (trippedByRefusals) {
        onFailure(step, trippedByRefusals);
        return false;
      }
    }
    // Every host of the wave has a result (healthy, failed or skipped).
    if (counts.wavePending > 0 || counts.waveInFlight > 0) return false;
    if (spec.bakeSeconds > 0 && counts.waveSize > 0) {
      step.update({ wavePhase: 'baking', bakeStartedAt: step.now });
      step.event('rollout-wave-baking', { wave: waveNumber(rollout.waveIndex), bakeSeconds: spec.bakeSeconds });
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
  if (failed.length > 0) {
    // Hosts that did not return are a failure of their own, not a rollback that happened.
    step.update({ state: 'rollback-failed', finishedAt: step.now });
    step.event('rollout-rollback-failed', { hosts: members.length, failed, reason: step.rollout.reason });
    return;
  }
  step.update({ state: 'rolled-back', finishedAt: step.now });
  step.event('rollout-rolled-back', { hosts: members.length, failed, reason: step.rollout.reason });
}

export function openStep(tx: Tx, ctx: AdvanceContext, rolloutId: string, now: number, issued: ManifestRow[] = []): Step | null {
  const { db } = ctx;
  const rollout = prepared(db, 'rollouts.progress', () =>
    db
      .select({
        id: rollouts.id,
        release: rollouts.release,
        state: rollouts.state,
        waveIndex: rollouts.waveIndex,
        wavePhase: rollouts.wavePhase,
        waveStartedAt: rollouts.waveStartedAt,
        bakeStartedAt: rollouts.bakeStartedAt,
        pausedAt: rollouts.pausedAt,
        approvedThrough: rollouts.approvedThrough,
        reason: rollouts.reason,
        createdAt: rollouts.createdAt,
        createdBy: rollouts.createdBy,
        updatedAt: rollouts.updatedAt,
        finishedAt: rollouts.finishedAt,
        retryOf: rollouts.retryOf,
      })
      .from(rollouts)
      .where(eq(rollouts.id, sql.placeholder('id')))
      .prepare(),
  ).get({ id: rolloutId });
  if (!rollout) return null;
  let definition = ctx.definitions.get(rolloutId);
  if (!definition) {
    const row = tx.select({ spec: rollouts.spec, plan: rollouts.plan }).from(rollouts).where(eq(rollouts.id, rolloutId)).get()!;
    definition = { spec: row.spec as RolloutSpec, plan: row.plan as RolloutPlan };
    if (ACTIVE.has(rollout.state)) ctx.definitions.set(rolloutId, definition);
  }
  return new Step(tx, ctx, rollout, definition.spec, definition.plan, now, issued);
}

export interface Advanced {
  /** Manifests issued, to announce after commit. */
  issued: ManifestRow[];
  /** Pending hosts of the wave were left for another transaction: advance again soon. */
  more: boolean;
}

/** Advances one rollout as far as it can go right now. */
export function advanceRollout(
  tx: Tx,
  ctx: AdvanceContext,
  rolloutId: string,
  now: number,
  options: AdvanceOptions = { deadlines: true },
  issued: ManifestRow[] = [],
): Advanced {
  const step = openStep(tx, ctx, rolloutId, now, issued);
  if (!step) return { issued: [], more: false };
  step.deadlines = options.deadlines;
  for (let i = 0; i < MAX_STEPS; i++) {
    const state = step.rollout.state;
    if (state === 'running') {
      if (!advanceRunning(step)) break;
    } else {
      if (state === 'rolling-back') advanceRollingBack(step);
      break;
    }
  }
  return { issued: step.issued, more: step.more };
}

/** What a report needs of the rollout member its manifest belongs to. */
interface ReportedMember {
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

/**
 * The rollout member a manifest version belongs to. The manifest row says which rollout issued
 * it, and a renewal keeps the rollout of what it re-signs: so a report on a version re-signed any
 * number of times still finds its rollout.
 */
function reportedMember(db: Db, host: string, version: number): ReportedMember | undefined {
  const manifest = statement(db, 'select rollout_id as rolloutId from manifests where host = ? and version = ?').get(host, version) as
    | { rolloutId: string | null }
    | undefined;
  if (!manifest?.rolloutId) return undefined;
  return statement(
    db,
    `select rh.rollout_id as rolloutId, rh.wave, rh.state, rh.target_path as targetPath, rh.manifest_version as manifestVersion,
       rh.previous_system as previousSystem, rh.rollback_state as rollbackState, rh.rollback_version as rollbackVersion,
       r.state as rolloutState, r.wave_index as waveIndex
     from rollout_hosts rh join rollouts r on r.id = rh.rollout_id where rh.rollout_id = ? and rh.host = ?`,
  ).get(manifest.rolloutId, host) as ReportedMember | undefined;
}

/**
 * Records what a report means for the rollout that issued its manifest, inside the transaction
 * that stores the report: a report is counted exactly once, and a crash cannot lose the result.
 * Returns the rollout to advance, if any. `db` is the handle that transaction is open on (the
 * statements, run for every report, are prepared on it once).
 */
export function recordReport(db: Db, host: string, report: Report, now: number): string | null {
  const version = report.manifestVersion;
  if (version === null || report.storePath === null) return null;
  const member = reportedMember(db, host, version);
  if (!member) return null;
  const terminal = TERMINAL_PHASES.has(report.phase);
  const success = DEPLOYMENT_SUCCESS_PHASES.has(report.phase);
  const actor = `rollout:${member.rolloutId}`;
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
    if (!watched) return null;
    const reason = `degraded after it reported healthy: ${report.detail.reason ?? 'a health check fails'}`;
    statement(db, 'update rollout_hosts set state = ?, finished_at = ?, reason = ? where rollout_id = ? and host = ?').run(MEMBER.failed, now, reason, member.rolloutId, host);
    appendEvent(db, { host, at: now, kind: 'rollout-host-failed', actor, rolloutId: member.rolloutId, data: { wave: member.wave, version, reason, degraded: true } });
    return member.rolloutId;
  }
  if (HEALTH_TRANSITION_PHASES.has(report.phase)) return null;

  if (forward && IN_FLIGHT.has(member.state)) {
    if (!terminal) {
      if (member.state === 'issued') {
        statement(db, 'update rollout_hosts set state = ?, accepted_at = ? where rollout_id = ? and host = ?').run(MEMBER['in-progress'], now, member.rolloutId, host);
      }
    } else if (success) {
      statement(db, 'update rollout_hosts set state = ?, finished_at = ?, reason = null where rollout_id = ? and host = ?').run(MEMBER.healthy, now, member.rolloutId, host);
      appendEvent(db, { host, at: now, kind: 'rollout-host-healthy', actor, rolloutId: member.rolloutId, data: { wave: waveNumber(member.wave), version } });
    } else {
      const reason = failureReason(report);
      statement(db, 'update rollout_hosts set state = ?, finished_at = ?, reason = ? where rollout_id = ? and host = ?').run(MEMBER.failed, now, reason, member.rolloutId, host);
      appendEvent(db, { host, at: now, kind: 'rollout-host-failed', actor, rolloutId: member.rolloutId, data: { wave: waveNumber(member.wave), version, reason } });
    }
    return member.rolloutId;
  }
  if (!terminal) return null;

  const rollback =
    member.rollbackVersion !== null && version >= member.rollbackVersion && member.rollbackState === 'issued' && report.storePath === member.previousSystem;
  if (rollback) {
    statement(db, 'update rollout_hosts set rollback_state = ? where rollout_id = ? and host = ?').run(success ? ROLLBACK.healthy : ROLLBACK.failed, member.rolloutId, host);
    appendEvent(db, {
      host,
      at: now,
      kind: success ? 'rollout-host-healthy' : 'rollout-host-failed',
      actor,
      rolloutId: member.rolloutId,
      data: { rollback: true, version, ...(success ? {} : { reason: failureReason(report) }) },
    });
    return member.rolloutId;
  }
  return null;
}

export type { Step };
