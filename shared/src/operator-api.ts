import * as z from 'zod';
import { FailureKind } from './nix-failure.js';
import { Action, CommandFailure, HostName, IsoTime, Phase, PublicKeyBase64, Report, StorePath, Tag } from './protocol.js';

/** The operator HTTP API (bearer token). The CLI and the dashboard speak only this. */

/**
 * What an operator token may do. 'read': look (hosts, releases, rollouts, webhooks, unknown hosts).
 * 'deploy': read, and move hosts (set, releases, rollouts and their actions). 'admin': everything
 * (tokens, hosts, webhooks, backups). 'ci': only publish releases (POST /v1/releases), so the token a
 * CI job holds cannot move hosts or read the fleet. Which route needs what: controller/src/auth/scopes.ts.
 */
export const OperatorScope = z.enum(['read', 'deploy', 'admin', 'ci']);
export type OperatorScope = z.infer<typeof OperatorScope>;

/** `force`: set it even on a paused host (otherwise refused with 409 host-paused). */
export const SetDesiredRequest = z.object({ storePath: StorePath, action: Action.default('safe-switch'), force: z.boolean().default(false) }).strict();
export type SetDesiredRequest = z.infer<typeof SetDesiredRequest>;

export const ManifestSummary = z.object({
  /** The host's manifest counter: its generation number as the controller issues them (#7), not a release version. */
  version: z.number().int(),
  storePath: StorePath,
  action: Action,
  rolloutId: z.string().nullable(),
  /** The release whose signed statement authorises this system (null for manifests from before statements). */
  release: z.string().nullable().default(null),
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

/** A host's newest failed report: what failed, the failing command with its output tail, and what that most likely means. */
export const HostFailure = z.object({
  at: IsoTime,
  phase: Phase,
  version: z.number().int().nullable(),
  reason: z.string().nullable(),
  failure: CommandFailure.nullable(),
  diagnosis: z.object({ kind: FailureKind, summary: z.string() }).nullable(),
});
export type HostFailure = z.infer<typeof HostFailure>;

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
  /** null: not drifted (or not known to be: a controller from before drift detection sends none). */
  drift: HostDrift.nullable().default(null),
  /** Set while the host's newest result is a failure (lastError is its one-line form). */
  failure: HostFailure.nullable().default(null),
  /** The agent's version as it said when it last authenticated; null before it did. */
  agentVersion: z.string().nullable().default(null),
  /** An operator paused the host: no rollout issues it a new manifest, and `set` needs --force, until it is resumed. */
  paused: z.boolean().default(false),
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

/** An enrollment token as listed: never the token itself (only its hash is stored). */
export const EnrollmentTokenInfo = z.object({
  id: z.string(),
  tags: z.array(z.string()),
  createdAt: IsoTime,
  expiresAt: IsoTime,
  maxUses: z.number().int().nullable(),
  uses: z.number().int(),
  revokedAt: IsoTime.nullable(),
  /** active | expired | used-up | revoked */
  state: z.enum(['active', 'expired', 'used-up', 'revoked']),
});
export type EnrollmentTokenInfo = z.infer<typeof EnrollmentTokenInfo>;
export const EnrollmentTokenList = z.object({ tokens: z.array(EnrollmentTokenInfo) });
export type EnrollmentTokenList = z.infer<typeof EnrollmentTokenList>;

export const CreateOperatorTokenRequest = z.object({ name: z.string().min(1).max(100), scope: OperatorScope }).strict();
export type CreateOperatorTokenRequest = z.infer<typeof CreateOperatorTokenRequest>;
export const OperatorTokenCreated = z.object({ id: z.string(), name: z.string(), scope: OperatorScope, token: z.string() });
export type OperatorTokenCreated = z.infer<typeof OperatorTokenCreated>;

/** An operator token as listed: never the token (only its hash is stored). */
export const OperatorTokenInfo = z.object({
  id: z.string(),
  name: z.string(),
  /** A scope this controller does not know (written by a newer one) is shown as stored. */
  scope: z.string(),
  createdAt: IsoTime,
  revokedAt: IsoTime.nullable(),
});
export type OperatorTokenInfo = z.infer<typeof OperatorTokenInfo>;
export const OperatorTokenList = z.object({ tokens: z.array(OperatorTokenInfo) });
export type OperatorTokenList = z.infer<typeof OperatorTokenList>;

export const HostRemoved = z.object({ removed: HostName });
export type HostRemoved = z.infer<typeof HostRemoved>;
export const TokenRevoked = z.object({ id: z.string(), revoked: z.literal(true) });
export type TokenRevoked = z.infer<typeof TokenRevoked>;

/** A reinstalled machine with a new host key: the old key stops working at once. */
export const RekeyHostRequest = z.object({ publicKey: PublicKeyBase64 }).strict();
export type RekeyHostRequest = z.infer<typeof RekeyHostRequest>;

/**
 * A host this controller does not know that proved it holds `publicKey` (it signed a login nonce
 * for this controller): typically an enrolled host after the database was lost. Adoptable.
 */
export const UnknownHost = z.object({
  name: HostName,
  publicKey: z.string(),
  fingerprint: z.string(),
  firstSeenAt: IsoTime,
  lastSeenAt: IsoTime,
  attempts: z.number().int(),
  /** The highest manifest version and floor it said it accepted (null: an agent too old to say). */
  highestVersion: z.number().int().nullable(),
  highestFloor: z.number().int().nullable(),
});
export type UnknownHost = z.infer<typeof UnknownHost>;
export const UnknownHostList = z.object({ hosts: z.array(UnknownHost) });
export type UnknownHostList = z.infer<typeof UnknownHostList>;

/** `fingerprint` is needed only when several keys tried the name: the operator says which one is the host. */
export const AdoptHostRequest = z.object({ fingerprint: z.string().max(100).optional(), tags: z.array(Tag).max(32).default([]) }).strict();
export type AdoptHostRequest = z.infer<typeof AdoptHostRequest>;

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
  /** The rollback ended with hosts that did not return to their previous systems (data.failed names them). */
  'rollout-rollback-failed',
  'rollout-succeeded',
  'rollout-aborted',
  /** On the old rollout: `shoal rollout retry` started data.retryId for its failed and unreached hosts. */
  'rollout-retried',
]);
export type RolloutEventKind = z.infer<typeof RolloutEventKind>;

export const EventKind = z.enum([
  'host-registered',
  'host-enrolled',
  /** An operator removed the host (kept with host null and data.host, since the host's own events go with it). */
  'host-removed',
  /** An operator replaced the host's key (data.fingerprint, data.previousFingerprint). */
  'host-rekeyed',
  /** An operator adopted an unknown host that had tried to log in (data.fingerprint). */
  'host-adopted',
  /** An operator paused the host (no new manifest from rollouts; `set` needs force) or resumed it. */
  'host-paused',
  'host-resumed',
  /**
   * The agent logged in having accepted a higher version than this controller issued (a restore
   * from an older backup): data.reported, data.previous, data.floor, data.then = 'advanced' (the
   * next version goes above it) | 'reissued' (the pending desired state was re-signed above it) |
   * 'ignored' (more than MAX_VERSION_STEP above what this controller signed: not believed).
   */
  'version-reported',
  'desired-set',
  'manifest-issued',
  'manifest-renewed',
  /** The controller did not issue a manifest because no trusted release statement authorises its path (data.reason says why). */
  'manifest-withheld',
  'report',
  'connected',
  'disconnected',
  'release-created',
  /** The controller let a host reboot (the fleet reboot lock); data.rebooting counts the hosts holding it now. */
  'reboot-granted',
  /** The host reported the end of the manifest it rebooted for: its place in the reboot lock is free. */
  'reboot-released',
  /** An operator set reboot policy, windows or a reboot lock on the host (or, with host null, on data.tag). */
  'reboot-settings-set',
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
  enrollmentToken: (id: string) => `/v1/enrollment-tokens/${encodeURIComponent(id)}`,
  operatorTokens: '/v1/operator-tokens',
  operatorToken: (id: string) => `/v1/operator-tokens/${encodeURIComponent(id)}`,
  rekey: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/rekey`,
  pause: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/pause`,
  resume: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/resume`,
  unknownHosts: '/v1/unknown-hosts',
  adopt: (name: string) => `/v1/unknown-hosts/${encodeURIComponent(name)}/adopt`,
  unknownHost: (name: string) => `/v1/unknown-hosts/${encodeURIComponent(name)}`,
  backup: '/v1/backup',
  hostReboot: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/reboot-settings`,
  tagReboot: (tag: string) => `/v1/tags/${encodeURIComponent(tag)}/reboot-settings`,
  tagsReboot: '/v1/tags/reboot-settings',
} as const;
