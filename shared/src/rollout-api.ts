import { z } from 'zod';
import { Action, HostName, IsoTime, StorePath, Tag } from './protocol.js';

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
  })
  .strict();
export type CreateReleaseRequest = z.infer<typeof CreateReleaseRequest>;

export const Release = z.object({
  name: ReleaseName,
  description: z.string(),
  source: z.string().nullable(),
  createdAt: IsoTime,
  createdBy: z.string(),
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
  })
  .strict();
export type RolloutSpec = z.infer<typeof RolloutSpec>;
export type RolloutSpecInput = z.input<typeof RolloutSpec>;

export const PlannedWave = z.object({
  index: z.number().int(),
  canary: z.boolean(),
  needsApproval: z.boolean(),
  hosts: z.array(HostName),
});
export type PlannedWave = z.infer<typeof PlannedWave>;

export const RolloutPlan = z.object({ release: ReleaseName, waves: z.array(PlannedWave) });
export type RolloutPlan = z.infer<typeof RolloutPlan>;
