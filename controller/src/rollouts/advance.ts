import { waveNumber, type RolloutSpec } from '../../../shared/src/rollout-api.js';
import type { ManifestRow } from '../db/schema.js';
import type { WatchedMember } from './members.js';
import { rollbackChoice } from './rollback-plan.js';
import { bakeKey, openStep, type AdvanceContext, type Attempt, type Step } from './step.js';
import {
  bakeDone,
  deployingWaveNext,
  hostDeadline,
  onFailureState,
  progressStalled,
  rollbackOverdue,
  rollbackSettled,
  thresholdTripped,
  waveEntry,
  type Counts,
} from './transitions.js';

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

/** Bound on transitions per advance, far above what one call needs (each wave moves at most twice). */
const MAX_STEPS = 1000;

/**
 * A host that has not answered within its deadlines counts as failed (or skipped, when offline and
 * the rollout says so); `counts` follows.
 */
async function applyDeadlines(step: Step, members: WatchedMember[], counts: Counts): Promise<void> {
  for (const member of members) {
    const offline = member.state === 'issued' && step.connection(member.host) === 'offline';
    if (offline) step.sawOffline(member.host);
    const verdict = hostDeadline(
      step.spec,
      {
        state: member.state,
        offline,
        offlineSince: step.deadlineBase(member.issuedAt!),
        healthSince: member.acceptedAt !== null ? step.deadlineBase(member.acceptedAt) : step.deadlineBase(member.issuedAt!, member.host),
      },
      step.now,
    );
    if (!verdict) continue;
    await step.fail(member, verdict.reason, verdict.state);
    counts.waveInFlight -= 1;
    if (verdict.state === 'failed') {
      counts.failed += 1;
      counts.finished += 1;
    }
    if (verdict.withdraw) await step.withdraw(member);
  }
}

/**
 * The bake watches its wave: a host of the current wave that already proved healthy but has
 * been offline past the grace since counts as failed. Returns how many it failed. A `boot`
 * rollout is left alone: its hosts are expected to reboot.
 */
async function watchBake(step: Step, wave: number): Promise<number> {
  if (step.spec.action === 'boot') return 0;
  const { bakeOfflineSince } = step.ctx;
  let failed = 0;
  for (const member of await step.healthy(wave)) {
    const key = bakeKey(step.rollout.id, member.host);
    if (step.connection(member.host) !== 'offline') {
      step.attempt.delete(bakeOfflineSince, key);
      continue;
    }
    const since = bakeOfflineSince.get(key) ?? step.now;
    step.attempt.set(bakeOfflineSince, key, since);
    if (step.now - since < BAKE_OFFLINE_GRACE_MS) continue;
    step.attempt.delete(bakeOfflineSince, key);
    await step.fail(member, `went offline during the bake of wave ${wave} (after it reported healthy)`);
    failed += 1;
  }
  return failed;
}

/** Moves every host this rollout changed back to the system it ran before, as new signed versions. */
export async function beginRollback(step: Step, reason: string): Promise<void> {
  let issued = 0;
  const unrecoverable: string[] = [];
  const withheld: string[] = [];
  for (const member of await step.members()) {
    const choice = rollbackChoice(member);
    if (choice === 'unrecoverable') unrecoverable.push(member.host);
    if (choice !== 'back') continue;
    const manifest = await step.issue(member.host, member.previousSystem!);
    if (typeof manifest === 'string') {
      await step.withheld(member.host, member.previousSystem!, manifest);
      withheld.push(member.host);
      continue;
    }
    await step.setMember(member, { rollbackState: 'issued', rollbackVersion: manifest.version, rollbackIssuedAt: step.now });
    issued += 1;
  }
  await step.update({ state: 'rolling-back', reason });
  await step.event('rollout-rolling-back', { reason, hosts: issued, unrecoverable, withheld });
}

async function onFailure(step: Step, reason: string): Promise<void> {
  if (onFailureState(step.spec) === 'rolling-back') await beginRollback(step, reason);
  else await step.finish('halted', 'rollout-halted', reason);
}

/** The rollout enters wave `index` (or waits for approval before it, or succeeds past the last). */
export async function startWave(step: Step, index: number): Promise<void> {
  const entry = waveEntry(step.plan, index, step.rollout.approvedThrough);
  if (entry === 'succeeded') {
    await step.finish('succeeded', 'rollout-succeeded', null);
    return;
  }
  const wave = step.plan.waves[index]!;
  await step.update({ waveIndex: index, wavePhase: 'deploying', waveStartedAt: step.now, bakeStartedAt: null });
  if (entry === 'waiting-approval') {
    await step.update({ state: 'waiting-approval' });
    await step.event('rollout-waiting-approval', { wave: waveNumber(index), hosts: wave.hosts.length });
    return;
  }
  await step.event('rollout-wave-started', { wave: waveNumber(index), canary: wave.canary, hosts: wave.hosts });
}

/** Issues what the wave has room for; returns the reason the failure threshold trips on hosts refused here, if it does. */
async function issueWave(step: Step, spec: RolloutSpec, counts: Counts): Promise<string | null> {
  const { rollout } = step;
  const capacity = spec.concurrency === null ? Infinity : spec.concurrency - counts.waveInFlight;
  const budget = Math.max(0, ISSUE_BATCH - step.issued.length);
  if (counts.wavePending === 0 || capacity <= 0) return null;
  const { issued, refused, full } = await step.issuePending(rollout.waveIndex, Math.min(capacity, budget));
  counts.wavePending -= issued + refused;
  counts.waveInFlight += issued;
  counts.failed += refused;
  counts.finished += refused;
  // Paused hosts left pending wait for their resume: no reason to come back soon for them.
  if (counts.wavePending > 0 && capacity > budget && full) step.more = true;
  // Hosts refused here failed without ever being in flight: when they were the wave's last,
  // no report will come to re-check the threshold, and the wave would count as done.
  return refused > 0 ? thresholdTripped(spec, counts) : null;
}

/** One transition of a running rollout; true when it moved to another wave (and may move again). */
async function advanceRunning(step: Step): Promise<boolean> {
  const { rollout, spec } = step;
  const counts = await step.counts(rollout.waveIndex);
  const stalled = progressStalled(spec, rollout, counts.lastFinishedAt, step.now);
  if (stalled) {
    await onFailure(step, stalled);
    return false;
  }
  if (step.deadlines && counts.waveInFlight > 0) await applyDeadlines(step, await step.inFlight(rollout.waveIndex), counts);
  // Healthy and failed both count as finished: a host the bake fails moves from one to the other.
  if (step.deadlines) counts.failed += await watchBake(step, rollout.waveIndex);
  const tripped = thresholdTripped(spec, counts);
  if (tripped) {
    await onFailure(step, tripped);
    return false;
  }

  if (rollout.wavePhase === 'deploying') {
    const trippedByRefusals = await issueWave(step, spec, counts);
    if (trippedByRefusals) {
      await onFailure(step, trippedByRefusals);
      return false;
    }
    // Every host of the wave has a result (healthy, failed or skipped) before the wave moves on.
    const next = deployingWaveNext(spec, counts);
    if (next === 'wait') return false;
    if (next === 'bake') {
      await step.update({ wavePhase: 'baking', bakeStartedAt: step.now });
      await step.event('rollout-wave-baking', { wave: waveNumber(rollout.waveIndex), bakeSeconds: spec.bakeSeconds });
      return false;
    }
    await startWave(step, rollout.waveIndex + 1);
    return true;
  }

  if (bakeDone(spec, rollout.bakeStartedAt!, step.now)) {
    await startWave(step, rollout.waveIndex + 1);
    return true;
  }
  return false;
}

async function advanceRollingBack(step: Step): Promise<void> {
  const members = (await step.members()).filter((m) => m.rollbackState !== null);
  for (const member of members) {
    if (member.rollbackState === 'issued' && rollbackOverdue(step.spec, member, step.deadlineBase(member.rollbackIssuedAt!), step.now)) {
      await step.setMember(member, { rollbackState: 'failed' });
      await step.event('rollout-host-failed', { reason: `rollback: no healthy report within ${step.spec.healthDeadlineSeconds}s`, rollback: true }, member.host);
    }
  }
  const settled = rollbackSettled(members);
  if (settled === null) return;
  const failed = members.filter((m) => m.rollbackState === 'failed').map((m) => m.host);
  await step.update({ state: settled, finishedAt: step.now });
  await step.event(settled === 'rollback-failed' ? 'rollout-rollback-failed' : 'rollout-rolled-back', { hosts: members.length, failed, reason: step.rollout.reason });
}

export interface Advanced {
  /** Manifests issued, to announce after commit. */
  issued: ManifestRow[];
  /** Pending hosts of the wave were left for another transaction: advance again soon. */
  more: boolean;
}

/** Advances one rollout as far as it can go right now, in the transaction open on `ctx.store`; `attempt` collects what it issued. */
export async function advanceRollout(
  ctx: AdvanceContext,
  rolloutId: string,
  now: number,
  options: AdvanceOptions,
  attempt: Attempt,
): Promise<Advanced> {
  const step = await openStep(ctx, rolloutId, now, attempt);
  if (!step) return { issued: [], more: false };
  step.deadlines = options.deadlines;
  for (let i = 0; i < MAX_STEPS; i++) {
    const state = step.rollout.state;
    if (state === 'running') {
      if (!(await advanceRunning(step))) break;
    } else {
      if (state === 'rolling-back') await advanceRollingBack(step);
      break;
    }
  }
  return { issued: step.issued, more: step.more };
}
