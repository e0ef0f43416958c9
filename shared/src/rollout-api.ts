import * as z from 'zod';
import { FleetDiff, PreflightResult } from './closure-api.js';
import { HostFailure } from './operator-api.js';
import { Action, HostName, IsoTime, ReleaseSource, StorePath, Tag } from './protocol.js';

/** Releases and rollouts over the operator API. */

export const ReleaseName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'release name must be letters, digits, ".", "_" or "-", at most 100 characters');

export const CreateReleaseRequest = z
  .object({
    name: ReleaseName,
    description: z.string().max(2000).default(''),
    source: z.string().max(500).nullable().default(null),
    /** host → store path. Given as a list so duplicates can be named instead of silently merged. */
    hosts: z.array(z.object({ host: HostName, storePath: StorePath }).strict()).min(1).max(100_000),
    /** Security floor of the statements the controller signs for it (single-key mode only); absent: 0. */
    floor: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();
export type CreateReleaseRequest = z.infer<typeof CreateReleaseRequest>;

/** Who vouched for a release's systems, and from what. */
export const ReleaseProvenance = z.object({
  /** 'ci': a bundle signed offline by a CI release key; 'controller': signed by the controller in single-key mode; null: stored before releases were signed. */
  signedBy: z.enum(['ci', 'controller']).nullable(),
  /** Key id(s) of the release key that signed the statements. */
  keyId: z.string().nullable(),
  /** When the statements say the release was made. */
  signedAt: IsoTime.nullable(),
  floor: z.number().int().nonnegative(),
  /** Structured source of a signed bundle (git revision, flake.lock hash); null for unsigned releases. */
  source: ReleaseSource.nullable(),
});
export type ReleaseProvenance = z.infer<typeof ReleaseProvenance>;

export const Release = z.object({
  name: ReleaseName,
  description: z.string(),
  source: z.string().nullable(),
  createdAt: IsoTime,
  createdBy: z.string(),
  provenance: ReleaseProvenance,
  hosts: z.array(z.object({ host: HostName, storePath: StorePath })),
});
export type Release = z.infer<typeof Release>;

const PERCENT = /^(\d{1,3}(?:\.\d+)?)%$/;

/**
 * A wave is cumulative, like Argo Rollouts' setWeight: "25%" means that after this wave a quarter
 * of the selected hosts run the release. A count is also cumulative. Explicit hosts/tags name
 * exactly who joins in that wave.
 */
export const WaveSpec = z.union([
  z
    .string()
    .regex(PERCENT, 'a wave is a percentage like "25%"')
    .refine((v) => {
      const n = Number(PERCENT.exec(v)![1]);
      return n > 0 && n <= 100;
    }, 'a wave percentage must be above 0% and at most 100%'),
  z.number().int('a wave count must be a whole number of hosts').positive('a wave count must be at least 1'),
  z.object({ hosts: z.array(HostName).min(1) }).strict(),
  z.object({ tags: z.array(Tag).min(1) }).strict(),
]);
export type WaveSpec = z.infer<typeof WaveSpec>;

export const FailureThreshold = z.union([
  z.object({ count: z.number().int().nonnegative() }).strict(),
  z
    .object({
      percent: z.number().min(0).max(100),
      /** A percent threshold can trip only once this many hosts finished, so one early failure in a big wave does not halt it. */
      minSample: z.number().int().positive().default(1),
    })
    .strict(),
]);
export type FailureThreshold = z.infer<typeof FailureThreshold>;

export const RolloutSpec = z
  .object({
    release: ReleaseName,
    selector: z
      .object({ hosts: z.array(HostName).optional(), tags: z.array(Tag).optional() })
      .strict()
      .default({}),
    action: Action.default('safe-switch'),
    canary: z.number().int().nonnegative().default(0),
    waves: z.array(WaveSpec).min(1, 'a rollout needs at least one wave').max(100),
    concurrency: z.number().int().positive().nullable().default(null),
    failureThreshold: FailureThreshold.default({ count: 0 }),
    bakeSeconds: z.number().min(0, 'bake time cannot be negative').max(7 * 24 * 3600).default(0),
    healthDeadlineSeconds: z.number().positive().max(24 * 3600).default(600),
    /** Wave indexes (0 = the canary when there is one) that wait for `shoal rollout approve`. */
    approvalBefore: z.array(z.number().int().nonnegative()).default([]),
    onFailure: z.enum(['halt', 'rollback']).default('halt'),
    offline: z
      .object({ waitSeconds: z.number().min(0).default(300), then: z.enum(['fail', 'skip']).default('fail') })
      .strict()
      .default({ waitSeconds: 300, then: 'fail' }),
    progressDeadlineSeconds: z.number().positive().nullable().default(null),
    /** Hosts stage and activate only while their maintenance windows are open, even for a change that needs no reboot. */
    activateWithinWindows: z.boolean().default(false),
    /** At most this many hosts of this rollout rebooting at once, beside the fleet-wide lock and the tags' locks. */
    maxRebooting: z.number().int().positive().nullable().default(null),
  })
  .strict();
export type RolloutSpec = z.infer<typeof RolloutSpec>;
export type RolloutSpecInput = z.input<typeof RolloutSpec>;

/** POST /v1/rollouts: a spec, and whether to start even though the cache preflight fails (recorded in the audit log). */
export const StartRolloutRequest = RolloutSpec.extend({ skipPreflight: z.boolean().default(false) });
export type StartRolloutRequest = z.infer<typeof StartRolloutRequest>;

/** POST /v1/rollouts/:id/retry (body optional): a retry is a new rollout, preflighted like a start. */
export const RetryRolloutRequest = z.strictObject({ skipPreflight: z.boolean().default(false) });
export type RetryRolloutRequest = z.infer<typeof RetryRolloutRequest>;

/**
 * Waves are numbered from 1 for people: the CLI, the dashboard, every audit event and webhook
 * (`data.wave`) say "wave 2 of 3". `index` / `waveIndex` are positions in the `waves` array (0-based)
 * for code; `number` / `wave` carry the same wave as people count it.
 */
export function waveNumber(index: number): number {
  return index + 1;
}

/** "wave 2 of 3"; the canary wave is "canary (wave 1 of 3)". `number` 1-based; `total` unknown for old events. */
export function waveLabel(number: number, total: number | null, canary = false): string {
  const wave = `wave ${number}${total === null ? '' : ` of ${total}`}`;
  return canary ? `canary (${wave})` : wave;
}

export const PlannedWave = z.object({
  index: z.number().int(),
  canary: z.boolean(),
  needsApproval: z.boolean(),
  hosts: z.array(HostName),
});
export type PlannedWave = z.infer<typeof PlannedWave>;

/**
 * Whether a host will reboot for this release, predicted from the release's facts about the new
 * system and those of the system the host runs now (shared/src/reboot.ts decides): `unknown`
 * when either is missing (a release without facts, a host running a system no release described).
 */
export const RebootPrediction = z.object({
  host: HostName,
  prediction: z.enum(['reboot', 'live', 'unknown']),
  /** What differs: kernel, initrd, kernel-modules, switch-inhibitors. */
  reasons: z.array(z.string()),
});
export type RebootPrediction = z.infer<typeof RebootPrediction>;

/** `reboots` only in the dry-run answer (POST /rollouts/plan), not in a started rollout's stored plan. */
export const RolloutPlan = z.object({ release: ReleaseName, waves: z.array(PlannedWave), reboots: z.array(RebootPrediction).optional() });
export type RolloutPlan = z.infer<typeof RolloutPlan>;

/**
 * What POST /v1/rollouts/plan answers: the plan, what it changes on each host and across the
 * fleet (null when the controller reads no binary cache), whether the cache is ready, and which
 * hosts run something Shoal did not put there.
 */
export const RolloutPlanReport = RolloutPlan.extend({
  diff: FleetDiff.nullable(),
  preflight: PreflightResult,
  drifted: z.array(HostName),
});
export type RolloutPlanReport = z.infer<typeof RolloutPlanReport>;

/** GET /v1/releases/NAME/diff: the release against what every one of its hosts runs now. */
export const ReleaseDiffReport = RolloutPlanReport.omit({ waves: true });
export type ReleaseDiffReport = z.infer<typeof ReleaseDiffReport>;

export const RolloutState = z.enum([
  'running',
  'waiting-approval',
  'paused',
  'halted',
  'rolling-back',
  'rolled-back',
  /** A rollback whose hosts did not all return to their previous systems: an operator must look. */
  'rollback-failed',
  'succeeded',
  'aborted',
]);
export type RolloutState = z.infer<typeof RolloutState>;

/** States nothing moves out of by itself (a rollback or a retry can still be asked for). */
export const FINISHED_ROLLOUT_STATES: readonly RolloutState[] = ['halted', 'rolled-back', 'rollback-failed', 'succeeded', 'aborted'];

/** Finished states that are failures (CLI exit status, colours, dashboard badges). */
export const FAILED_ROLLOUT_STATES: readonly RolloutState[] = ['halted', 'rolled-back', 'rollback-failed', 'aborted'];

/** States in which a rollout still owns its hosts: another rollout may not touch them. */
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ['running', 'waiting-approval', 'paused', 'rolling-back'];

export const RolloutHostState = z.enum(['pending', 'issued', 'in-progress', 'healthy', 'failed', 'skipped']);
export type RolloutHostState = z.infer<typeof RolloutHostState>;

/** The rollback of one member, when its rollout rolls back; null (no rollback) outside it. */
export const RolloutRollbackState = z.enum(['issued', 'healthy', 'failed']);
export type RolloutRollbackState = z.infer<typeof RolloutRollbackState>;

/** Within the current wave: its hosts are deploying, or all are healthy and the wave bakes. */
export const RolloutWavePhase = z.enum(['deploying', 'baking']);
export type RolloutWavePhase = z.infer<typeof RolloutWavePhase>;

export const RolloutHostView = z.object({
  host: HostName,
  state: RolloutHostState,
  targetPath: StorePath,
  previousSystem: StorePath.nullable(),
  manifestVersion: z.number().int().nullable(),
  reason: z.string().nullable(),
  rollbackState: RolloutRollbackState.nullable(),
  /** For a failed host: its failed report about this rollout's manifest (command, output tail, diagnosis). */
  failure: HostFailure.nullable().default(null),
  /** The host is paused by an operator: a pending host waits in its wave until it is resumed. */
  paused: z.boolean().default(false),
});
export type RolloutHostView = z.infer<typeof RolloutHostView>;

export const WaveCounts = z.object({
  pending: z.number().int(),
  inProgress: z.number().int(),
  healthy: z.number().int(),
  failed: z.number().int(),
  skipped: z.number().int(),
});
export type WaveCounts = z.infer<typeof WaveCounts>;

export const RolloutStatus = z.object({
  id: z.string(),
  release: ReleaseName,
  state: RolloutState,
  reason: z.string().nullable(),
  /** The current wave's position in `waves` (0-based); `wave` is its number as people count (1-based). */
  waveIndex: z.number().int(),
  wave: z.number().int(),
  wavePhase: RolloutWavePhase,
  bakeRemainingSeconds: z.number().nullable(),
  failureThreshold: FailureThreshold,
  failures: z.number().int(),
  finished: z.number().int(),
  createdAt: IsoTime,
  createdBy: z.string(),
  finishedAt: IsoTime.nullable(),
  /** The rollout this one retries (`shoal rollout retry`): it re-issues that one's failed and unreached hosts. */
  retryOf: z.string().nullable(),
  spec: RolloutSpec,
  waves: z.array(
    PlannedWave.omit({ hosts: true }).extend({
      /** 1-based: "wave 2 of 3". */
      number: z.number().int(),
      approved: z.boolean(),
      counts: WaveCounts,
      hosts: z.array(RolloutHostView),
    }),
  ),
});
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const RolloutList = z.object({
  rollouts: z.array(RolloutStatus.pick({ id: true, release: true, state: true, reason: true, waveIndex: true, wave: true, createdAt: true, finishedAt: true, retryOf: true }).extend({ waves: z.number().int(), hosts: z.number().int() })),
});
export type RolloutList = z.infer<typeof RolloutList>;

export const RolloutAction = z.enum(['approve', 'pause', 'resume', 'abort', 'rollback']);
export type RolloutAction = z.infer<typeof RolloutAction>;

export const RolloutRoutes = {
  releases: '/v1/releases',
  release: (name: string) => `/v1/releases/${encodeURIComponent(name)}`,
  releaseDiff: (name: string) => `/v1/releases/${encodeURIComponent(name)}/diff`,
  rollouts: '/v1/rollouts',
  plan: '/v1/rollouts/plan',
  rollout: (id: string) => `/v1/rollouts/${encodeURIComponent(id)}`,
  action: (id: string, action: RolloutAction) => `/v1/rollouts/${encodeURIComponent(id)}/${action}`,
  /** POST: a new rollout of the same release for the hosts this one failed or never reached (201, its RolloutStatus). */
  retry: (id: string) => `/v1/rollouts/${encodeURIComponent(id)}/retry`,
  events: (id: string) => `/v1/rollouts/${encodeURIComponent(id)}/events`,
  stream: (id: string) => `/v1/rollouts/${encodeURIComponent(id)}/stream`,
} as const;
