import { describe, expect, it } from 'vitest';
import type { Phase, ReportDetail } from '../../../shared/src/protocol.js';
import { RolloutPlan, RolloutSpec, RolloutState, type RolloutHostState, type RolloutSpecInput } from '../../../shared/src/rollout-api.js';
import { retriesMember, retrySpec } from '../../../controller/src/rollouts/retry-plan.js';
import {
  applicableActions,
  bakeDone,
  commandVerdict,
  countMembers,
  deployingWaveNext,
  failureReason,
  hostDeadline,
  onFailureState,
  progressStalled,
  reportEffect,
  rollbackOverdue,
  rollbackSettled,
  thresholdTripped,
  waveEntry,
  type Counts,
  type ReportedMember,
  type ReportEffect,
  type RolloutCommand,
} from '../../../controller/src/rollouts/transitions.js';

const spec = (input: Partial<RolloutSpecInput> = {}) => RolloutSpec.parse({ release: 'rel-1', waves: ['100%'], ...input });

describe('operator commands', () => {
  // Every state a command applies in, and the state it leads to; every state not listed refuses it.
  const ALLOWED: Record<RolloutCommand, Partial<Record<RolloutState, RolloutState>>> = {
    approve: { 'waiting-approval': 'running' },
    pause: { running: 'paused', 'waiting-approval': 'paused' },
    resume: { paused: 'running' },
    abort: { running: 'aborted', 'waiting-approval': 'aborted', paused: 'aborted', 'rolling-back': 'aborted' },
    rollback: {
      running: 'rolling-back',
      'waiting-approval': 'rolling-back',
      paused: 'rolling-back',
      halted: 'rolling-back',
      succeeded: 'rolling-back',
      aborted: 'rolling-back',
    },
    retry: { halted: 'halted', 'rolled-back': 'rolled-back', 'rollback-failed': 'rollback-failed', succeeded: 'succeeded', aborted: 'aborted' },
  };
  const cases = (Object.keys(ALLOWED) as RolloutCommand[]).flatMap((command) => RolloutState.options.map((state) => [command, state, ALLOWED[command][state]] as const));

  it.each(cases.filter(([, , next]) => next !== undefined))('%s applies to a %s rollout and leads to %s', (command, state, next) => {
    expect(commandVerdict(command, 'ro-1', state)).toEqual({ allowed: true, next });
  });

  it.each(cases.filter(([, , next]) => next === undefined))('%s is refused for a %s rollout, saying where it applies', (command, state) => {
    const verdict = commandVerdict(command, 'ro-1', state);
    expect(verdict.allowed).toBe(false);
    if (!verdict.allowed) expect(verdict.message).toMatch(new RegExp(`^rollout ro-1 is ${state}; ${command} applies only to `));
  });

  it('resumes into waiting for approval when the current wave was never approved', () => {
    expect(commandVerdict('resume', 'ro-1', 'paused', { gated: true })).toEqual({ allowed: true, next: 'waiting-approval' });
  });

  // The wording API clients and the CLI print.
  it.each([
    ['approve', 'running', 'rollout ro-1 is running; approve applies only to a rollout that is waiting-approval'],
    ['pause', 'paused', 'rollout ro-1 is paused; pause applies only to a rollout that is running or waiting-approval'],
    ['resume', 'running', 'rollout ro-1 is running; resume applies only to a rollout that is paused'],
    ['abort', 'halted', 'rollout ro-1 is halted; abort applies only to a rollout that is running, waiting-approval, paused or rolling-back'],
    ['rollback', 'rolled-back', 'rollout ro-1 is rolled-back; rollback applies only to a rollout that is not already rolling back or rolled back'],
    ['retry', 'running', 'rollout ro-1 is running; retry applies only to a finished rollout (halted, rolled-back, rollback-failed, succeeded, aborted)'],
  ] as const)('words a refused %s of a %s rollout for the operator', (command, state, message) => {
    expect(commandVerdict(command, 'ro-1', state)).toEqual({ allowed: false, message });
  });

  it.each(RolloutState.options)('offers the dashboard exactly the actions the engine accepts for a %s rollout', (state) => {
    const expected = (['approve', 'pause', 'resume', 'abort', 'rollback'] as const).filter((action) => ALLOWED[action][state] !== undefined);
    expect(applicableActions(state)).toEqual(expected);
  });
});

describe('waves', () => {
  const plan = RolloutPlan.parse({
    release: 'rel-1',
    waves: [
      { index: 0, canary: true, needsApproval: false, hosts: ['a'] },
      { index: 1, canary: false, needsApproval: true, hosts: ['b'] },
    ],
  });

  it.each([
    [0, -1, 'started'],
    [1, -1, 'waiting-approval'],
    [1, 0, 'waiting-approval'],
    [1, 1, 'started'],
    [2, -1, 'succeeded'],
  ] as const)('enters wave %i with approvals through %i: %s', (index, approvedThrough, entry) => {
    expect(waveEntry(plan, index, approvedThrough)).toBe(entry);
  });

  it.each([
    [{ wavePending: 1, waveInFlight: 0, waveSize: 1 }, 30, 'wait'],
    [{ wavePending: 0, waveInFlight: 1, waveSize: 1 }, 30, 'wait'],
    [{ wavePending: 0, waveInFlight: 0, waveSize: 2 }, 30, 'bake'],
    [{ wavePending: 0, waveInFlight: 0, waveSize: 2 }, 0, 'next'],
    [{ wavePending: 0, waveInFlight: 0, waveSize: 0 }, 30, 'next'],
  ] as const)('a deploying wave with %o and a %is bake: %s', (counts, bakeSeconds, next) => {
    expect(deployingWaveNext(spec({ bakeSeconds }), counts)).toBe(next);
  });

  it('ends a bake once its time has passed, not before', () => {
    expect(bakeDone(spec({ bakeSeconds: 60 }), 1_000, 60_999)).toBe(false);
    expect(bakeDone(spec({ bakeSeconds: 60 }), 1_000, 61_000)).toBe(true);
  });

  it('counts members across the rollout and within the current wave', () => {
    const counts: Counts = { failed: 0, finished: 0, lastFinishedAt: null, waveSize: 0, wavePending: 0, waveInFlight: 0 };
    const rows: Array<[RolloutHostState, number, boolean, number | null]> = [
      ['failed', 2, false, 50],
      ['healthy', 3, true, 70],
      ['pending', 4, true, null],
      ['issued', 1, true, null],
      ['in-progress', 2, true, null],
      ['skipped', 1, true, 60],
      ['pending', 5, false, null],
    ];
    for (const [state, n, current, last] of rows) countMembers(counts, state, n, current, last);
    expect(counts).toEqual({ failed: 2, finished: 5, lastFinishedAt: 70, waveSize: 11, wavePending: 4, waveInFlight: 3 });
  });
});

describe('failure', () => {
  it.each([
    [{ count: 0 }, 0, 3, null],
    [{ count: 0 }, 1, 3, '1 host(s) failed; at most 0 allowed'],
    [{ count: 2 }, 2, 5, null],
    [{ count: 2 }, 3, 5, '3 host(s) failed; at most 2 allowed'],
    [{ percent: 20, minSample: 5 }, 2, 4, null],
    [{ percent: 20, minSample: 5 }, 1, 5, null],
    [{ percent: 20, minSample: 5 }, 2, 5, '2 of 5 finished hosts failed (40.0%); at most 20% allowed'],
    [{ percent: 20, minSample: 1 }, 0, 0, null],
    [{ percent: 20, minSample: 1 }, 1, 1, '1 of 1 finished hosts failed (100.0%); at most 20% allowed'],
  ] as const)('threshold %o with %i failed of %i finished: %s', (failureThreshold, failed, finished, tripped) => {
    expect(thresholdTripped(spec({ failureThreshold }), { failed, finished })).toBe(tripped);
  });

  it.each([
    ['halt', 'halted'],
    ['rollback', 'rolling-back'],
  ] as const)('a failing rollout with onFailure %s becomes %s', (onFailure, state) => {
    expect(onFailureState(spec({ onFailure }))).toBe(state);
  });

  it('stops a rollout that made no progress within its deadline, counting from a wave start or the last finished host', () => {
    const rollout = { waveStartedAt: 10_000, createdAt: 0 };
    expect(progressStalled(spec(), rollout, null, 10_000_000)).toBeNull();
    expect(progressStalled(spec({ progressDeadlineSeconds: 60 }), rollout, null, 69_999)).toBeNull();
    expect(progressStalled(spec({ progressDeadlineSeconds: 60 }), rollout, null, 70_000)).toBe('no progress for 60s (progress deadline)');
    expect(progressStalled(spec({ progressDeadlineSeconds: 60 }), rollout, 50_000, 70_000)).toBeNull();
    expect(progressStalled(spec({ progressDeadlineSeconds: 60 }), { waveStartedAt: null, createdAt: 5_000 }, null, 65_000)).toBe('no progress for 60s (progress deadline)');
  });
});

describe('host deadlines', () => {
  const rules = spec({ healthDeadlineSeconds: 60, offline: { waitSeconds: 300, then: 'fail' } });
  const member = (state: RolloutHostState, offline: boolean) => ({ state, offline, offlineSince: 0, healthSince: 100_000 });

  it.each([
    ['issued', false, 159_999, null],
    ['issued', false, 160_000, { state: 'failed', reason: 'no healthy report within 60s', withdraw: false }],
    ['in-progress', false, 160_000, { state: 'failed', reason: 'no healthy report within 60s', withdraw: false }],
    // In progress, the host's link does not matter: it is deploying and will report when it can.
    ['in-progress', true, 160_000, { state: 'failed', reason: 'no healthy report within 60s', withdraw: false }],
    ['issued', true, 299_999, null],
    ['issued', true, 300_000, { state: 'failed', reason: 'offline for 300s after its manifest was issued', withdraw: true }],
    ['pending', false, 1_000_000, null],
    ['healthy', false, 1_000_000, null],
    ['failed', true, 1_000_000, null],
    ['skipped', true, 1_000_000, null],
  ] as const)('a %s member (offline: %s) at %i ms', (state, offline, now, verdict) => {
    expect(hostDeadline(rules, member(state, offline), now)).toEqual(verdict);
  });

  it('skips rather than fails a host offline past its wait when the rollout says so', () => {
    const skipping = spec({ offline: { waitSeconds: 10, then: 'skip' } });
    expect(hostDeadline(skipping, member('issued', true), 10_000)).toEqual({ state: 'skipped', reason: 'offline for 10s after its manifest was issued', withdraw: true });
  });

  it.each([
    ['issued', 59_999, false],
    ['issued', 60_000, true],
    ['healthy', 1_000_000, false],
    ['failed', 1_000_000, false],
    [null, 1_000_000, false],
  ] as const)('a member whose rollback is %s is overdue at %i ms: %s', (rollbackState, now, overdue) => {
    expect(rollbackOverdue(rules, { rollbackState }, 0, now)).toBe(overdue);
  });

  it.each([
    [['healthy', 'issued'], null],
    [['healthy', 'healthy'], 'rolled-back'],
    [['healthy', 'failed'], 'rollback-failed'],
    [[], 'rolled-back'],
  ] as const)('a rollback whose members are %o ends as %s', (states, settled) => {
    expect(rollbackSettled(states.map((rollbackState) => ({ rollbackState })))).toBe(settled);
  });
});

describe('reports', () => {
  const TARGET = '/nix/store/bbbb-nixos-system-new';
  const PREVIOUS = '/nix/store/aaaa-nixos-system-old';
  const base: ReportedMember = {
    rolloutId: 'ro-1',
    wave: 0,
    state: 'issued',
    targetPath: TARGET,
    manifestVersion: 5,
    previousSystem: PREVIOUS,
    rollbackState: null,
    rollbackVersion: null,
    rolloutState: 'running',
    waveIndex: 0,
  };
  const report = (phase: Phase, manifestVersion: number | null = 5, storePath: string | null = TARGET, detail: ReportDetail = {}) => ({ phase, manifestVersion, storePath, detail });
  const failed = (reason: string, degraded = false): ReportEffect => ({ kind: 'failed', reason, degraded });

  it.each<[string, Partial<ReportedMember>, ReturnType<typeof report>, ReportEffect]>([
    ['an issued host starting on it', {}, report('accepted'), { kind: 'accepted' }],
    ['an issued host activating', {}, report('activating'), { kind: 'accepted' }],
    ['a host deploying further', { state: 'in-progress' }, report('checking'), { kind: 'progress' }],
    ['a healthy result', { state: 'in-progress' }, report('healthy'), { kind: 'healthy' }],
    ['a result on a renewed (higher) version', { state: 'in-progress' }, report('healthy', 7), { kind: 'healthy' }],
    ['a boot rollout waiting for its reboot', {}, report('pending-reboot'), { kind: 'healthy' }],
    ['a dry activation', {}, report('dry-activated'), { kind: 'healthy' }],
    ['a failed activation', { state: 'in-progress' }, report('failed', 5, TARGET, { reason: 'unit x failed' }), failed('failed: unit x failed')],
    ['a rollback on the host', { state: 'in-progress' }, report('rolled-back'), failed('rolled-back')],
    ['a refusal', {}, report('refused', 5, TARGET, { refusal: 'unknown-key' }), failed('refused (unknown-key)')],
    ['an older version', { state: 'in-progress' }, report('healthy', 4), { kind: 'none' }],
    ['another store path with the same version', {}, report('refused', 5, PREVIOUS), { kind: 'none' }],
    ['no version', {}, report('healthy', null), { kind: 'none' }],
    ['no store path', {}, report('healthy', 5, null), { kind: 'none' }],
    ['a result for a member that has one', { state: 'healthy' }, report('failed'), { kind: 'none' }],
    ['a result for a member never issued', { state: 'pending' }, report('healthy'), { kind: 'none' }],
    ['progress of a member that has a result', { state: 'failed' }, report('activating'), { kind: 'none' }],
    ['a recovery', { state: 'healthy' }, report('recovered'), { kind: 'none' }],
    ['degraded while the wave bakes', { state: 'healthy' }, report('degraded', 5, TARGET, { reason: 'nginx down' }), failed('degraded after it reported healthy: nginx down', true)],
    ['degraded while the rollout is paused', { state: 'healthy', rolloutState: 'paused' }, report('degraded'), failed('degraded after it reported healthy: a health check fails', true)],
    ['degraded after its wave', { state: 'healthy', waveIndex: 1 }, report('degraded'), { kind: 'none' }],
    ['degraded after the rollout finished', { state: 'healthy', rolloutState: 'succeeded' }, report('degraded'), { kind: 'none' }],
    ['degraded before it was healthy', { state: 'in-progress' }, report('degraded'), { kind: 'none' }],
    ['a forward result after the rollback was issued', { state: 'in-progress', rollbackState: 'issued', rollbackVersion: 8 }, report('healthy', 8), { kind: 'none' }],
    ['a stale forward result while rolling back', { state: 'in-progress', rollbackState: 'issued', rollbackVersion: 8 }, report('healthy', 6), { kind: 'healthy' }],
    ['its rollback healthy', { state: 'healthy', rollbackState: 'issued', rollbackVersion: 8 }, report('healthy', 8, PREVIOUS), { kind: 'rollback', healthy: true, reason: null }],
    [
      'its rollback failed',
      { state: 'healthy', rollbackState: 'issued', rollbackVersion: 8 },
      report('failed', 9, PREVIOUS, { failure: { command: 'switch-to-configuration', exitCode: 4, signal: null, timedOut: false, outputTail: '' } }),
      { kind: 'rollback', healthy: false, reason: 'failed: switch-to-configuration (exit 4)' },
    ],
    ['its rollback still deploying', { state: 'healthy', rollbackState: 'issued', rollbackVersion: 8 }, report('activating', 8, PREVIOUS), { kind: 'none' }],
    ['a rollback result counted already', { state: 'healthy', rollbackState: 'healthy', rollbackVersion: 8 }, report('failed', 8, PREVIOUS), { kind: 'none' }],
    ['a rollback result on an older version', { state: 'healthy', rollbackState: 'issued', rollbackVersion: 8 }, report('healthy', 7, PREVIOUS), { kind: 'none' }],
  ])('%s', (_, member, facts, effect) => {
    expect(reportEffect({ ...base, ...member }, facts)).toEqual(effect);
  });

  it.each([
    [report('failed', 5, TARGET, { failure: { command: 'nix-store --realise', exitCode: null, signal: 'SIGKILL', timedOut: false, outputTail: '' } }), 'failed: nix-store --realise (exit SIGKILL)'],
    [report('failed', 5, TARGET, { failure: { command: 'nix-store --realise', exitCode: null, signal: null, timedOut: true, outputTail: '' }, reason: 'no space' }), 'failed: nix-store --realise (timed out): no space'],
    [report('refused', 5, TARGET, { refusal: 'expired', reason: 'valid until yesterday' }), 'refused (expired): valid until yesterday'],
    [report('failed'), 'failed'],
  ])('words a failure for the operator: %#', (facts, reason) => {
    expect(failureReason(facts)).toBe(reason);
  });
});

describe('retry', () => {
  it.each([
    ['healthy', null, false],
    ['healthy', 'healthy', true],
    ['healthy', 'failed', true],
    ['failed', null, true],
    ['skipped', null, true],
    ['pending', null, true],
    ['issued', null, true],
    ['in-progress', null, true],
  ] as const)('a %s member with rollback %s is retried: %s', (state, rollbackState, retried) => {
    expect(retriesMember({ state, rollbackState })).toBe(retried);
  });

  it('retries only the unfinished hosts, in their waves and with their approvals, dropping emptied waves', () => {
    const plan = RolloutPlan.parse({
      release: 'rel-1',
      waves: [
        { index: 0, canary: true, needsApproval: false, hosts: ['a'] },
        { index: 1, canary: false, needsApproval: true, hosts: ['b', 'c'] },
        { index: 2, canary: false, needsApproval: true, hosts: ['d'] },
      ],
    });
    const members = [
      { host: 'a', state: 'healthy', rollbackState: null },
      { host: 'b', state: 'failed', rollbackState: null },
      { host: 'c', state: 'healthy', rollbackState: null },
      { host: 'd', state: 'pending', rollbackState: null },
    ] as const;
    const original = spec({ canary: 1, waves: ['50%', '100%'], approvalBefore: [1, 2] });
    expect(retrySpec(original, plan, members)).toEqual({
      ...original,
      selector: { hosts: ['b', 'd'] },
      canary: 0,
      waves: [{ hosts: ['b'] }, { hosts: ['d'] }],
      approvalBefore: [0, 1],
    });
    expect(retrySpec(original, plan, members.map((m) => ({ ...m, state: 'healthy' as const })))).toBeNull();
  });
});
