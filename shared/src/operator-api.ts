import { z } from 'zod';
import { Action, HostName, IsoTime, Phase, PublicKeyBase64, Report, StorePath, Tag } from './protocol.js';

/** The operator HTTP API (bearer token). The CLI and the dashboard speak only this. */

/**
 * What an operator token may do. 'admin': everything. 'ci': only publish releases
 * (POST /v1/releases), so the token a CI job holds cannot move hosts or read the fleet.
 */
export const OperatorScope = z.enum(['admin', 'ci']);
export type OperatorScope = z.infer<typeof OperatorScope>;

export const SetDesiredRequest = z.object({ storePath: StorePath, action: Action.default('safe-switch') }).strict();
export type SetDesiredRequest = z.infer<typeof SetDesiredRequest>;

export const ManifestSummary = z.object({
  version: z.number().int(),
  storePath: StorePath,
  action: Action,
  rolloutId: z.string().nullable(),
  issuedAt: IsoTime,
  expiresAt: IsoTime,
});
export type ManifestSummary = z.infer<typeof ManifestSummary>;

export const ConnectionMode = z.enum(['websocket', 'polling', 'offline']);
export type ConnectionMode = z.infer<typeof ConnectionMode>;

/**
 * The host runs something other than what Shoal last left it on (a manual `nixos-rebuild switch`):
 * its current system is not its desired one, and no Shoal activation explains that (none is in
 * progress, and the last one to end left it on `expected`).
 */
export const HostDrift = z.object({
  /** What the host runs. */
  running: StorePath,
  /** What the last Shoal activation left it running (the desired system, or the one a failed activation went back to). */
  expected: StorePath,
  /** When the controller heard of it (the report that showed it). */
  detectedAt: IsoTime,
});
export type HostDrift = z.infer<typeof HostDrift>;

export const HostStatus = z.object({
  name: HostName,
  tags: z.array(Tag),
  enrolledAt: IsoTime.nullable(),
  lastSeenAt: IsoTime.nullable(),
  connection: ConnectionMode,
  desired: ManifestSummary.nullable(),
  currentSystem: StorePath.nullable(),
  phase: Phase.nullable(),
  /** The manifest version the last report was about. */
  reportedVersion: z.number().int().nullable(),
  lastError: z.string().nullable(),
  /** null: not drifted (or not known to be). */
  drift: HostDrift.nullable(),
});
export type HostStatus = z.infer<typeof HostStatus>;

export const HostList = z.object({ hosts: z.array(HostStatus) });
export type HostList = z.infer<typeof HostList>;

export const RegisterHostRequest = z
  .object({ name: HostName, publicKey: PublicKeyBase64, tags: z.array(Tag).max(32).default([]) })
  .strict();
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;

export const CreateEnrollmentTokenRequest = z
  .object({
    ttlSeconds: z.number().int().min(60).max(30 * 24 * 3600).default(3600),
    maxUses: z.number().int().positive().max(100_000).nullable().default(null),
    tags: z.array(Tag).max(32).default([]),
  })
  .strict();
export type CreateEnrollmentTokenRequest = z.infer<typeof CreateEnrollmentTokenRequest>;

export const EnrollmentTokenCreated = z.object({ id: z.string(), token: z.string(), expiresAt: IsoTime, maxUses: z.number().nullable() });
export type EnrollmentTokenCreated = z.infer<typeof EnrollmentTokenCreated>;

/** What a rollout writes to the audit log (webhooks subscribe to these). */
export const RolloutEventKind = z.enum([
  'rollout-started',
  'rollout-wave-started',
  'rollout-wave-baking',
  'rollout-waiting-approval',
  'rollout-approved',
  'rollout-paused',
  'rollout-resumed',
  'rollout-host-issued',
  'rollout-host-healthy',
  'rollout-host-failed',
  'rollout-host-skipped',
  'rollout-halted',
  'rollout-rolling-back',
  'rollout-rolled-back',
  'rollout-succeeded',
  'rollout-aborted',
]);
export type RolloutEventKind = z.infer<typeof RolloutEventKind>;

export const EventKind = z.enum([
  'host-registered',
  'host-enrolled',
  'desired-set',
  'manifest-issued',
  'manifest-renewed',
  /** The controller did not issue a manifest because no trusted release statement authorises its path (data.reason says why). */
  'manifest-withheld',
  'report',
  'connected',
  'disconnected',
  'release-created',
  ...RolloutEventKind.options,
]);
export type EventKind = z.infer<typeof EventKind>;

export const HostEvent = z.object({
  id: z.number().int(),
  host: HostName.nullable(),
  rolloutId: z.string().nullable().optional(),
  at: IsoTime,
  kind: EventKind,
  actor: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type HostEvent = z.infer<typeof HostEvent>;

export const HostEvents = z.object({ events: z.array(HostEvent) });
export type HostEvents = z.infer<typeof HostEvents>;

export const StoredReport = Report.extend({ host: HostName, receivedAt: IsoTime });
export type StoredReport = z.infer<typeof StoredReport>;

export const OperatorRoutes = {
  hosts: '/v1/hosts',
  host: (name: string) => `/v1/hosts/${encodeURIComponent(name)}`,
  desired: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/desired`,
  diff: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/diff`,
  events: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/events`,
  enrollmentTokens: '/v1/enrollment-tokens',
} as const;
